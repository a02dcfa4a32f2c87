/** A worker as a real OS process, so tests can SIGKILL it mid-provision. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { waitFor } from '../setup/wait-for.js';
import { REPO_ROOT } from './stack.js';
import { TS_NODE_ARGS } from './ts-node-args.js';

export interface WorkerProcess {
  child: ChildProcess;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** `logLevel`: at least info (the start is awaited on an info line); debug adds the SDK's own. */
export async function spawnWorker(
  env: Record<string, string>,
  opts: { logLevel?: 'info' | 'debug' } = {},
): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [...TS_NODE_ARGS, path.join(REPO_ROOT, 'src/worker/main.ts')], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env, LOG_LEVEL: opts.logLevel ?? 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`worker exited early:\n${out.slice(-3000)}`);
      return out.includes('worker running');
    },
    { timeoutMs: 60_000, describe: 'worker process to start polling' },
  );
  return {
    child,
    output: () => out,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
