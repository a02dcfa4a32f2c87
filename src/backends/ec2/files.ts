/** Files API on an EC2 workspace: SFTP over the generation's key, host key pinned. */
import { BackendError, type FileEntry, type WorkspaceRoot } from '../backend.js';
import type { SshTarget } from './ssh.js';

export async function listFiles(
  _target: SshTarget,
  _root: WorkspaceRoot,
  _path: string,
  _depth: number,
): Promise<FileEntry[]> {
  throw new BackendError('permanent', 'listFiles is not implemented on ec2 yet');
}

export async function writeFile(
  _target: SshTarget,
  _root: WorkspaceRoot,
  _path: string,
  _content: Buffer,
): Promise<void> {
  throw new BackendError('permanent', 'writeFile is not implemented on ec2 yet');
}

export async function deleteFile(_target: SshTarget, _root: WorkspaceRoot, _path: string): Promise<void> {
  throw new BackendError('permanent', 'deleteFile is not implemented on ec2 yet');
}
