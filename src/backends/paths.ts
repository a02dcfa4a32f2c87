import { posix } from 'node:path';
import { BackendError, type WorkspaceRoot } from './backend.js';

const ROOTS: readonly WorkspaceRoot[] = ['/configs', '/workspace'];

/**
 * Joins an allowed root and a caller-supplied relative path, refusing anything that could leave the
 * root lexically: absolute paths, `..` segments, NUL, backslashes, and the root itself.
 */
export function workspacePath(root: WorkspaceRoot, path: string): string {
  if (!ROOTS.includes(root))
    throw new BackendError('invalid_path', `root must be one of ${ROOTS.join(', ')}`);
  if (path.includes('\0')) throw new BackendError('invalid_path', 'path contains NUL');
  if (path.includes('\\')) throw new BackendError('invalid_path', 'path contains a backslash');
  if (posix.isAbsolute(path)) throw new BackendError('invalid_path', 'path must be relative to the root');
  const segments = path.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw new BackendError('invalid_path', 'path must not contain ..');
  if (segments.length === 0) throw new BackendError('invalid_path', 'path names the root itself');
  return `${root}/${segments.join('/')}`;
}

/**
 * The path's segments under the root, after the lexical checks of workspacePath. A listing may name
 * the root itself ('' or '.'), which gives no segments; nothing else may.
 */
export function pathSegments(root: WorkspaceRoot, path: string, opts: { listing?: boolean } = {}): string[] {
  if (opts.listing && (path === '' || path === '.')) {
    if (!ROOTS.includes(root)) {
      throw new BackendError('invalid_path', `root must be one of ${ROOTS.join(', ')}`);
    }
    return [];
  }
  return workspacePath(root, path)
    .slice(root.length + 1)
    .split('/');
}
