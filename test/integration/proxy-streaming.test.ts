/**
 * The A2A proxy forwards an answer's first bytes as soon as they arrive, whatever it does to save
 * socket writes: the agent sends one part, then waits for the test's signal before the rest; the
 * caller must read that first part before the test gives the signal (a proxy that held it back
 * would leave the read hanging until its deadline). Both an event stream and a JSON answer.
 * The agent is a plain HTTP server on loopback standing in for a workspace's agent.
 */
import http from 'node:http';
import pg from 'pg';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { insertWorkspaceRow, useStack } from '../support/stack.js';
import { waitFor } from '../setup/wait-for.js';

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
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut: () => cut,
    release: () => release(),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
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
  const rows: string[] = [];
  const agents: GatedAgent[] = [];

  afterAll(async () => {
    // No workflow behind these rows: marked deleted rather than deleted through the API.
    await t.stack.service.db.pool.query(`UPDATE workspaces SET status = 'deleted' WHERE id = ANY($1)`, [
      rows,
    ]);
    for (const a of agents) await a.close();
  });

  async function workspaceAt(agent: GatedAgent): Promise<string> {
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
});
