/**
 * Bounded everything, backend-independent parts, on the real stack (PostgreSQL, the API in this
 * process): terminal input before auth is capped; an A2A stream to a slow reader applies
 * backpressure to the agent instead of buffering its answer; `/events` is fed by one shared
 * poller (one query per tick for any number of subscribers), every subscriber gets every
 * transition, and streams are capped per principal and released when the client goes away.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Queryable } from '../../src/db/queryable.js';
import { recordTransition } from '../../src/db/workspaces.js';
import { registry } from '../../src/api/metrics.js';
import { TransitionFeed } from '../../src/api/transition-feed.js';
import type { TransitionEvent } from '../../src/db/events.js';
import { followEvents, type EventsStream } from '../support/events-stream.js';
import { waitFor } from '../setup/wait-for.js';
import { createOrg, insertWorkspaceRow, useStack, type Stack } from '../support/stack.js';
import { provingIdentity, stackCredentials } from '../support/agent-identity.js';

const MiB = 1024 * 1024;

/** A workspace row that reads `online` at `endpoint`, without any backend resource behind it. */
async function onlineWorkspace(stack: Stack, orgId: string, endpoint: string | null): Promise<string> {
  const id = await insertWorkspaceRow(stack.service.db.pool, orgId, (i) => `w-${i.slice(0, 6)}`);
  await stack.service.db.pool.query(
    `UPDATE workspaces SET status = 'online', endpoint = $2, instance_id = 'none' WHERE id = $1`,
    [id, endpoint],
  );
  return id;
}

/** One masked client frame (RFC 6455 §5.2), payload under 126 bytes. */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, masked]);
}

