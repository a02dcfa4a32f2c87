/**
 * `wsctl ws terminal <id>`: a shell in the workspace over the terminal WebSocket. Interactive when
 * stdin is a TTY (raw mode, resize on SIGWINCH as `{"type":"resize","cols","rows"}`, the tty
 * restored however the session ends); with piped stdin the bytes are sent as they are and the
 * session ends when the shell exits (an end of input sends one Ctrl-D, which ends an idle shell).
 */
import type { Command } from 'commander';
import WebSocket from 'ws';
import { contextOf } from './context.js';
import { CliError, EXIT, exitCodeForClose, oneLine, type ExitCode } from './errors.js';
import { wsPath } from './http.js';
import type { Io } from './output.js';

const EOT = Buffer.from([0x04]);

export function terminalCommand(ws: Command, io: Io): void {
  ws.command('terminal')
    .description('interactive shell in the workspace (exit the shell to leave)')
    .argument('<id>')
    .action(async (id: string, _o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      if (!ctx.client.token)
        throw new CliError(EXIT.auth, 'no token: pass --token, set WO_TOKEN, or run wsctl login');
      const code = await runTerminal(io, ctx.client.href(wsPath(id, '/terminal')), ctx.client.token);
      if (code.exit !== EXIT.ok)
        throw new CliError(code.exit, oneLine(`terminal: ${code.reason || `closed ${code.close}`}`));
    });
}

function size(io: Io): { cols: number; rows: number } | null {
  const out = io.stdout as NodeJS.WriteStream;
  return out.isTTY && out.columns && out.rows ? { cols: out.columns, rows: out.rows } : null;
}

export async function runTerminal(
  io: Io,
  httpUrl: string,
  token: string,
): Promise<{ exit: ExitCode; close: number; reason: string }> {
  const url = new URL(httpUrl.replace(/^http/, 'ws'));
  const initial = size(io);
  if (initial) {
    url.searchParams.set('cols', String(initial.cols));
    url.searchParams.set('rows', String(initial.rows));
  }
  const sock = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
  const interactive = io.stdin.isTTY === true && typeof io.stdin.setRawMode === 'function';
  let raw = false;
  const restore = () => {
    if (raw) io.stdin.setRawMode?.(false);
    raw = false;
  };
  const onResize = () => {
    const s = size(io);
    if (s && sock.readyState === WebSocket.OPEN) sock.send(JSON.stringify({ type: 'resize', ...s }));
  };
  const onInput = (chunk: Buffer | string) => {
    if (sock.readyState === WebSocket.OPEN)
      sock.send(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, { binary: true });
  };
  const onEnd = () => {
    if (sock.readyState === WebSocket.OPEN) sock.send(EOT, { binary: true });
  };
  // The tty must come back even on a crash or a signal.
  process.once('exit', restore);

  try {
    return await new Promise((resolve, reject) => {
      sock.on('open', () => {
        if (interactive) {
          io.stdin.setRawMode!(true);
          raw = true;
          process.on('SIGWINCH', onResize);
        }
        io.stdin.on('data', onInput);
        io.stdin.on('end', onEnd);
        io.stdin.resume();
      });
      sock.on('message', (data, isBinary) => {
        if (isBinary)
          io.stdout.write(Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer));
      });
      sock.on('unexpected-response', (_req, res) => {
        reject(
          new CliError(
            EXIT.unavailable,
            `terminal: the server answered ${res.statusCode} instead of a WebSocket`,
          ),
        );
      });
      sock.on('error', (err) => reject(new CliError(EXIT.unavailable, `terminal: ${err.message}`)));
      sock.on('close', (code, reason) => {
        resolve({ exit: exitCodeForClose(code), close: code, reason: reason.toString('utf8') });
      });
    });
  } finally {
    restore();
    process.off('exit', restore);
    process.off('SIGWINCH', onResize);
    io.stdin.off('data', onInput);
    io.stdin.off('end', onEnd);
    io.stdin.pause();
    if (sock.readyState === WebSocket.OPEN || sock.readyState === WebSocket.CONNECTING) sock.terminate();
  }
}
