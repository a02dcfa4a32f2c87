import { posix } from 'node:path';
import { BackendError, type WorkspaceRoot } from './backend.js';

const ROOTS: readonly WorkspaceRoot[] = ['/configs', '/workspace'];

/** Linux's NAME_MAX, and PATH_MAX less the longest root; the depth is the platform's own bound. */
export const NAME_MAX_BYTES = 255;
export const PATH_MAX_BYTES = 4000;
export const PATH_MAX_DEPTH = 128;

/**
 * A write's temporary file, beside its target until renamed over it. One that a crash left behind
 * is not the caller's file: listings skip such regular files, and the agent removes them once old
 * (src/agent/upload-leftovers.ts). So no caller's path may use the name: a file written under it
 * would be hidden, then deleted.
 */
export const UPLOAD_TEMP_PREFIX = '.wo-upload-';
export const isUploadTemp = (name: string): boolean => name.startsWith(UPLOAD_TEMP_PREFIX);

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
  // What no file system takes (a name over 255 bytes, a path over PATH_MAX) or no workspace needs
  // (a depth each level of which costs a round trip to create): refused here, not as a backend's
  // failure (a 503 inviting retries) after half the folders were made.
  if (segments.length > PATH_MAX_DEPTH)
    throw new BackendError('invalid_path', `path is more than ${PATH_MAX_DEPTH} levels deep`);
  const long = segments.find((s) => Buffer.byteLength(s) > NAME_MAX_BYTES);
  if (long !== undefined)
    throw new BackendError('invalid_path', `a name is over ${NAME_MAX_BYTES} bytes (${long.slice(0, 16)}…)`);
  if (Buffer.byteLength(path) > PATH_MAX_BYTES)
    throw new BackendError('invalid_path', `path is over ${PATH_MAX_BYTES} bytes`);
  if (segments.some(isUploadTemp))
    throw new BackendError(
      'invalid_path',
      `names starting with ${UPLOAD_TEMP_PREFIX} are reserved for uploads`,
    );
  // Older agents kept the bundle (workspace token, secrets) in /configs/.wo: never served.
  if (root === '/configs' && segments[0] === '.wo')
    throw new BackendError('invalid_path', 'path is reserved');
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

/** The full path a set of segments names under the root (the root itself when empty). */
export const joinUnderRoot = (root: WorkspaceRoot, segs: readonly string[]): string =>
  segs.length ? `${root}/${segs.join('/')}` : root;

/** A listing request after its checks: depth ≥ 1, the path's segments and the full path. */
export function listingPath(
  root: WorkspaceRoot,
  path: string,
  depth: number,
): { segs: string[]; full: string } {
  if (!Number.isInteger(depth) || depth < 1) throw new BackendError('invalid_path', 'depth must be ≥ 1');
  const segs = pathSegments(root, path, { listing: true });
  return { segs, full: joinUnderRoot(root, segs) };
}