describe('bounded data plane (backend-independent)', () => {
  const t = useStack({
    worker: false,
    env: {
      EVENT_STREAMS_PER_PRINCIPAL: '3',
      EVENTS_POLL_MS: '200',
      FILE_BUFFERED_UPLOADS_MAX: '3',
      FILE_BUFFERED_UPLOADS_PER_PRINCIPAL: '2',
    },
  });

  /**
   * A PUT of file content with no declared length (chunked), its first chunk sent and the rest held:
   * the API reads such a body whole, so it holds an upload slot until `finish()`.
   */
  function heldUpload(id: string, key: string) {
    const { port } = new URL(t.stack.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (received += d));
    socket.on('error', () => undefined);
    const answered = () => /^HTTP\/1\.1 (\d{3})/.exec(received)?.[1];
    socket.write(
      `PUT /v1/workspaces/${id}/files/content?root=/workspace&path=held.txt HTTP/1.1\r\nHost: x\r\n` +
        `Authorization: Bearer ${key}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`,
    );
    return {
      answered,
      finish: () => socket.write('0\r\n\r\n'),
      close: () => socket.destroy(),
    };
  }

  it('files: uploads read whole are capped per principal and per process (429); streamed ones are not', async () => {
    const other = await createOrg(t.stack, 'uploads-other');
    const mine = await onlineWorkspace(t.stack, t.orgId, null);
    const theirs = await onlineWorkspace(t.stack, other.id, null);
    const buffering = async () =>
      (await registry.getSingleMetric('wo_api_buffered_uploads')?.get())?.values[0]?.value;
    const held = [heldUpload(mine, t.key), heldUpload(mine, t.key), heldUpload(theirs, other.apiKey)];
    const put = (id: string, key: string, init: RequestInit = {}) =>
      fetch(`${t.stack.url}/v1/workspaces/${id}/files/content?root=/workspace&path=x.txt`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${key}` },
        ...init,
      });
    const chunked = (id: string, key: string) =>
      put(id, key, {
        body: new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode('x'));
            c.close();
          },
        }),
        duplex: 'half',
      } as RequestInit);
    try {
      // The held bodies are being read (this process's API counts them) before the caps are tried.
      await waitFor(async () => (await buffering()) === 3, {
        timeoutMs: 10_000,
        describe: 'three uploads held',
      });
      expect(held.map((h) => h.answered())).toEqual([undefined, undefined, undefined]);
      // Mine: my principal's two slots are taken; theirs: the process's three are.
      for (const [id, key] of [
        [mine, t.key],
        [theirs, other.apiKey],
      ] as const) {
        const refused = await chunked(id, key);
        expect(refused.status).toBe(429);
        expect(refused.headers.get('retry-after')).toBe('5');
        expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('too_many_uploads');
      }
      // A declared-length upload is streamed, not buffered: not capped (it reaches the backend,
      // which has no resource behind these rows).
      expect((await put(mine, t.key, { body: 'streamed' })).status).not.toBe(429);

      // The held uploads end (answered by the backend); their slots come back.
      for (const h of held) h.finish();
      await waitFor(() => held.every((h) => h.answered() !== undefined), {
        timeoutMs: 10_000,
        describe: 'the held uploads answered',
      });
      expect(held.map((h) => h.answered())).not.toContain('429');
      await waitFor(async () => (await buffering()) === 0, {
        timeoutMs: 10_000,
        describe: 'the slots released',
      });
      expect((await chunked(mine, t.key)).status).not.toBe(429);
      expect((await chunked(theirs, other.apiKey)).status).not.toBe(429);
    } finally {
      for (const h of held) h.close();
    }
  });

  it('terminal: a flood of frames before the session opens closes the socket (1008); the server stays up', async () => {
    const id = await onlineWorkspace(t.stack, t.orgId, null);
    const { port } = new URL(t.stack.url);
    // Over the documented bound of 256 frames kept while the session opens.
    const frames = Array.from({ length: 300 }, () => clientFrame(0x2, Buffer.from('x')));
    // Upgrade request and frames in one write: the frames arrive while the token is still being
    // looked up, so every one of them is "before the session opened".
    const request = Buffer.from(
      `GET /v1/workspaces/${id}/terminal HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
        `Authorization: Bearer ${t.key}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`,
    );
    const socket = net.connect(Number(port), '127.0.0.1');
    let received = Buffer.alloc(0);
    socket.on('data', (c: Buffer) => (received = Buffer.concat([received, c])));
    // Done once the socket closes or the server's close frame is complete (then we hang up).
    const ended = new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.on('data', () => {
        const at = received.indexOf('\r\n\r\n');
        if (
          at >= 0 &&
          received.length >= at + 4 + 2 &&
          received.length >= at + 4 + 2 + (received[at + 5]! & 0x7f)
        ) {
          socket.destroy();
          resolve();
        }
      });
    });
    socket.on('error', () => undefined);
    socket.write(Buffer.concat([request, ...frames]));
    await ended;
    const headerEnd = received.indexOf('\r\n\r\n');
    expect(received.subarray(0, headerEnd).toString()).toMatch(/^HTTP\/1\.1 101/);
    const frame = received.subarray(headerEnd + 4);
    expect(frame[0]).toBe(0x88); // close frame
    expect(frame.readUInt16BE(2)).toBe(1008); // policy violation: too much input before the session
    expect((await fetch(`${t.stack.url}/healthz`)).status).toBe(200);
  });

  it('A2A: a slow reader of a large message/stream answer backs the agent up; nothing piles up in the proxy', async () => {
    const TOTAL = 128 * MiB;
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const agent = { written: 0, waiting: false, done: false };
    const server = provingIdentity(
      http.createServer((req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const pump = (): void => {
          agent.waiting = false;
          while (agent.written < TOTAL) {
            agent.written += chunk.length;
            if (!res.write(chunk)) {
              agent.waiting = true;
              res.once('drain', pump);
              return;
            }
          }
          agent.done = true;
          res.end();
        };
        pump();
      }),
      stackCredentials(() => t.stack),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const id = await onlineWorkspace(t.stack, t.orgId, endpoint);
      const body = JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'message/stream',
        params: { message: { role: 'user', parts: [{ kind: 'text', text: 'big' }] } },
      });
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = http.request(`${t.stack.url}/v1/workspaces/${id}/a2a`, {
          method: 'POST',
          headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' },
        });
        req.on('response', resolve);
        req.on('error', reject);
        req.end(body);
      });
      expect(res.statusCode).toBe(200);
      // The client does not read: the agent must end up blocked, far from done.
      res.pause();
      let last = -1;
      let still = 0;
      const stalled = await waitFor(
        () => {
          if (agent.done) return 'agent finished';
          still = agent.waiting && agent.written === last ? still + 1 : 0;
          last = agent.written;
          return still >= 4 ? 'agent blocked' : null;
        },
        { timeoutMs: 60_000, intervalMs: 250, describe: 'the agent to finish or stay blocked' },
      );
      expect(stalled).toBe('agent blocked');
      expect(agent.written).toBeLessThan(TOTAL / 2);
      // Reading resumes: the whole answer arrives, and the agent completes.
      let got = 0;
      res.on('data', (c: Buffer) => (got += c.length));
      res.resume();
      await new Promise<void>((resolve, reject) => {
        res.once('end', resolve);
        res.once('error', reject);
      });
      expect(got).toBe(TOTAL);
      expect(agent.done).toBe(true);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  describe('/events', () => {
    const subscribe = (id: string, token = t.key): EventsStream => followEvents(t.stack.url, id, token);

    it('N subscribers: every one receives every transition, from one shared poll per tick', async () => {
      // The API's own pool: the one its /events poller queries.
      const pool = t.stack.service.db.requestPool;
      const id = await onlineWorkspace(t.stack, t.orgId, null);
      // Several principals (the cap is per principal): admin + org keys of other orgs see only their
      // own, so here: 3 org streams + 3 admin streams on the same workspace.
      const subs = [
        ...Array.from({ length: 3 }, () => subscribe(id)),
        ...Array.from({ length: 3 }, () => subscribe(id, t.stack.adminToken)),
      ];
      for (const s of subs) expect(await s.status).toBe(200);
      // Count the transition polls from here on.
      let polls = 0;
      const original = pool.query.bind(pool) as (...a: unknown[]) => unknown;
      (pool as { query: unknown }).query = (...args: unknown[]) => {
        const sql = typeof args[0] === 'string' ? args[0] : '';
        if (sql.includes('FROM workspace_transitions')) polls++;
        return original(...args);
      };
      try {
        const statuses = ['restarting', 'online', 'stopping', 'stopped', 'online'] as const;
        for (const status of statuses) {
          await recordTransition(pool, { workspaceId: id, generation: 1, status });
        }
        await waitFor(() => subs.every((s) => s.events.length === statuses.length), {
          timeoutMs: 20_000,
          describe: 'every subscriber to receive every transition',
        });
        for (const s of subs) expect(s.events.map((e) => e.status)).toEqual([...statuses]);
        // Per client polling would need at least one query per subscriber to see the last row.
        expect(polls).toBeLessThan(subs.length);
        expect(polls).toBeGreaterThan(0);
      } finally {
        (pool as { query: unknown }).query = original;
        for (const s of subs) s.close();
      }
    });

    it('streams are capped per principal (429) and released when the client goes away', async () => {
      const id = await onlineWorkspace(t.stack, t.orgId, null);
      const open = [subscribe(id), subscribe(id), subscribe(id)];
      for (const s of open) expect(await s.status).toBe(200);
      const refused = await fetch(`${t.stack.url}/v1/workspaces/${id}/events`, {
        headers: { authorization: `Bearer ${t.key}` },
      });
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toBeTruthy();
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('too_many_streams');
      open[0]!.close();
      const again = await waitFor(
        async () => {
          const s = subscribe(id);
          if ((await s.status) === 200) return s;
          return null;
        },
        { timeoutMs: 10_000, intervalMs: 100, describe: 'a stream slot to be released' },
      );
      again.close();
      for (const s of open) s.close();
    });
  });

  it('TransitionFeed: one query per tick for any number of subscribers; a row committed late (lower id) still arrives', async () => {
    const pool = t.stack.service.db.pool;
    let polls = 0;
    const counting: Queryable = {
      query: ((...args: Parameters<Queryable['query']>) => {
        if (String(args[0]).includes('WHERE id > $1::bigint')) polls++;
        return (pool.query as (...a: unknown[]) => unknown)(...args);
      }) as Queryable['query'],
    };
    const feed = new TransitionFeed(counting, { intervalMs: 50 });
    const ids = [
      await onlineWorkspace(t.stack, t.orgId, null),
      await onlineWorkspace(t.stack, t.orgId, null),
    ];
    const got = new Map<number, TransitionEvent[]>();
    const offs: (() => void)[] = [];
    for (let i = 0; i < 20; i++) {
      const list: TransitionEvent[] = [];
      got.set(i, list);
      offs.push(await feed.subscribe(ids[i % 2]!, (e) => list.push(e)));
    }
    expect(feed.size).toBe(20);
    expect(feed.running).toBe(true);

    // A transaction that takes its id first and commits after later rows were already seen.
    const slow = await pool.connect();
    try {
      await slow.query('BEGIN');
      await recordTransition(slow, { workspaceId: ids[1]!, generation: 1, status: 'stopping' });
      await recordTransition(pool, { workspaceId: ids[0]!, generation: 1, status: 'restarting' });
      await recordTransition(pool, { workspaceId: ids[0]!, generation: 1, status: 'online' });
      await waitFor(() => got.get(0)!.some((e) => e.status === 'online'), {
        timeoutMs: 10_000,
        describe: 'the later row to be delivered',
      });
      await slow.query('COMMIT');
    } finally {
      slow.release();
    }
    await waitFor(() => [...got.values()].every((l, i) => l.length === (i % 2 === 0 ? 2 : 1)), {
      timeoutMs: 15_000,
      describe: 'every subscriber to have every transition of its workspace',
    });
    for (const [i, list] of got) {
      expect(list.map((e) => e.status).sort()).toEqual(i % 2 === 0 ? ['online', 'restarting'] : ['stopping']);
    }
    const ticks = feed.polls;
    expect(polls).toBe(ticks);
    expect(ticks).toBeGreaterThan(0);

    for (const off of offs) off();
    expect(feed.size).toBe(0);
    expect(feed.running).toBe(false);
    feed.close();
  });

  it('TransitionFeed: a transaction still committing when the feed starts is not missed', async () => {
    const pool = t.stack.service.db.pool;
    const feed = new TransitionFeed(pool, { intervalMs: 50 });
    const [a, b] = [
      await onlineWorkspace(t.stack, t.orgId, null),
      await onlineWorkspace(t.stack, t.orgId, null),
    ];
    const slow = await pool.connect();
    const got: string[] = [];
    try {
      await slow.query('BEGIN');
      await recordTransition(slow, { workspaceId: a, generation: 1, status: 'restarting' });
      // A higher id commits first; the feed starts (and reads its history) before the lower one commits.
      await recordTransition(pool, { workspaceId: b, generation: 1, status: 'online' });
      const off = await feed.subscribe(a, (e) => got.push(e.status));
      expect(got).toEqual([]);
      await slow.query('COMMIT');
      await waitFor(() => got.length === 1, { timeoutMs: 10_000, describe: 'the late row to arrive' });
      expect(got).toEqual(['restarting']);
      off();
    } finally {
      slow.release();
      feed.close();
    }
  });
});
