/**
 * `wsctl ws terminal` against a local WebSocket server standing in for the API: raw mode while the
 * session runs and restored after, the initial size in the query, a resize message on SIGWINCH,
 * bytes both ways, and the contract's close codes mapped to exit codes.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { EXIT } from '../../src/cli/wsctl/errors.js';
import type { Io } from '../../src/cli/wsctl/output.js';
import { runTerminal } from '../../src/cli/wsctl/terminal.js';
import { waitFor } from '../setup/wait-for.js';

type Handler = (ws: WebSocket, url: URL, auth: string | undefined) => void;

describe('wsctl terminal', () => {
  let server: Server;
  let wss: WebSocketServer;
  let base: string;
  let handler: Handler = () => undefined;
  beforeAll(async () => {
    server = createServer();
    wss = new WebSocketServer({ server });
    wss.on('connection', (ws, req) => handler(ws, new URL(req.url!, 'http://x'), req.headers.authorization));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function ttyIo() {
    const rawCalls: boolean[] = [];
    const stdin = Object.assign(new PassThrough(), {
      isTTY: true,
      setRawMode: (raw: boolean) => rawCalls.push(raw),
    });
    const stdout = Object.assign(new PassThrough(), { isTTY: true, columns: 100, rows: 30 });
    let out = '';
    stdout.on('data', (d: Buffer) => (out += d.toString()));
    const io: Io = { stdin, stdout, stderr: new PassThrough(), env: {} };
    return { io, stdin, stdout, rawCalls, output: () => out };
  }

  it('runs raw, sends the size and resizes on SIGWINCH, restores the tty when the shell exits', async () => {
    const t = ttyIo();
    const control: unknown[] = [];
    let query = '';
    let auth: string | undefined;
    handler = (ws, url, a) => {
      query = url.search;
      auth = a;
      ws.send(Buffer.from('$ '), { binary: true });
      ws.on('message', (data, isBinary) => {
        const text = (data as Buffer).toString();
        if (!isBinary) {
          control.push(JSON.parse(text));
          // Input typed after the resize proves the order; the shell then exits.
          t.stdin.write('exit\r');
          return;
        }
        ws.send(Buffer.from(`echo:${text}`), { binary: true });
        if (text.includes('exit')) ws.close(1000, 'shell exited 0');
      });
      // Once the client has its session open (it listens for SIGWINCH), the window changes size.
      void waitFor(() => process.listenerCount('SIGWINCH') > 0, {
        timeoutMs: 10_000,
        intervalMs: 5,
        describe: 'the client to listen for SIGWINCH',
      }).then(() => {
        t.stdout.columns = 120;
        process.emit('SIGWINCH', 'SIGWINCH');
      });
    };
    const result = await runTerminal(t.io, `${base}/v1/workspaces/abc/terminal`, 'tok');
    expect(result).toEqual({ exit: EXIT.ok, close: 1000, reason: 'shell exited 0' });
    expect(auth).toBe('Bearer tok');
    expect(query).toBe('?cols=100&rows=30');
    expect(control).toEqual([{ type: 'resize', cols: 120, rows: 30 }]);
    expect(t.output()).toBe('$ echo:exit\r');
    // Raw for the session, restored after; no SIGWINCH listener left behind.
    expect(t.rawCalls).toEqual([true, false]);
    expect(process.listenerCount('SIGWINCH')).toBe(0);
  });

  it('piped stdin: bytes as they are, then one Ctrl-D at the end of input', async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    let out = '';
    stdout.on('data', (d: Buffer) => (out += d.toString()));
    const got: string[] = [];
    handler = (ws) => {
      ws.on('message', (data) => {
        got.push((data as Buffer).toString('hex'));
        if ((data as Buffer).equals(Buffer.from([4]))) ws.close(1000, 'shell exited 0');
        else ws.send(Buffer.from('ok'), { binary: true });
      });
    };
    stdin.end('echo hi\n');
    const result = await runTerminal(
      { stdin, stdout, stderr: new PassThrough(), env: {} },
      `${base}/t`,
      'tok',
    );
    expect(result.exit).toBe(EXIT.ok);
    expect(got).toEqual([Buffer.from('echo hi\n').toString('hex'), '04']);
    expect(out).toBe('ok');
  });

  it.each([
    [4401, EXIT.auth],
    [4404, EXIT.notFound],
    [4409, EXIT.conflict],
    [1011, EXIT.generic],
  ])('close code %i exits %i, with the tty restored', async (code, exit) => {
    const t = ttyIo();
    handler = (ws) => ws.close(code, 'refused');
    const result = await runTerminal(t.io, `${base}/t`, 'tok');
    expect(result).toEqual({ exit, close: code, reason: 'refused' });
    expect(t.rawCalls.at(-1) ?? false).toBe(false);
  });
});
