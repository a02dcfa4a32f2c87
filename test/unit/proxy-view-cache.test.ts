/**
 * The A2A proxy's cached workspace views: the change feed's barrier (a hit is used only after every
 * change committed before the call was seen), its group sharing, what a lost connection does, and
 * the cache's rules (kept only while listening, never a load that raced an invalidation, a TTL
 * backstop). Fakes for the LISTEN connection and the database; test/integration/proxy-view.test.ts
 * proves the same on the real PostgreSQL.
 */
import type { AddressInfo } from 'node:net';
import express, { Router } from 'express';
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { Principal } from '../../src/api/auth.js';
import { errorHandler } from '../../src/api/errors.js';
import {
  PROXY,
  beginProxyBarrier,
  loadsProxyWorkspace,
  proxyWorkspaceOf,
} from '../../src/api/workspace-param.js';
import {
  ChangeFeed,
  PROXY_VIEW_CHANNEL,
  TRANSITIONS_CHANNEL,
  type FeedClient,
} from '../../src/db/change-feed.js';
import { ProxyViews } from '../../src/db/proxy-view.js';
import type { Queryable } from '../../src/db/queryable.js';
import { waitFor } from '../setup/wait-for.js';

/** A LISTEN connection whose barrier notifications the test delivers when it chooses. */
class FakeClient implements FeedClient {
  readonly queries: Array<{ sql: string; params?: unknown[] }> = [];
  private handlers: Record<string, Array<(arg?: unknown) => void>> = {};
  ended = false;
  failConnect = false;

  private connected = false;

  connect(): Promise<unknown> {
    if (this.failConnect) return Promise.reject(new Error('refused'));
    return Promise.resolve().then(() => (this.connected = true));
  }
  query(sql: string, params?: unknown[]): Promise<unknown> {
    this.queries.push({ sql, params });
    return Promise.resolve({});
  }
  on(event: string, cb: (arg: never) => void): this {
    (this.handlers[event] ??= []).push(cb as (arg?: unknown) => void);
    return this;
  }
  /** As pg: an end() before the connection is up does not close the connection made after it. */
  end(): Promise<void> {
    if (this.connected) this.ended = true;
    return Promise.resolve();
  }
  emit(event: string, arg?: unknown): void {
    for (const h of this.handlers[event] ?? []) h(arg);
  }
  /** The barriers sent so far: [channel, seq]. */
  barriers(): Array<[string, string]> {
    return this.queries
      .map((q) => /^NOTIFY (wo_sync_[0-9a-f]+), '(\d+)'$/.exec(q.sql))
      .filter((m) => m !== null)
      .map((m) => [m[1]!, m[2]!]);
  }
  /** Delivers the n-th barrier's notification. */
  returnBarrier(n: number): void {
    const [channel, payload] = this.barriers()[n]!;
    this.emit('notification', { channel, payload });
  }
  change(id: string): void {
    this.emit('notification', { channel: PROXY_VIEW_CHANNEL, payload: id });
  }
}

function feedWith(opts: { syncTimeoutMs?: number } = {}) {
  const clients: FakeClient[] = [];
  const changes: string[] = [];
  let failNext = false;
  const feed = new ChangeFeed({
    newClient: () => {
      const c = new FakeClient();
      c.failConnect = failNext;
      clients.push(c);
      return c;
    },
    onChange: (id) => changes.push(id),
    reconnectMs: 1,
    syncTimeoutMs: opts.syncTimeoutMs ?? 60_000,
  });
  return {
    feed,
    clients,
    changes,
    client: () => clients.at(-1)!,
    failNextConnect: (v: boolean) => (failNext = v),
  };
}

const settled = async <T>(p: Promise<T>) => {
  let state: 'pending' | 'resolved' | 'rejected' = 'pending';
  p.then(
    () => (state = 'resolved'),
    () => (state = 'rejected'),
  );
  // Let the promise's callbacks run.
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return state;
};

