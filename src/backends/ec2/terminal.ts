/** Terminal on an EC2 workspace: an SSH shell on a PTY, window-change for resize. */
import { BackendError, type TerminalSession, type TerminalSize } from '../backend.js';
import type { SshTarget } from './ssh.js';

export async function openTerminal(_target: SshTarget, _size: TerminalSize): Promise<TerminalSession> {
  throw new BackendError('permanent', 'openTerminal is not implemented on ec2 yet');
}
