/**
 * The A2A proxy forwards an answer's first bytes as soon as they arrive, whatever it does to save
 * socket writes: the agent sends one part, then waits for the test's signal before the rest; the
 * caller must read that first part before the test gives the signal (a proxy that held it back
 * would leave the read hanging until its deadline). Both an event stream and a JSON answer.
 * The agent is a plain HTTP server on loopback standing in for a workspace's agent.
 */
import http from 'node:http';
import net from 'node:net';
import pg from 'pg';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { A2A_DEFAULTS } from '../../src/a2a/proxy.js';
import pino from 'pino';
import { startService } from '../../src/service.js';
import { insertWorkspaceRow, useStack } from '../support/stack.js';
import { waitFor } from '../setup/wait-for.js';
import {
  provingIdentity,
  rawIdentityAnswerOf,
  stackCredentials,
  type CredentialOf,
} from '../support/agent-identity.js';

/** Deadline for one read: a proxy that buffers fails the test instead of hanging it. */
const READ_DEADLINE_MS = 15_000;

interface GatedAgent {
  url: string;
  /** Answers whose connection closed before the agent finished them (the caller went away). */
  cut: () => number;
  /** Lets the agent send the rest of its current answer. */
  release(): void;
  close(): Promise<void>;
}

/** Set once the stack runs: the credentials its platform presents (the stand-ins prove them). */
let credentialOf: CredentialOf = () => '';

/**
 * Listens on loopback, answering the platform's identity check as the workspace's agent: the
 * server's URL, and a close that also ends the connections it holds.
 */
async function listening(server: http.Server): Promise<{ url: string; close(): Promise<void> }> {
  provingIdentity(server, (ws, gen) => credentialOf(ws, gen));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * An agent answering `first`, then, once released, `rest` (or, with CUT, dropping the connection),
 * as `type`; with `length`, the answer declares its whole length (else it is chunked).
 */
const CUT = Symbol('cut');
async function gatedAgent(
  type: string,
  first: string,
  rest: string | typeof CUT,
  opts: { length?: boolean } = {},
): Promise<GatedAgent> {
  let release: () => void = () => undefined;
  let cut = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    res.on('close', () => {
      if (!res.writableFinished) cut++;
    });
    req.on('end', () => {
      // A cut answer declares ten bytes it never sends.
      const length = Buffer.byteLength(first) + (rest === CUT ? 10 : Buffer.byteLength(rest));
      res.writeHead(200, { 'content-type': type, ...(opts.length ? { 'content-length': length } : {}) });
      res.write(first);
      release = () => (rest === CUT ? res.socket?.destroy() : res.end(rest));
    });
  });
  return { ...(await listening(server)), cut: () => cut, release: () => release() };
}

