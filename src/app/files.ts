/**
 * Files of a workspace, served directly by its backend (not through Temporal): they live in the
 * running generation's resource, so the workspace must be online (or degraded).
 */
import {
  BackendError,
  type FileContent,
  type FileListing,
  type FileStream,
  type WorkspaceBackend,
  type WorkspaceRoot,
} from '../backends/backend.js';
import type { BackendKind } from '../backends/backend.js';
import type { Queryable } from '../db/queryable.js';
import { getWorkspace, type WorkspaceRow } from '../db/workspaces.js';
import { AppError, conflicting, invalid, missing } from './errors.js';

export interface FileDeps {
  backends: Record<BackendKind, WorkspaceBackend>;
  /** Where the workspace's row is read again when a backend call fails (see backendCall). */
  db: Queryable;
}

/** Where a file is: one of the workspace's roots and a path relative to it. */
export interface FilePlace {
  root: WorkspaceRoot;
  path: string;
}

const isOnline = (w: Pick<WorkspaceRow, 'status'>): boolean =>
  w.status === 'online' || w.status === 'degraded';

/** The 409 of a workspace that is not online (its status named). */
const notOnline = (w: Pick<WorkspaceRow, 'id' | 'status'>) =>
  conflicting(`workspace ${w.id} is ${w.status}, not online`, 'not_online');

/** The workspace's files are reachable only while it runs. */
export function requireOnline(w: WorkspaceRow): void {
  if (!isOnline(w)) throw notOnline(w);
}

/** A backend's refusal in the use case's terms; a bad or escaping path is the caller's. */
function refusal(err: unknown): unknown {
  if (!(err instanceof BackendError)) return err;
  switch (err.code) {
    case 'invalid_path':
      return invalid(`path: ${err.message}`, 'path');
    case 'not_found':
      return missing('file');
    case 'not_running':
      // The database said online a moment ago; the resource says otherwise (api.md: 409).
      return conflicting(`the workspace is not running: ${err.message}`, 'not_online');
    case 'no_space':
      return new AppError(
        'insufficient_storage',
        'insufficient_storage',
        `the workspace's disk is full; nothing was written: ${err.message}`,
      );
    case 'transient':
      return new AppError(
        'unavailable',
        'backend_unavailable',
        'the workspace backend is unavailable; retry',
        { retryAfterSeconds: 1 },
        { cause: err },
      );
    default:
      return new AppError(
        'upstream_failed',
        'backend_error',
        'the workspace backend refused the operation',
        {},
        { cause: err },
      );
  }
}

/**
 * A failure of the backend itself (the resource unreachable, the call cut), as opposed to an answer
 * about the file or the path: the workspace may have left `online` while the call ran.
 */
const backendFailure = (err: unknown): boolean =>
  err instanceof BackendError && (err.code === 'transient' || err.code === 'permanent');

/**
 * Runs a backend call for `w`. When it fails as the backend (unreachable, cut short), the row is
 * read again before answering: a restart, stop or delete accepted while the call ran took the
 * resource it used away (its status left online/degraded, or its generation moved on), and that is
 * the 409 `not_online` of a workspace that is not online (api.md), not a 503 whose retry would get
 * that same 409. With the workspace still online at its generation, the refusal stands (503 with
 * Retry-After: a real outage); so does it when the row cannot be read.
 */
async function backendCall<T>(deps: FileDeps, w: WorkspaceRow, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (backendFailure(err)) {
      const now = await getWorkspace(deps.db, w.id).catch(() => undefined);
      if (now === null) throw notOnline({ id: w.id, status: 'deleted' });
      if (now && !isOnline(now)) throw notOnline(now);
      if (now && now.generation !== w.generation) {
        throw conflicting(
          `workspace ${w.id} moved from generation ${w.generation} to ${now.generation} during the call, not online at generation ${w.generation}`,
          'not_online',
        );
      }
    }
    throw refusal(err);
  }
}

export function listFiles(
  deps: FileDeps,
  w: WorkspaceRow,
  at: FilePlace & { depth: number },
  maxEntries: number,
): Promise<FileListing> {
  return backendCall(deps, w, () =>
    deps.backends[w.backend].listFiles(w.id, w.generation, at.root, at.path, at.depth, maxEntries),
  );
}

/** `dir/` names a folder: a file is never read or written under it as `dir`. */
function refuseFolderPath(at: FilePlace): void {
  if (at.path.endsWith('/')) throw invalid('path: ends with "/" (a folder), not a file name', 'path');
}

/** Opens a file for reading, refused (and closed) when it is over `maxBytes`. */
export async function openFile(
  deps: FileDeps,
  w: WorkspaceRow,
  at: FilePlace,
  maxBytes: number,
): Promise<FileStream> {
  refuseFolderPath(at);
  const file = await backendCall(deps, w, () =>
    deps.backends[w.backend].openFile(w.id, w.generation, at.root, at.path, maxBytes),
  );
  if (file.size > maxBytes) {
    file.stream.destroy();
    throw new AppError(
      'too_large',
      'file_too_large',
      `the file is ${file.size} bytes; reads are capped at ${maxBytes} bytes`,
    );
  }
  return file;
}

export function writeFile(
  deps: FileDeps,
  w: WorkspaceRow,
  at: FilePlace,
  content: FileContent,
): Promise<void> {
  refuseFolderPath(at);
  return backendCall(deps, w, () =>
    deps.backends[w.backend].writeFile(w.id, w.generation, at.root, at.path, content),
  );
}

export function deleteFile(deps: FileDeps, w: WorkspaceRow, at: FilePlace): Promise<void> {
  return backendCall(deps, w, () =>
    deps.backends[w.backend].deleteFile(w.id, w.generation, at.root, at.path),
  );
}