describe('ChangeFeed', () => {
  it('listens, flushes on connect, and hands on every changed id', async () => {
    const t = feedWith();
    await t.feed.start();
    expect(t.feed.listening).toBe(true);
    expect(t.client().queries.map((q) => q.sql)).toEqual([
      `LISTEN ${PROXY_VIEW_CHANNEL}`,
      `LISTEN ${TRANSITIONS_CHANNEL}`,
      expect.stringMatching(/^LISTEN wo_sync_[0-9a-f]+$/),
    ]);
    t.client().change('ws-1');
    expect(t.changes).toEqual(['*', 'ws-1']);
  });

  it('hands on new transitions to their listeners, and "*" at each (re)connect, when some may be missed', async () => {
    const t = feedWith();
    const heard: string[] = [];
    const off = t.feed.onTransition((id) => heard.push(id));
    await t.feed.start();
    t.client().emit('notification', { channel: TRANSITIONS_CHANNEL, payload: 'ws-7' });
    // A transition is no change to a proxy view.
    expect(t.changes).toEqual(['*']);
    t.client().emit('error', new Error('connection reset'));
    await waitFor(() => t.feed.listening, { timeoutMs: 5_000, describe: 'the feed to reconnect' });
    expect(heard).toEqual(['*', 'ws-7', '*']);
    off();
    t.client().emit('notification', { channel: TRANSITIONS_CHANNEL, payload: 'ws-8' });
    expect(heard).toEqual(['*', 'ws-7', '*']);
    await t.feed.close();
  });

  it('a barrier resolves only when its own notification is back, after the changes before it', async () => {
    const t = feedWith();
    await t.feed.start();
    const order: string[] = [];
    const sync = t.feed.sync().then(() => order.push('synced'));
    expect(await settled(sync)).toBe('pending');
    // Another process's or an older barrier's payload is not this one.
    t.client().emit('notification', { channel: t.client().barriers()[0]![0], payload: '999' });
    expect(await settled(sync)).toBe('pending');
    t.client().change('ws-1');
    order.push(`change ${t.changes.at(-1)}`);
    t.client().returnBarrier(0);
    await sync;
    expect(order).toEqual(['change ws-1', 'synced']);
  });

  it('calls during a barrier in flight share the next one: two round trips for three calls', async () => {
    const t = feedWith();
    await t.feed.start();
    const first = t.feed.sync();
    const second = t.feed.sync();
    const third = t.feed.sync();
    expect(t.client().barriers()).toHaveLength(1);
    t.client().returnBarrier(0);
    await first;
    // The first barrier may have committed before the later calls' predecessors: not theirs.
    expect(await settled(second)).toBe('pending');
    expect(t.client().barriers()).toHaveLength(2);
    t.client().returnBarrier(1);
    await Promise.all([second, third]);
    expect(t.client().barriers()).toHaveLength(2);
  });

  it('a lost connection flushes, fails the barriers, refuses new ones, and reconnects', async () => {
    const t = feedWith();
    await t.feed.start();
    const first = t.client();
    const pending = t.feed.sync();
    const queued = t.feed.sync();
    first.emit('error', new Error('connection reset'));
    expect(t.feed.listening).toBe(false);
    await expect(pending).rejects.toThrow('connection reset');
    await expect(queued).rejects.toThrow('connection reset');
    await expect(t.feed.sync()).rejects.toThrow('not listening');
    expect(t.changes).toEqual(['*', '*']);
    expect(first.ended).toBe(true);
    await waitFor(() => t.feed.listening, { timeoutMs: 5_000, describe: 'the feed to reconnect' });
    expect(t.clients).toHaveLength(2);
    // A late notification on the dropped connection is ignored.
    first.change('ws-old');
    expect(t.changes).toEqual(['*', '*', '*']);
  });

  it('keeps retrying a connection that fails, and is not listening meanwhile', async () => {
    const t = feedWith();
    t.failNextConnect(true);
    await t.feed.start();
    expect(t.feed.listening).toBe(false);
    await waitFor(() => t.clients.length >= 2, { timeoutMs: 5_000, describe: 'a second attempt' });
    t.failNextConnect(false);
    await waitFor(() => t.feed.listening, { timeoutMs: 5_000, describe: 'the feed to connect' });
    await t.feed.close();
  });

  it('closed while it connects: the connection is ended, not left listening', async () => {
    const t = feedWith();
    const starting = t.feed.start();
    await t.feed.close();
    await starting;
    expect(t.feed.listening).toBe(false);
    expect(t.clients).toHaveLength(1);
    expect(t.clients[0]!.ended).toBe(true);
  });

  it('the timeout counts from the send of each barrier, not from the first one', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const t = feedWith({ syncTimeoutMs: 100 });
      await t.feed.start();
      const first = t.feed.sync();
      vi.advanceTimersByTime(60);
      t.client().returnBarrier(0);
      await first;
      vi.advanceTimersByTime(30);
      // Sent 90 ms after the first: still in time 70 ms later (160 ms after the first).
      const second = t.feed.sync();
      vi.advanceTimersByTime(70);
      expect(await settled(second)).toBe('pending');
      expect(t.feed.listening).toBe(true);
      t.client().returnBarrier(1);
      await second;
      // A third that never comes back fails once its own 100 ms have passed.
      const third = t.feed.sync();
      vi.advanceTimersByTime(99);
      expect(await settled(third)).toBe('pending');
      vi.advanceTimersByTime(1);
      await expect(third).rejects.toThrow('timed out');
      expect(t.clients[0]!.ended).toBe(true);
      await t.feed.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a barrier that never comes back fails and recycles the connection', async () => {
    const t = feedWith({ syncTimeoutMs: 5 });
    await t.feed.start();
    await expect(t.feed.sync()).rejects.toThrow('timed out');
    expect(t.clients[0]!.ended).toBe(true);
    await waitFor(() => t.feed.listening, { timeoutMs: 5_000, describe: 'the feed to reconnect' });
    await t.feed.close();
    expect(t.feed.listening).toBe(false);
  });
});

