/** Files API on a Docker workspace: archive get/put and exec inside the generation's container. */
import type Dockerode from 'dockerode';
import { BackendError, type FileEntry, type WorkspaceRoot } from '../backend.js';

export async function listFiles(
  _docker: Dockerode,
  _container: string,
  _root: WorkspaceRoot,
  _path: string,
  _depth: number,
): Promise<FileEntry[]> {
  throw new BackendError('permanent', 'listFiles is not implemented on docker yet');
}

export async function writeFile(
  _docker: Dockerode,
  _container: string,
  _root: WorkspaceRoot,
  _path: string,
  _content: Buffer,
): Promise<void> {
  throw new BackendError('permanent', 'writeFile is not implemented on docker yet');
}

export async function deleteFile(
  _docker: Dockerode,
  _container: string,
  _root: WorkspaceRoot,
  _path: string,
): Promise<void> {
  throw new BackendError('permanent', 'deleteFile is not implemented on docker yet');
}
