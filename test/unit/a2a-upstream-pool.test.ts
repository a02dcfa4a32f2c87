/**
 * The proxy's kept-alive upstream pool, against a raw TCP server standing in for the agent (so the
 * test decides exactly when a connection dies): calls reuse one connection; a kept-alive connection
 * the agent dropped is retried once over a new one for a read (never for a call the agent may have
 * acted on); the idle timeout still holds per request on a
 * reused connection; the liveness probe never rides the pool. The server answers the identity check
 * (src/a2a/identity.ts) of each new connection as the genuine agent does; those exchanges are not
 * counted as requests.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Failure, probe, readAll, request, upstreamAgent } from '../../src/a2a/proxy.js';
import { IDENTITY_PATH } from '../../src/security/agent-identity.js';
import { rawIdentityAnswer } from '../support/agent-identity.js';
import { waitFor } from '../setup/wait-for.js';

type Behaviour = (conn: number, req: number, socket: net.Socket) => void;

const identity = { workspaceId: 'w1', generation: 3, credential: 'cred-w1-3' };

const ok = (socket: net.Socket, body = '{"ok":true}') =>
  socket.write(
    `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `connection: keep-alive\r\n\r\n${body}`,
  );

let servers: net.Server[] = [];
afterEach(async () => {
  upstreamAgent.destroy();
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  servers = [];
});

/** A server answering each request (one per `\r\n\r\n`-ended head, bodies are not sent) per `on`. */
async function agentServer(on: Behaviour): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  const server = net.createServer((socket) => {
    const conn = ++connections;
    let reqs = 0;
    let buf = '';
    socket.on('error', () => undefined);
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      while (buf.includes('\r\n\r\n')) {
        const head = buf.slice(0, buf.indexOf('\r\n\r\n'));
        buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
        if (head.startsWith(`GET ${IDENTITY_PATH} `))
          socket.write(rawIdentityAnswer(head, identity.credential));
        else on(conn, ++reqs, socket);
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
  };
}

const lim = { connectTimeoutMs: 5_000, idleTimeoutMs: 5_000 };
const get = async (url: string, l = lim) => {
  const res = await request(new URL('/x', url), { method: 'GET', identity }, null, l);
  return { status: res.statusCode, body: await readAll(res, 1024) };
};

describe('upstream pool', () => {
  it('sequential calls share one kept-alive connection', async () => {
    const s = await agentServer((_c, _r, socket) => ok(socket));
    for (let i = 0; i < 5; i++) expect((await get(s.url)).status).toBe(200);
    expect(s.connections()).toBe(1);
  });

  it('a kept-alive connection the agent dropped is retried once over a new one', async () => {
    // The first connection answers its first request, then resets on the next one.
    const s = await agentServer((conn, req, socket) => {
      if (conn === 1 && req > 1) socket.resetAndDestroy();
      else ok(socket, `{"conn":${conn}}`);
    });
    expect((await get(s.url)).body).toBe('{"conn":1}');
    expect((await get(s.url)).body).toBe('{"conn":2}');
    expect(s.connections()).toBe(2);
  });

  it('the same drop under a call that is not a read is not sent again: it may have reached the agent', async () => {
    let requests = 0;
    const s = await agentServer((conn, req, socket) => {
      requests++;
      // As an agent that read the call, acted on it and crashed before answering.
      if (conn === 1 && req > 1) socket.resetAndDestroy();
      else ok(socket);
    });
    const post = () =>
      request(
        new URL('/', s.url),
        { method: 'POST', headers: { 'content-length': '2' }, identity },
        Buffer.from('{}'),
        lim,
      );
    await readAll(await post(), 1024);
    await expect(post()).rejects.toMatchObject({ kind: 'unreachable', mayHaveReached: true });
    expect(requests).toBe(2);
    expect(s.connections()).toBe(1);
    // Said to be a read, the same call goes once more over a new connection.
    const read = await request(
      new URL('/', s.url),
      { method: 'POST', headers: { 'content-length': '2' }, identity },
      Buffer.from('{}'),
      lim,
      undefined,
      true,
    );
    expect(read.statusCode).toBe(200);
    read.resume();
  });

  it('a fresh connection refused is not retried: unreachable', async () => {
    const s = await agentServer((_c, _r, socket) => socket.resetAndDestroy());
    await expect(get(s.url)).rejects.toMatchObject({ kind: 'unreachable' });
  });

  it('the idle timeout holds per request on a reused connection', async () => {
    // Answers the first request of each connection; stays silent on later ones.
    const s = await agentServer((_c, req, socket) => {
      if (req === 1) ok(socket);
    });
    const short = { connectTimeoutMs: 5_000, idleTimeoutMs: 150 };
    expect((await get(s.url, short)).status).toBe(200);
    const err = await get(s.url, short).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Failure);
    expect((err as Failure).kind).toBe('timeout');
    expect(s.connections()).toBe(1);
  });

  it('no timeout listener piles up on a reused connection', async () => {
    const s = await agentServer((_c, _r, socket) => ok(socket));
    let socket: net.Socket | null = null;
    for (let i = 0; i < 20; i++) {
      const res = await request(new URL('/x', s.url), { method: 'GET', identity }, null, lim);
      socket = res.socket;
      await readAll(res, 1024);
    }
    expect(s.connections()).toBe(1);
    expect(socket!.listenerCount('timeout')).toBeLessThan(5);
  });

  it('an abort before the answer destroys the request: unreachable (ABORT_ERR)', async () => {
    const s = await agentServer(() => undefined);
    const abort = new AbortController();
    const pending = request(new URL('/x', s.url), { method: 'GET', identity }, null, lim, abort.signal);
    await waitFor(() => s.connections() >= 1, {
      timeoutMs: 5_000,
      intervalMs: 5,
      describe: 'the agent to be reached',
    });
    abort.abort();
    await expect(pending).rejects.toMatchObject({ kind: 'unreachable', message: 'ABORT_ERR' });
  });

  it('an abort mid-answer cuts the answer; after the exchange the signal holds no listener', async () => {
    // Head and part of the body; the rest never comes.
    const s = await agentServer((_c, _r, socket) =>
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"par'),
    );
    const abort = new AbortController();
    const res = await request(new URL('/x', s.url), { method: 'GET', identity }, null, lim, abort.signal);
    const closed = new Promise<boolean>((resolve) => res.on('close', () => resolve(res.complete)));
    res.on('error', () => undefined);
    res.resume();
    abort.abort();
    expect(await closed).toBe(false);

    // A whole exchange: the listener it added is gone once it closed.
    const whole = await agentServer((_c, _r, socket) => ok(socket));
    const done = new AbortController();
    let listeners = 0;
    const add = done.signal.addEventListener.bind(done.signal);
    done.signal.addEventListener = ((...args: Parameters<typeof add>) => {
      listeners++;
      add(...args);
    }) as typeof add;
    const remove = done.signal.removeEventListener.bind(done.signal);
    done.signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
      listeners--;
      remove(...args);
    }) as typeof remove;
    const answer = await request(
      new URL('/x', whole.url),
      { method: 'GET', identity },
      null,
      lim,
      done.signal,
    );
    expect(await readAll(answer, 1024)).toBe('{"ok":true}');
    // The request closes just after its answer ended.
    await waitFor(() => listeners === 0, {
      timeoutMs: 5_000,
      intervalMs: 5,
      describe: 'the abort listener to be removed',
    });
    expect(listeners).toBe(0);
  });

  it('the liveness probe opens its own connection', async () => {
    const s = await agentServer((_c, _r, socket) => ok(socket));
    expect((await get(s.url)).status).toBe(200);
    expect(await probe(s.url, identity, 2_000)).toBe(true);
    expect(s.connections()).toBe(2);
  });
});
