/**
 * Temporary files of uploads that never finished. The files API writes a file as
 * `.wo-upload-<id>` beside its target and renames it over the target once whole; a write cut by a
 * crash on the way (the API killed mid-upload over SSH, dockerd gone with the container) leaves
 * that file behind, holding disk space. The listing hides them; the agent, which is on the
 * workspace's disk, removes the ones no live upload can still be writing.
 */
import { lstat, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** The prefix the backends give a temporary upload (src/backends/{docker,ec2}/files.ts). */
export const UPLOAD_TEMP_PREFIX = '.wo-upload-';

/** Older than this, no upload can still be writing it (the longest upload is cut well before). */
export const UPLOAD_LEFTOVER_AGE_MS = 60 * 60_000;

/** Bounds of one sweep: a huge tree costs a bounded walk, the rest waits for the next sweep. */
const MAX_ENTRIES = 200_000;
const MAX_DEPTH = 32;

/**
 * Removes regular files named `.wo-upload-*` last modified more than `maxAgeMs` ago, anywhere
 * under the roots. Links are never followed (a link to elsewhere is not entered, a link named so
 * is not a regular file); an entry that vanishes or cannot be read is skipped. Answers the paths
 * removed.
 */
export async function removeUploadLeftovers(
  roots: readonly string[],
  maxAgeMs = UPLOAD_LEFTOVER_AGE_MS,
  now = Date.now(),
): Promise<string[]> {
  const removed: string[] = [];
  let seen = 0;
  const walk = async (dir: string, depth: number): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (++seen > MAX_ENTRIES) return;
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        if (depth < MAX_DEPTH) await walk(path, depth + 1);
      } else if (e.isFile() && e.name.startsWith(UPLOAD_TEMP_PREFIX)) {
        try {
          const st = await lstat(path);
          if (st.isFile() && now - st.mtimeMs > maxAgeMs) {
            await unlink(path);
            removed.push(path);
          }
        } catch {
          // Gone meanwhile, or not ours to remove: the next sweep looks again.
        }
      }
    }
  };
  for (const root of roots) await walk(root, 0);
  return removed;
}
