/**
 * One dedicated PostgreSQL connection that LISTENs for changes to the rows the A2A proxy caches
 * (channel `wo_proxy_view`, raised by triggers on every writer: see the proxy_view_notify
 * migration), for new workspace transitions (channel `wo_transitions`: they wake the `/events`
 * poller, see transitions_notify), and a barrier, `sync()`, that makes the proxy's cache exact:
 *
 * A caller may commit a change on its own connection and call the API at once; the change's
 * notification is sent at that commit but reaches this process asynchronously, possibly after the
 * caller's request. So a cache hit is used only after a barrier sent after the request arrived:
 * this connection NOTIFYs its own private channel and waits for that notification to come back.
 * PostgreSQL delivers the notifications of different transactions in commit order, so every change
 * committed before the barrier's NOTIFY has been seen (and has invalidated its entry) by then.
 * Concurrent callers share one barrier (group commit style): one round trip for all of them.
 *
 * While the connection is down nothing may be trusted: `listening` is false, every change handler
 * is told '*' (flush all) on each drop and reconnect, and pending barriers fail.
 */
import { randomBytes } from 'node:crypto';

/** The channel the triggers notify; the payload is a workspace id, or '*' for all. */
export const PROXY_VIEW_CHANNEL = 'wo_proxy_view';

/** Raised at the commit of every new workspace transition; the payload is its workspace id. */
export const TRANSITIONS_CHANNEL = 'wo_transitions';

/** The part of pg.Client the feed uses (a fake in unit tests). */
export interface FeedClient {
  connect(): Promise<unknown>;
  query(sql: string, params?: unknown[]): Promise<unknown>;
  on(event: 'notification', cb: (n: { channel: string; payload?: string }) => void): unknown;
  on(event: 'error', cb: (err: Error) => void): unknown;
  on(event: 'end', cb: () => void): unknown;
  end(): Promise<void>;
}

export interface ChangeFeedOptions {
  /** A new, unconnected client for the dedicated connection. */
  newClient: () => FeedClient;
  /** Called with a changed id, or '*' when everything must be forgotten. */
  onChange: (id: string) => void;
  /** A barrier that has not come back by then fails (and the connection is recycled). */
  syncTimeoutMs?: number;
  /** Pause before reconnecting after a drop. */
  reconnectMs?: number;
  log?: { warn(obj: object, msg: string): void };
}

interface Barrier {
  seq: string;
  waiters: Array<{ resolve: () => void; reject: (err: Error) => void }>;
}

export class ChangeFeed {
  private client: FeedClient | null = null;
  private connected = false;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  /** Per process: other processes' barriers are not ours. */
  private readonly syncChannel = `wo_sync_${randomBytes(6).toString('hex')}`;
  private seq = 0;
  private inflight: Barrier | null = null;
  private next: Barrier['waiters'] = [];
  /**
   * One timer for every barrier of a connection, re-armed as each is sent (a new timer per
   * barrier, set and cleared, was a measurable share of a call at concurrency 1). Only one barrier
   * is in flight at a time, so when it fires, the one in flight (if any) was sent syncTimeoutMs ago.
   */
  private watchdog: NodeJS.Timeout | null = null;
  private readonly syncTimeoutMs: number;
  private readonly reconnectMs: number;
  private readonly transitionListeners = new Set<(workspaceId: string) => void>();

  constructor(private readonly opts: ChangeFeedOptions) {
    this.syncTimeoutMs = opts.syncTimeoutMs ?? 2_000;
    this.reconnectMs = opts.reconnectMs ?? 1_000;
  }

  /** Connected and listening: notifications are arriving. */
  get listening(): boolean {
    return this.connected;
  }

  /**
   * Calls `listener` with the workspace id of every transition committed from now on, and with '*'
   * after a (re)connect, when some may have been missed. A hint only: its users still poll.
   */
  onTransition(listener: (workspaceId: string) => void): () => void {
    this.transitionListeners.add(listener);
    return () => this.transitionListeners.delete(listener);
  }

