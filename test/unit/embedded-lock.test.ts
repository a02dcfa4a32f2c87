/**
 * The embedded database's lock: a killed owner that its parent has not reaped yet (a zombie) holds
 * nothing, so a new process may take the folder over (a crash-restart under an init that reaps
 * late kept the service down: "in use by process <the killed one>").
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { isZombie } from '../../src/db/database.js';
import { waitFor } from '../setup/wait-for.js';

const parents: Array<{ kill: () => boolean }> = [];
afterEach(() => {
  for (const p of parents.splice(0)) p.kill();
});

describe('isZombie', () => {
  it('tells a zombie from a live process', async () => {
    // The shell starts a child that exits at once, then becomes `sleep`, which never reaps it.
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    parents.push(parent);
    const pid = await new Promise<number>((resolve) =>
      parent.stdout.once('data', (d: Buffer) => resolve(Number(d))),
    );
    await waitFor(() => /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')), {
      timeoutMs: 10_000,
      intervalMs: 10,
      describe: 'the child to have exited unreaped',
    });
    expect(isZombie(pid)).toBe(true);
    expect(isZombie(parent.pid!)).toBe(false);
    expect(isZombie(process.pid)).toBe(false);
    // No such process: not a zombie (kill(0) says it is gone).
    expect(isZombie(2 ** 22 + 7)).toBe(false);
  });
});