/** A database holding view rows; each query can be held until the test releases it. */
function fakeDb() {
  const rows = new Map<string, { status: string; limit: number | null; spent: number }>();
  let queries = 0;
  let hold: Promise<void> | null = null;
  const db: Queryable = {
    query: (async (_sql: string, params: unknown[]) => {
      queries++;
      const ids = params[0] as string[];
      const snapshot = ids.filter((id) => rows.has(id)).map((id) => ({ id, ...rows.get(id)! }));
      if (hold) await hold;
      return {
        rows: snapshot.map((r) => ({
          id: r.id,
          org_id: 'org',
          name: r.id,
          backend: 'docker',
          generation: 1,
          status: r.status,
          endpoint: 'http://127.0.0.1:1',
          limit_cents: r.limit,
          spent_cents: String(r.spent),
        })),
      };
    }) as unknown as Queryable['query'],
  };
  return {
    db,
    rows,
    queries: () => queries,
    holdQueries: () => {
      let release!: () => void;
      hold = new Promise((r) => (release = r));
      return () => {
        hold = null;
        release();
      };
    },
  };
}

function fakeFeed() {
  const feed = { listening: true, syncs: 0, fail: false };
  return Object.assign(feed, {
    sync: () => {
      feed.syncs++;
      return feed.fail ? Promise.reject(new Error('lost')) : Promise.resolve();
    },
  });
}