async function readWithDeadline(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no bytes within ${READ_DEADLINE_MS} ms: the proxy held them back`)),
      READ_DEADLINE_MS,
    );
  });
  try {
    return await Promise.race([reader.read(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * An agent that reads each call and answers only when released (then `answer`, of a declared
 * length); it counts the calls, the /health probes, and the answers cut before they ended.
 */
async function holdingAgent(answer: string) {
  const held: Array<() => void> = [];
  let calls = 0;
  let probes = 0;
  let cut = 0;
  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      probes++;
      res.end('ok');
      return;
    }
    calls++;
    res.on('close', () => {
      if (!res.writableFinished) cut++;
    });
    req.resume();
    req.on('end', () =>
      held.push(() => {
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(answer),
        });
        res.end(answer);
      }),
    );
  });
  return {
    ...(await listening(server)),
    calls: () => calls,
    probes: () => probes,
    cut: () => cut,
    held: () => held.length,
    release: () => held.splice(0).forEach((answerNow) => answerNow()),
  };
}

const body = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'message/stream',
  params: {
    message: { kind: 'message', role: 'user', messageId: 'q', parts: [{ kind: 'text', text: 'go' }] },
  },
});

describe('proxy streaming', () => {
  const t = useStack({ worker: false });
  credentialOf = stackCredentials(() => t.stack);
  const rows: string[] = [];
  const agents: Array<{ close(): Promise<void> }> = [];

  afterAll(async () => {
    // No workflow behind these rows: marked deleted rather than deleted through the API.
    await t.stack.service.db.pool.query(`UPDATE workspaces SET status = 'deleted' WHERE id = ANY($1)`, [
      rows,
    ]);
    for (const a of agents) await a.close();
  });

  async function workspaceAt(agent: { url: string; close(): Promise<void> }): Promise<string> {
    agents.push(agent);
    const id = await insertWorkspaceRow(t.stack.service.db.pool, t.orgId, (i) => `stream-${i}`);
    rows.push(id);
    await t.stack.service.db.pool.query(
      `UPDATE workspaces SET status = 'online', endpoint = $2 WHERE id = $1`,
      [id, agent.url],
    );
    return id;
  }

  /** POST message/send through the proxy with the org key. */
  const callProxy = (id: string, signal?: AbortSignal) =>
    fetch(`${t.stack.url}/v1/workspaces/${id}/a2a`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' },
      body,
      ...(signal ? { signal } : {}),
    });

  /** Calls the proxy; reads until `first` is seen, then releases the agent and reads the rest. */
  async function firstBeforeRelease(id: string, agent: GatedAgent, first: string) {
    const res = await callProxy(id);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let seen = '';
    while (!seen.includes(first)) {
      const { value, done } = await readWithDeadline(reader);
      expect(done).toBe(false);
      seen += decoder.decode(value, { stream: true });
    }
    const beforeRelease = seen;
    agent.release();
    for (;;) {
      const { value, done } = await readWithDeadline(reader);
      if (done) break;
      seen += decoder.decode(value, { stream: true });
    }
    return {
      contentType: res.headers.get('content-type'),
      contentLength: res.headers.get('content-length'),
      beforeRelease,
      all: seen,
    };
  }

  it('an event stream: the first event reaches the caller before the agent sends the next', async () => {
    const event = (n: number) =>
      `data: ${JSON.stringify({ jsonrpc: '2.0', id: 1, result: { kind: 'status-update', n } })}\n\n`;
    const agent = await gatedAgent('text/event-stream', event(1), event(2) + event(3));
    const id = await workspaceAt(agent);
    const got = await firstBeforeRelease(id, agent, event(1));
    expect(got.contentType).toMatch(/^text\/event-stream/);
    expect(got.beforeRelease).toBe(event(1));
    expect(got.all).toBe(event(1) + event(2) + event(3));
  });

  it('a JSON answer: its first bytes reach the caller before the agent sends the rest', async () => {
    const whole = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      result: { kind: 'message', role: 'agent', messageId: 'm', parts: [{ kind: 'text', text: 'done' }] },
    });
    const cut = whole.indexOf('"result"');
    const agent = await gatedAgent('application/json', whole.slice(0, cut), whole.slice(cut));
    const id = await workspaceAt(agent);
    const got = await firstBeforeRelease(id, agent, whole.slice(0, cut));
    expect(got.contentType).toMatch(/^application\/json/);
    expect(got.beforeRelease).toBe(whole.slice(0, cut));
    expect(JSON.parse(got.all)).toEqual(JSON.parse(whole));
  });

  it('a JSON answer of a declared length: first bytes at once, the length passed on, the row before the last byte', async () => {
    const whole = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { kind: 'message', parts: [] } });
    const cut = whole.indexOf('"result"');
    const agent = await gatedAgent('application/json', whole.slice(0, cut), whole.slice(cut), {
      length: true,
    });
    const id = await workspaceAt(agent);
    const got = await firstBeforeRelease(id, agent, whole.slice(0, cut));
    expect(got.beforeRelease).toBe(whole.slice(0, cut));
    expect(got.contentLength).toBe(String(Buffer.byteLength(whole)));
    expect(JSON.parse(got.all)).toEqual(JSON.parse(whole));
    // Read at once, no wait: the row was committed before the answer's last byte left.
    const rows = await t.stack.service.db.pool.query(
      `SELECT status FROM activity WHERE workspace_id = $1 AND type = 'a2a'`,
      [id],
    );
    expect(rows.rows).toEqual([{ status: '200' }]);
  });

  it("a JSON answer's last bytes wait for its activity row", async () => {
    const whole = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { kind: 'message', parts: [] } });
    const agent = await gatedAgent('application/json', whole, '', { length: true });
    const id = await workspaceAt(agent);
    // The row's INSERT waits on this lock until the test commits.
    const locker = new pg.Client({ connectionString: t.stack.config.DATABASE_URL });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE activity IN EXCLUSIVE MODE');
      let answered = false;
      const call = callProxy(id).then(async (res) => {
        answered = true;
        return { res, text: await res.text() };
      });
      await waitFor(
        async () =>
          (
            await t.stack.service.db.pool.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity
                WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO activity%'`,
            )
          ).rows[0]!.n === 1,
        { timeoutMs: READ_DEADLINE_MS, describe: "the proxy's activity INSERT to wait on the lock" },
      );
      // The agent's whole answer reached the proxy before its INSERT was sent; bytes written to the
      // caller then would have been read by now (the caller is in this process).
      for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
      expect(answered).toBe(false);
      await locker.query('COMMIT');
      const { res, text } = await call;
      expect(res.status).toBe(200);
      expect(res.headers.get('content-length')).toBe(String(Buffer.byteLength(whole)));
      expect(JSON.parse(text)).toEqual(JSON.parse(whole));
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
      agent.release();
    }
  });

  it('a caller that leaves mid-stream stops the call to the agent', async () => {
    const event = `data: ${JSON.stringify({ jsonrpc: '2.0', id: 1, result: { kind: 'status-update' } })}\n\n`;
    const agent = await gatedAgent('text/event-stream', event, event);
    const id = await workspaceAt(agent);
    const leave = new AbortController();
    const res = await callProxy(id, leave.signal);
    const reader = res.body!.getReader();
    expect((await readWithDeadline(reader)).done).toBe(false);
    leave.abort();
    await waitFor(() => agent.cut() === 1, {
      timeoutMs: READ_DEADLINE_MS,
      describe: "the agent's answer to be cut when the caller left",
    });
  });

  it.each([
    ['chunked', false],
    ['of a declared length', true],
  ])(
    'an agent that drops its answer (%s) midway: the caller sees it cut, the activity row says so',
    async (_kind, length) => {
      const agent = await gatedAgent('application/json', '{"jsonrpc":"2.0","id":1,', CUT, { length });
      const id = await workspaceAt(agent);
      const res = await callProxy(id);
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      expect((await readWithDeadline(reader)).done).toBe(false);
      agent.release();
      const rest = await (async () => {
        for (;;) {
          const { done } = await readWithDeadline(reader);
          if (done) return 'ended';
        }
      })().catch((err: unknown) => err);
      // Not a clean end: the caller cannot mistake the cut answer for a whole one.
      expect(rest).toBeInstanceOf(Error);
      const row = await waitFor(
        async () => {
          const log = await t.stack.api.call('GET', `/v1/workspaces/${id}/activity`, { token: t.key });
          return (log.body.items as Array<{ status: number; summary: string }>)[0];
        },
        { timeoutMs: READ_DEADLINE_MS, describe: 'the activity row of the cut call' },
      );
      expect(row.status).toBe(502);
      expect(row.summary).toMatch(/^stream cut/);
    },
  );
  it('an agent that drops its event stream midway: a last event says so (a JSON-RPC error), then the stream is cut', async () => {
    const first = 'data: {"jsonrpc":"2.0","id":1,"result":{"kind":"status-update"}}\n\ndata: {"jsonr';
    const agent = await gatedAgent('text/event-stream', first, CUT);
    const id = await workspaceAt(agent);
    const res = await callProxy(id);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await readWithDeadline(reader)).value);
    agent.release();
    const end = await (async () => {
      for (;;) {
        const { done, value } = await readWithDeadline(reader);
        if (done) return 'ended';
        text += decoder.decode(value);
      }
    })().catch((err: unknown) => err);
    // Still not a clean end, and the last event is the error for the request's id.
    expect(end).toBeInstanceOf(Error);
    const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
    expect(JSON.parse(events.at(-1)!.slice('data: '.length))).toEqual({
      jsonrpc: '2.0',
      id: 1,
      error: { code: -32603, message: 'the workspace agent cut its answer' },
    });
    expect((await newestRow(id)).status).toBe(502);
  });

  /** The newest activity row of a workspace, once there is one. */
  const newestRow = (id: string) =>
    waitFor(
      async () => {
        const log = await t.stack.api.call('GET', `/v1/workspaces/${id}/activity`, { token: t.key });
        return (log.body.items as Array<{ status: number; summary: string }>)[0];
      },
      { timeoutMs: READ_DEADLINE_MS, describe: `an activity row of ${id}` },
    );

  const a2aCallsDone = () =>
    waitFor(() => t.stack.service.inflight.count === 0, {
      timeoutMs: READ_DEADLINE_MS,
      describe: 'no A2A call left running in the API',
    });

  /**
   * An A2A call on a socket of its own, declaring the whole body's length but sending `sent` of it
   * (the caller then does what the test says with the socket).
   */
  async function rawCall(id: string, sent: string): Promise<net.Socket> {
    const socket = net.connect(Number(new URL(t.stack.url).port), '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      `POST /v1/workspaces/${id}/a2a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.key}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${sent}`,
    );
    return socket;
  }

  it('a caller that leaves before the agent answers: the call is stopped, logged as left, and no liveness probe runs', async () => {
    const agent = await holdingAgent('{"jsonrpc":"2.0","id":1,"result":{}}');
    const id = await workspaceAt(agent);
    const leave = new AbortController();
    const call = callProxy(id, leave.signal).catch((err: unknown) => err);
    await waitFor(() => agent.held() === 1, {
      timeoutMs: READ_DEADLINE_MS,
      describe: 'the agent to hold the call',
    });
    leave.abort();
    expect(await call).toBeInstanceOf(Error);
    await waitFor(() => agent.cut() === 1, {
      timeoutMs: READ_DEADLINE_MS,
      describe: "the agent's call to be cut",
    });
    const row = await newestRow(id);
    expect(row.status).toBe(499);
    expect(row.summary).toMatch(/^caller left/);
    await a2aCallsDone();
    // Leaving is not the agent's failure: it was not probed.
    expect(agent.probes()).toBe(0);
  });

  it('a caller that leaves before its request is whole: nothing is sent, and the call does not hang', async () => {
    const agent = await holdingAgent('{}');
    const id = await workspaceAt(agent);
    const socket = await rawCall(id, body.slice(0, 10));
    await waitFor(() => t.stack.service.inflight.count === 1, {
      timeoutMs: READ_DEADLINE_MS,
      describe: 'the call to wait for the rest of its body',
    });
    socket.destroy();
    await a2aCallsDone();
    expect(agent.calls()).toBe(0);
  });

  it('a caller that stops reading is cut after the idle timeout, and so is its call to the agent', async () => {
    const size = 16 * 1024 * 1024;
    let cut = false;
    const server = http.createServer((req, res) => {
      req.resume();
      res.on('close', () => (cut = !res.writableFinished));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': size });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        const pump = () => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', pump);
        };
        pump();
      });
    });
    const id = await workspaceAt(await listening(server));
    const idle = A2A_DEFAULTS.idleTimeoutMs;
    A2A_DEFAULTS.idleTimeoutMs = 1_000;
    let socket: net.Socket | undefined;
    try {
      // Sends its call, then never reads: the answer backs up into the proxy.
      socket = await rawCall(id, body);
      socket.pause();
      await waitFor(() => cut, { timeoutMs: READ_DEADLINE_MS, describe: "the agent's answer to be cut" });
      const row = await newestRow(id);
      expect(row.status).toBe(499);
      expect(row.summary).toMatch(/^caller stopped reading/);
      await a2aCallsDone();
    } finally {
      A2A_DEFAULTS.idleTimeoutMs = idle;
      socket?.destroy();
    }
  });

  it('an agent that cuts a JSON answer before any of it: the caller gets a clean 502, the row says so', async () => {
    // The identity check answered as the workspace's agent; then, to the call, the headers of a
    // ten-byte answer, and the connection dropped.
    const server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', (check: Buffer) => {
        void rawIdentityAnswerOf(check.toString('latin1'), credentialOf).then((answer) => {
          socket.once('data', () => {
            socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n');
            setImmediate(() => socket.destroy());
          });
          socket.write(answer);
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const id = await workspaceAt({
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    });
    const res = await callProxy(id);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('agent_error');
    const row = await newestRow(id);
    expect(row.status).toBe(502);
    expect(row.summary).toMatch(/^stream cut/);
  });

  it('an answer whose activity row cannot be written is cut, never handed over whole', async () => {
    const whole = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { kind: 'message', parts: [] } });
    const agent = await holdingAgent(whole);
    const id = await workspaceAt(agent);
    const pool = t.stack.service.db.pool;
    // PostgreSQL refuses this workspace's rows (as it would a workspace deleted meanwhile).
    const fn = `refuse_rows_${id}`;
    await pool.query(
      `CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'refused by the test'; END $$`,
    );
    await pool.query(
      `CREATE TRIGGER ${fn} BEFORE INSERT ON activity FOR EACH ROW
         WHEN (NEW.workspace_id = '${id}') EXECUTE FUNCTION ${fn}()`,
    );
    try {
      const call = callProxy(id).then(
        async (res) => ({ status: res.status, text: await res.text() }),
        (err: unknown) => err,
      );
      await waitFor(() => agent.held() === 1, {
        timeoutMs: READ_DEADLINE_MS,
        describe: 'the agent to hold the call',
      });
      agent.release();
      const outcome = await call;
      // Either the fetch or the body read fails: the caller cannot take it for a whole answer.
      expect(outcome).toBeInstanceOf(Error);
      await a2aCallsDone();
    } finally {
      await pool.query(`DROP TRIGGER ${fn} ON activity`);
      await pool.query(`DROP FUNCTION ${fn}()`);
    }
  });

  it('a shutdown lets the calls in flight end and writes their rows before the pool closes', async () => {
    const whole = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { kind: 'message', parts: [] } });
    const agent = await holdingAgent(whole);
    const id = await workspaceAt(agent);
    const second = await startService(t.stack.config, {
      api: true,
      worker: false,
      log: pino({ level: 'silent' }),
    });
    let closing: Promise<void> | undefined;
    try {
      const call = fetch(`${second.url}/v1/workspaces/${id}/a2a`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' },
        body,
      }).then(async (res) => ({ status: res.status, text: await res.text() }));
      await waitFor(() => agent.held() === 1, {
        timeoutMs: READ_DEADLINE_MS,
        describe: 'the agent to hold the call',
      });
      closing = second.close();
      // The shutdown waits for the call in flight: its answer still comes, whole.
      await waitFor(() => second.inflight.closing, {
        timeoutMs: READ_DEADLINE_MS,
        describe: 'the shutdown to begin',
      });
      agent.release();
      expect(await call).toEqual({ status: 200, text: whole });
      await closing;
      const rows = await t.stack.service.db.pool.query<{ status: string }>(
        `SELECT status FROM activity WHERE workspace_id = $1`,
        [id],
      );
      expect(rows.rows).toEqual([{ status: '200' }]);
    } finally {
      await (closing ?? second.close());
    }
  });
});
