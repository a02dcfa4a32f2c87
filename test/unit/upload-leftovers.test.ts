/**
 * The agent's sweep of unfinished uploads: old `.wo-upload-*` files go, anywhere under the roots;
 * a fresh one (an upload that may still be writing), other files, directories named so and links
 * stay, and a link to a directory elsewhere is never entered.
 */
import { mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { removeUploadLeftovers, UPLOAD_TEMP_PREFIX } from '../../src/agent/upload-leftovers.js';
import { UPLOAD_TEMP_PREFIX as BACKEND_PREFIX } from '../../src/backends/paths.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function file(path: string, ageMs: number): Promise<void> {
  await writeFile(path, 'x');
  const t = new Date(Date.now() - ageMs);
  await utimes(path, t, t);
}

describe('removeUploadLeftovers', () => {
  it('removes old temporary uploads under every root and nothing else', async () => {
    const [configs, work, outside] = await Promise.all(
      [1, 2, 3].map(() => mkdtemp(join(tmpdir(), 'wo-ul-'))),
    );
    dirs.push(configs!, work!, outside!);
    const HOUR = 60 * 60_000;
    await mkdir(join(work!, 'a/b/c'), { recursive: true });
    await file(join(work!, '.wo-upload-old1'), 2 * HOUR);
    await file(join(work!, 'a/b/c/.wo-upload-old2'), 3 * HOUR);
    await file(join(configs!, '.wo-upload-old3'), 2 * HOUR);
    await file(join(work!, '.wo-upload-fresh'), 60_000);
    await file(join(work!, 'a/keep.txt'), 5 * HOUR);
    await file(join(work!, 'a/wo-upload-not-a-temp'), 5 * HOUR);
    await mkdir(join(work!, '.wo-upload-dir'));
    // Outside the roots, reachable only through a link: never entered.
    await file(join(outside!, '.wo-upload-elsewhere'), 5 * HOUR);
    await symlink(outside!, join(work!, 'a/link-out'));
    await symlink(join(outside!, '.wo-upload-elsewhere'), join(work!, '.wo-upload-link'));

    const removed = await removeUploadLeftovers([configs!, work!]);
    expect(removed.sort()).toEqual(
      [
        join(configs!, '.wo-upload-old3'),
        join(work!, '.wo-upload-old1'),
        join(work!, 'a/b/c/.wo-upload-old2'),
      ].sort(),
    );
    expect((await readdir(work!)).sort()).toEqual([
      '.wo-upload-dir',
      '.wo-upload-fresh',
      '.wo-upload-link',
      'a',
    ]);
    expect(await readdir(join(work!, 'a/b/c'))).toEqual([]);
    expect((await readdir(join(work!, 'a'))).sort()).toEqual([
      'b',
      'keep.txt',
      'link-out',
      'wo-upload-not-a-temp',
    ]);
    expect(await readdir(outside!)).toEqual(['.wo-upload-elsewhere']);
    expect(await readdir(configs!)).toEqual([]);
  });

  it('a missing root is skipped; the prefix is the one the backends write', async () => {
    expect(await removeUploadLeftovers([join(tmpdir(), 'wo-ul-missing-root')])).toEqual([]);
    expect(UPLOAD_TEMP_PREFIX).toBe(BACKEND_PREFIX);
  });
});
