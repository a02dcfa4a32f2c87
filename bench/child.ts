/**
 * Bench parties in their own Node processes, the parent's side: a tiny request/answer protocol over
 * the IPC channel of `child_process.fork` (the child's side: child-serve.ts).
 *
 * A child ignores SIGINT (Ctrl-C reaches the whole foreground process group): the parent decides
 * when it stops, because the parent's clean-up still needs it (workspaces are deleted through the
 * API child). It stops on SIGTERM and, so that nothing outlives a parent killed hard, when its IPC
 * channel closes.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '../test/setup/services.js';
import { progress } from './provision-util.js';

import type { Answer, Call } from './child-serve.js';

const STOP_GRACE_MS = 20_000;

export interface Child {
  name: string;
  pid: number;
  call<T>(method: string, arg?: unknown): Promise<T>;
  /** SIGTERM, then SIGKILL after a grace period; resolves once the process has exited. */
  stop(): Promise<void>;
}

/** Forks `module` (a path relative to the repository root) with tsx; stdout and stderr go to stderr. */
export function forkChild(name: string, module: string): Child {
  const proc: ChildProcess = fork(path.join(REPO_ROOT, module), [], {
    cwd: REPO_ROOT,
    execArgv: ['--import', 'tsx'],
    // stdout carries the report: a child's output goes to stderr with the progress lines.
    stdio: ['ignore', 2, 2, 'ipc'],
    serialization: 'advanced',
  });
  if (proc.pid === undefined) throw new Error(`${name}: fork failed`);
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  let exitCode: string | null = null;
  const exited = new Promise<void>((resolve) => {
    proc.once('exit', (code, signal) => {
      exitCode = signal ?? String(code);
      for (const p of pending.values()) p.reject(new Error(`${name} exited (${exitCode})`));
      pending.clear();
      resolve();
    });
  });
  proc.on('message', (msg: Answer) => {
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.value);
    else p.reject(new Error(`${name}: ${msg.error}`));
  });
  return {
    name,
    pid: proc.pid,
    call: <T>(method: string, arg?: unknown) =>
      new Promise<T>((resolve, reject) => {
        if (exitCode !== null) return reject(new Error(`${name} exited (${exitCode})`));
        const id = nextId++;
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        proc.send({ id, method, arg } satisfies Call);
      }),
    stop: async () => {
      if (exitCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => {
        progress(`${name} did not exit ${STOP_GRACE_MS} ms after SIGTERM: SIGKILL`);
        proc.kill('SIGKILL');
      }, STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
