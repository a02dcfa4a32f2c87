/** An uncaught exception or unhandled rejection ends the process, logged, with a non-zero code. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TS_NODE_ARGS } from '../support/ts-node-args.js';

const ROOT = path.resolve(new URL('../..', import.meta.url).pathname);

function runWith(trigger: string) {
  const script = `
    import pino from 'pino';
    import { createServer } from 'node:http';
    import { exitOnFatalErrors } from './src/fatal.ts';
    const server = createServer().listen(0, '127.0.0.1');
    exitOnFatalErrors(pino(), async () => { await new Promise((r) => server.close(r)); console.log('closed cleanly'); });
    setTimeout(() => { ${trigger} }, 10);
  `;
  return spawnSync(process.execPath, [...TS_NODE_ARGS, '--input-type=module', '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('exitOnFatalErrors', () => {
  it.each([
    ['uncaughtException', "throw new Error('bug in a callback')"],
    ['unhandledRejection', "void Promise.reject(new Error('bug in a promise'))"],
  ])('%s: logged with its origin, clean shutdown, exit code 1', (origin, trigger) => {
    const run = runWith(trigger);
    expect(run.status, run.stderr).toBe(1);
    const fatal = run.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        try {
          return JSON.parse(l) as { level: number; origin?: string; err?: { message: string } };
        } catch {
          return null;
        }
      })
      .find((l) => l?.level === 60);
    expect(fatal?.origin).toBe(origin);
    expect(fatal?.err?.message).toMatch(/^bug in a/);
    // The server was closed before the exit, not cut.
    expect(run.stdout).toContain('closed cleanly');
  });
});
