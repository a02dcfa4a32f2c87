/**
 * The API as a real OS process (src/api/main.ts, with its fatal-error handlers), so a test can tell
 * "the process died" from "a request failed": an in-process server would be kept alive by the
 * test runner's own uncaughtException handler.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { waitFor } from '../setup/wait-for.js';
import { REPO_ROOT } from './stack.js';
import { TS_NODE_ARGS } from './ts-node-args.js';

export interface ApiProcess {
  child: ChildProcess;
  url: string;
  output(): string;
  /** Null while it runs. */
  exitCode(): number | null;
  stop(): Promise<void>;
}

export interface SpawnOptions {
  /** `api`: src/api/main.ts (production's API process); `all`: src/main.ts (API and worker, `./dev up`). */
  entry?: 'api' | 'all';
  /** The process's descriptor limit (`ulimit -n`), to see what it does when its descriptors run short. */
  fdLimit?: number;
}

/** Starts the API on env.PORT (must be a fixed port, so a worker can be told where it is). */
export async function spawnApi(env: Record<string, string>, opts: SpawnOptions = {}): Promise<ApiProcess> {
  const main = path.join(REPO_ROOT, opts.entry === 'all' ? 'src/main.ts' : 'src/api/main.ts');
  const node = [process.execPath, ...TS_NODE_ARGS, main];
  // exec: the shell becomes the node process, so signals reach it.
  const [command, ...args] =
    opts.fdLimit === undefined ? node : ['sh', '-c', `ulimit -n ${opts.fdLimit} && exec "$@"`, 'sh', ...node];
  const child = spawn(command!, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env, LOG_LEVEL: env.LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${env.PORT}`;
  const ready = waitFor(
    async () => {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      return res.ok;
    },
    { timeoutMs: 60_000, describe: 'API process to answer /healthz' },
  );
  // An exit (bad configuration, a crash at start) ends the wait at once, with the output.
  await Promise.race([
    ready,
    exited.then(() => {
      throw new Error(`api exited early (code ${child.exitCode}):\n${out.slice(-3000)}`);
    }),
  ]);
  return {
    child,
    url,
    output: () => out,
    exitCode: () => child.exitCode ?? (child.signalCode ? -1 : null),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