describe('ProxyViews', () => {
  it('reads one query for several ids, with the budget', async () => {
    const d = fakeDb();
    d.rows.set('a', { status: 'online', limit: 100, spent: 40 });
    d.rows.set('b', { status: 'stopped', limit: null, spent: 0 });
    const views = new ProxyViews(d.db);
    const got = await views.get(['a', 'b', 'missing']);
    expect(d.queries()).toBe(1);
    expect(got.get('a')).toMatchObject({ status: 'online', budget: { limitCents: 100, spentCents: 40 } });
    expect(got.get('b')?.status).toBe('stopped');
    expect(got.has('missing')).toBe(false);
  });

  it('without a listening feed, every call reads the database and nothing is kept', async () => {
    const d = fakeDb();
    d.rows.set('a', { status: 'online', limit: null, spent: 0 });
    const feed = fakeFeed();
    feed.listening = false;
    const views = new ProxyViews(d.db, { feed });
    await views.get(['a']);
    await views.get(['a']);
    expect(d.queries()).toBe(2);
    expect(views.size).toBe(0);
    expect(feed.syncs).toBe(0);
  });

  it('a hit is served after a barrier; an invalidated id is read again', async () => {
    const d = fakeDb();
    d.rows.set('a', { status: 'online', limit: null, spent: 0 });
    const feed = fakeFeed();
    const views = new ProxyViews(d.db, { feed });
    await views.get(['a']);
    expect(feed.syncs).toBe(0);
    d.rows.set('a', { status: 'stopped', limit: null, spent: 0 });
    // No notification: the cached view stands (the feed says nothing changed).
    expect((await views.get(['a'])).get('a')?.status).toBe('online');
    expect(feed.syncs).toBe(1);
    expect(d.queries()).toBe(1);
    views.invalidate('a');
    expect((await views.get(['a'])).get('a')?.status).toBe('stopped');
    expect(d.queries()).toBe(2);
    views.invalidate('*');
    expect(views.size).toBe(0);
  });

  it('a failed barrier reads the database', async () => {
    const d = fakeDb();
    d.rows.set('a', { status: 'online', limit: null, spent: 0 });
    const feed = fakeFeed();
    const views = new ProxyViews(d.db, { feed });
    await views.get(['a']);
    feed.fail = true;
    d.rows.set('a', { status: 'stopped', limit: null, spent: 0 });
    expect((await views.get(['a'])).get('a')?.status).toBe('stopped');
    expect(d.queries()).toBe(2);
  });

  it('a read that an invalidation overtook is returned but not kept', async () => {
    const d = fakeDb();
    d.rows.set('a', { status: 'online', limit: null, spent: 0 });
    const feed = fakeFeed();
    const views = new ProxyViews(d.db, { feed });
    const release = d.holdQueries();
    const reading = views.get(['a']);
    // The read's snapshot is taken; a change commits and is announced before it returns.
    await Promise.resolve();
    d.rows.set('a', { status: 'stopped', limit: null, spent: 0 });
    views.invalidate('a');
    release();
    expect((await reading).get('a')?.status).toBe('online');
    expect(views.size).toBe(0);
    expect((await views.get(['a'])).get('a')?.status).toBe('stopped');
  });

  it('a read that a flush overtook, or that ended after the feed stopped listening, is not kept', async () => {
    const d = fakeDb();
    d.rows.set('a', { status: 'online', limit: null, spent: 0 });
    const feed = fakeFeed();
    const views = new ProxyViews(d.db, { feed });
    let release = d.holdQueries();
    let reading = views.get(['a']);
    await Promise.resolve();
    views.invalidate('*');
    release();
    await reading;
    expect(views.size).toBe(0);

    release = d.holdQueries();
    reading = views.get(['a']);
    await Promise.resolve();
    feed.listening = false;
    release();
    await reading;
    expect(views.size).toBe(0);
  });

  it('an entry older than the TTL is read again; the oldest goes past maxEntries', async () => {
    const d = fakeDb();
    for (const id of ['a', 'b', 'c']) d.rows.set(id, { status: 'online', limit: null, spent: 0 });
    let now = 0;
    const views = new ProxyViews(d.db, { feed: fakeFeed(), ttlMs: 100, maxEntries: 2, now: () => now });
    await views.get(['a']);
    now = 99;
    await views.get(['a']);
    expect(d.queries()).toBe(1);
    now = 100;
    await views.get(['a']);
    expect(d.queries()).toBe(2);
    await views.get(['b']);
    await views.get(['c']);
    expect(views.size).toBe(2);
    await views.get(['a']);
    expect(d.queries()).toBe(5);
  });
});

