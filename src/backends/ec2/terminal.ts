/** Terminal on an EC2 workspace: an SSH shell on a PTY, window-change for resize. */
import type { ClientChannel } from 'ssh2';
import { BackendError, type TerminalSession, type TerminalSize } from '../backend.js';
import { drained } from '../streams.js';
import { connectSsh, type SshTarget } from './ssh.js';

export async function openTerminal(target: SshTarget, size: TerminalSize): Promise<TerminalSession> {
  const { conn, where, closed } = await connectSsh(target);
  let stream: ClientChannel;
  try {
    stream = await new Promise<ClientChannel>((resolve, reject) => {
      conn.once('close', () => reject(new BackendError('transient', `ssh ${where}: connection closed`)));
      // The user's shell in /workspace, as on docker (the container's working dir); a command
      // session, so sshd prints no login banner (lastlog, motd) into the terminal either.
      const pty = { term: 'xterm', cols: size.cols, rows: size.rows };
      conn.exec('cd /workspace 2>/dev/null || cd; exec "${SHELL:-/bin/sh}"', { pty }, (err, s) =>
        err
          ? reject(new BackendError('transient', `shell on ${where}: ${err.message}`, { cause: err }))
          : resolve(s),
      );
    });
  } catch (err) {
    conn.end();
    throw err;
  }

  let exitCode: number | null = null;
  stream.once('exit', (code: unknown) => {
    if (typeof code === 'number') exitCode = code;
  });
  // On a PTY sshd merges stderr into the channel's data; anything sent apart is drained.
  stream.stderr.resume();
  // The shell's channel closing ends the session: the connection (one per terminal) goes with it.
  const channelClosed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  const exited = Promise.race([channelClosed, closed]).then(() => {
    conn.end();
    return exitCode;
  });

  let closing: Promise<void> | null = null;
  return {
    output: stream,
    write(data: Buffer) {
      return stream.writable ? stream.write(data) : true;
    },
    drained: () => drained(stream),
    async resize({ cols, rows }: TerminalSize) {
      if (!stream.writable) throw new BackendError('transient', `shell on ${where} is closed`);
      stream.setWindow(rows, cols, 0, 0);
    },
    exited,
    close() {
      closing ??= (async () => {
        // Ending the connection closes the channel; sshd then hangs up the session's PTY.
        conn.end();
        await Promise.race([closed, new Promise((r) => setTimeout(r, 2_000))]);
        conn.destroy();
      })();
      return closing;
    },
  };
}