  /** Connects (retrying in the background when it fails); resolves after the first attempt. */
  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = this.opts.newClient();
    this.client = client;
    client.on('notification', (n) => this.onNotification(client, n));
    client.on('error', (err) => this.drop(client, err));
    client.on('end', () => this.drop(client, new Error('listen connection ended')));
    try {
      await client.connect();
      await client.query(`LISTEN ${PROXY_VIEW_CHANNEL}`);
      await client.query(`LISTEN ${TRANSITIONS_CHANNEL}`);
      await client.query(`LISTEN ${this.syncChannel}`);
    } catch (err) {
      this.drop(client, err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (this.client !== client || this.closed) {
      // Closed (or dropped) while connecting: this connection is nobody's.
      await client.end().catch(() => undefined);
      return;
    }
    // Whatever was kept before is of unknown freshness: start from nothing.
    this.opts.onChange('*');
    this.connected = true;
    this.transitionsChanged('*');
  }

  private transitionsChanged(workspaceId: string): void {
    for (const listener of this.transitionListeners) listener(workspaceId);
  }

  private onNotification(client: FeedClient, n: { channel: string; payload?: string }): void {
    if (client !== this.client) return;
    const done = this.inflight;
    if (n.channel === PROXY_VIEW_CHANNEL) this.opts.onChange(n.payload || '*');
    else if (n.channel === TRANSITIONS_CHANNEL) this.transitionsChanged(n.payload || '*');
    else if (n.channel === this.syncChannel && done && done.seq === n.payload) {
      this.inflight = null;
      for (const w of done.waiters) w.resolve();
      if (this.next.length > 0) this.send(this.next.splice(0));
    }
  }

  /**
   * Resolves once every change committed before this call has been handed to `onChange`; rejects
   * when that cannot be known (not listening, connection lost, timeout): the caller then reads the
   * database.
   */
  sync(): Promise<void> {
    if (!this.connected) return Promise.reject(new Error('not listening'));
    return new Promise<void>((resolve, reject) => {
      const waiter = { resolve, reject };
      // A barrier already sent may have been committed before this call's predecessors: wait for
      // the next one, sent when it returns.
      if (this.inflight) this.next.push(waiter);
      else this.send([waiter]);
    });
  }

  private send(waiters: Barrier['waiters']): void {
    const client = this.client;
    if (!client || !this.connected) {
      for (const w of waiters) w.reject(new Error('not listening'));
      return;
    }
    const barrier: Barrier = { seq: String(++this.seq), waiters };
    this.inflight = barrier;
    if (this.watchdog) this.watchdog.refresh();
    else {
      this.watchdog = setTimeout(() => {
        const c = this.client;
        if (this.inflight && c) this.drop(c, new Error('change feed barrier timed out'));
      }, this.syncTimeoutMs);
    }
    client
      // Simple protocol, one message: the channel is ours (hex) and the payload a number.
      .query(`NOTIFY ${this.syncChannel}, '${barrier.seq}'`)
      .catch((err: unknown) => this.drop(client, err instanceof Error ? err : new Error(String(err))));
  }

  /** The connection is unusable: forget everything, fail the barriers, reconnect later. */
  private drop(client: FeedClient, err: Error): void {
    if (client !== this.client) return;
    this.client = null;
    const was = this.connected;
    this.connected = false;
    this.opts.onChange('*');
    this.failBarriers(err);
    client.end().catch(() => undefined);
    if (this.closed) return;
    if (was) this.opts.log?.warn({ err }, 'proxy view change feed lost; reconnecting');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.connect();
    }, this.reconnectMs);
  }

  private failBarriers(err: Error): void {
    const waiters = [...(this.inflight?.waiters ?? []), ...this.next.splice(0)];
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
    this.inflight = null;
    for (const w of waiters) w.reject(err);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = null;
    this.connected = false;
    this.opts.onChange('*');
    this.failBarriers(new Error('change feed closed'));
    await client?.end().catch(() => undefined);
  }
}
