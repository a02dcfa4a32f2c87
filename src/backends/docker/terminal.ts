/** Terminal on a Docker workspace: `docker exec` with a TTY, hijacked stdin/stdout, exec resize. */
import type Dockerode from 'dockerode';
import { BackendError, type TerminalSession, type TerminalSize } from '../backend.js';

export async function openTerminal(
  _docker: Dockerode,
  _container: string,
  _size: TerminalSize,
): Promise<TerminalSession> {
  throw new BackendError('permanent', 'openTerminal is not implemented on docker yet');
}