describe('the barrier begun as an A2A call arrives', () => {
  const ID = '1000000000000001';
  const UNCACHED = '1000000000000002';
  const orgKey: Principal = { kind: 'org', orgId: 'org' };

  /**
   * The app's order in small, over a fake database holding ID (online) and a fake feed: the early
   * barrier first, then a middleware standing for the limits and auth (it records how many barriers
   * had been begun when it ran), then the proxy's router.
   */
  async function app() {
    const d = fakeDb();
    d.rows.set(ID, { status: 'online', limit: null, spent: 0 });
    const feed = fakeFeed();
    const views = new ProxyViews(d.db, { feed });
    const seenBySlowMiddleware: number[] = [];
    const a = express();
    a.use(beginProxyBarrier(views));
    a.use((_req, res, next) => {
      seenBySlowMiddleware.push(feed.syncs);
      res.locals.principal = orgKey;
      next();
    });
    const r = Router();
    loadsProxyWorkspace(r, (ids, barrier) => views.get(ids, barrier));
    r.all(['/:id/a2a', '/:id/other'], (_req, res) => {
      res.json({ status: proxyWorkspaceOf(res, PROXY).status });
    });
    a.use('/v1/workspaces', r);
    a.use(errorHandler(pino({ level: 'silent' })));
    const server = a.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return {
      d,
      feed,
      views,
      seenBySlowMiddleware,
      call: async (method: string, path: string) => {
        const res = await fetch(base + path, { method });
        return { code: res.status, body: (await res.json()) as { status?: string } };
      },
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  it('is begun before the middleware ahead of the lookup runs, and is the one the lookup waits for', async () => {
    const t = await app();
    try {
      // Not cached yet: no barrier (the lookup reads the database).
      expect(await t.call('POST', `/v1/workspaces/${ID}/a2a`)).toEqual({
        code: 200,
        body: { status: 'online' },
      });
      expect(t.feed.syncs).toBe(0);
      expect(t.seenBySlowMiddleware).toEqual([0]);
      // Cached: one barrier a call, begun before the middleware ran.
      expect(await t.call('POST', `/v1/workspaces/${ID}/a2a`)).toEqual({
        code: 200,
        body: { status: 'online' },
      });
      expect(t.feed.syncs).toBe(1);
      expect(t.seenBySlowMiddleware).toEqual([0, 1]);
      expect(t.d.queries()).toBe(1);
      // A change announced since: read again.
      t.d.rows.set(ID, { status: 'stopped', limit: null, spent: 0 });
      t.views.invalidate(ID);
      expect((await t.call('POST', `/v1/workspaces/${ID}/a2a`)).body.status).toBe('stopped');
      expect(t.d.queries()).toBe(2);
    } finally {
      await t.close();
    }
  });

  it('is begun only for a POST to an A2A call of a cached workspace', async () => {
    const t = await app();
    try {
      await t.views.get([ID]);
      for (const [method, path] of [
        ['GET', `/v1/workspaces/${ID}/a2a`],
        ['POST', `/v1/workspaces/${ID}/other`],
        ['POST', `/v1/workspaces/${UNCACHED}/a2a`],
      ] as const) {
        await t.call(method, path);
      }
      // The lookups themselves sync for the cached id (GET and /other), but nothing was begun early.
      expect(t.seenBySlowMiddleware).toEqual([0, 1, 2]);
      t.feed.listening = false;
      await t.call('POST', `/v1/workspaces/${ID}/a2a`);
      expect(t.seenBySlowMiddleware.at(-1)).toBe(t.feed.syncs);
    } finally {
      await t.close();
    }
  });

  it('a failed early barrier reads the database, and its rejection is never left unobserved', async () => {
    const unhandled = vi.fn();
    process.on('unhandledRejection', unhandled);
    const t = await app();
    try {
      await t.views.get([ID]);
      t.feed.fail = true;
      t.d.rows.set(ID, { status: 'stopped', limit: null, spent: 0 });
      expect((await t.call('POST', `/v1/workspaces/${ID}/a2a`)).body.status).toBe('stopped');
      // A barrier begun for a request that never reaches the lookup (refused before it).
      expect(t.views.barrierFor(ID)).toBeInstanceOf(Promise);
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off('unhandledRejection', unhandled);
      await t.close();
    }
  });
});
