/**
 * Temporary directories a test file makes, removed after the file (test/setup/temp-dirs.ts): a run
 * of the suite used to leave thousands of empty service data dirs and fixture trees in /tmp.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const made: string[] = [];

/** A new directory under the system's temporary directory, gone when the current file's tests end. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}
