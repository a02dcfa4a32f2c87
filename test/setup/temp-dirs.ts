/** Every file's temporary directories (test/support/temp-dirs.ts) go after its last hook. */
import { afterAll } from 'vitest';
import { removeTempDirs } from '../support/temp-dirs.js';

// Registered before the file's own hooks, so it runs after them (after-hooks run in reverse order):
// a stack is closed before its data directory goes.
afterAll(removeTempDirs);
