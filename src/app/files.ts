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
import type { WorkspaceRow } from '../db/workspaces.js';
import { AppError, conflicting, invalid, missing } from './errors.js';

export interface FileDeps {
  backends: Record<BackendKind, WorkspaceBackend>;
}

/** Where a file is: one of the workspace's roots and a path relative to it. */
export interface FilePlace {
  root: WorkspaceRoot;
  path: string;
}

/** The workspace's files are reachable only while it runs. */
export function requireOnline(w: WorkspaceRow): void {
  if (w.status !== 'online' && w.status !== 'degraded') {
    throw conflicting(`workspace ${w.id} is ${w.status}, not online`, 'not_online');
  }
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
        {
          retryAfterSeconds: 1,
        },
      );
    default:
      return new AppError('upstream_failed', 'backend_error', 'the workspace backend refused the operation');
  }
}

async function backendCall<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw refusal(err);
  }
}

export function listFiles(
  deps: FileDeps,
  w: WorkspaceRow,
  at: FilePlace & { depth: number },
  maxEntries: number,
): Promise<FileListing> {
  return backendCall(() =>
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
  const file = await backendCall(() =>
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
  return backendCall(() => deps.backends[w.backend].writeFile(w.id, w.generation, at.root, at.path, content));
}

export function deleteFile(deps: FileDeps, w: WorkspaceRow, at: FilePlace): Promise<void> {
  return backendCall(() => deps.backends[w.backend].deleteFile(w.id, w.generation, at.root, at.path));
}
