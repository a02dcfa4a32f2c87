/**
 * The A2A proxy's view of a workspace: what its access rule, routing and budget check read, and
 * nothing else (the full row has 28 columns; parsing them was a large share of a proxied call's
 * CPU). Read in one query with the budget, and kept in-process while a ChangeFeed is listening
 * (src/db/change-feed.ts): an entry is used only after a barrier proved every change committed
 * before the request has been seen, so a row changed by any writer is never served stale.
 */
import type { Budget } from '../domain/budget.js';
import type { ChangeFeed } from './change-feed.js';
import type { Queryable } from './queryable.js';
import type { WorkspaceRow } from './workspaces.js';

export type ProxyView = Pick<
  WorkspaceRow,
  'id' | 'orgId' | 'name' | 'backend' | 'generation' | 'status' | 'endpoint'
> & { budget: Budget };

/** The views of these workspaces (those that exist), in one query. */
export async function readProxyViews(db: Queryable, ids: readonly string[]): Promise<Map<string, ProxyView>> {
  const { rows } = await db.query<{
    id: string;
    org_id: string;
    name: string;
    backend: WorkspaceRow['backend'];
    generation: number;
    status: WorkspaceRow['status'];
    endpoint: string | null;
    limit_cents: number | null;
    spent_cents: string;
  }>(
    `SELECT w.id, w.org_id, w.name, w.backend, w.generation, w.status, w.endpoint,
            w.budget_limit_cents AS limit_cents,
            (SELECT COALESCE(SUM(spent_cents), 0)::bigint FROM workspace_spend s WHERE s.workspace_id = w.id)
              AS spent_cents
       FROM workspaces w WHERE w.id = ANY($1::text[])`,
    [ids],
  );
  const out = new Map<string, ProxyView>();
  for (const r of rows) {
    out.set(r.id, {
      id: r.id,
      orgId: r.org_id,
      name: r.name,
      backend: r.backend,
      generation: r.generation,
      status: r.status,
      endpoint: r.endpoint,
      budget: { limitCents: r.limit_cents, spentCents: Number(r.spent_cents) },
    });
  }
  return out;
}

export interface ProxyViewsOptions {
  /** Absent (or not listening): every call reads the database. */
  feed?: Pick<ChangeFeed, 'listening' | 'sync'>;
  /** Backstop: an entry is re-read after this long even without a notification. */
  ttlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

interface Ticket {
  stale: boolean;
}

/** Proxy views, cached while the change feed listens (see the module comment). */
export class ProxyViews {
  private readonly entries = new Map<string, { view: ProxyView; expires: number }>();
  /** Loads in flight per id: an invalidation meanwhile marks them stale, so they are not kept. */
  private readonly loading = new Map<string, Set<Ticket>>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(
    private readonly db: Queryable,
    private readonly opts: ProxyViewsOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 5_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** A change to `id` was committed ('*': to anything). */
  invalidate(id: string): void {
    if (id === '*') {
      this.entries.clear();
      for (const set of this.loading.values()) for (const t of set) t.stale = true;
      return;
    }
    this.entries.delete(id);
    for (const t of this.loading.get(id) ?? []) t.stale = true;
  }

  /**
   * A barrier begun for a request that will look `id` up, as soon as it arrives: its round trip then
   * runs while the middleware ahead of the lookup (limits, auth, routing) does. Undefined when the
   * lookup would not use one (no fresh entry, not listening). Never rejects unobserved.
   */
  barrierFor(id: string): Promise<void> | undefined {
    const feed = this.opts.feed;
    if (!feed?.listening || !this.fresh(id)) return undefined;
    const barrier = feed.sync();
    barrier.catch(() => undefined);
    return barrier;
  }

  /**
   * The current views of these workspaces (absent: no such workspace). `barrier`: one from
   * barrierFor, begun after the request arrived (so it proves the same as a barrier begun here).
   */
  async get(ids: readonly string[], barrier?: Promise<void>): Promise<Map<string, ProxyView>> {
    const feed = this.opts.feed;
    if (!feed?.listening) return readProxyViews(this.db, ids);
    if (ids.every((id) => this.fresh(id))) {
      try {
        await (barrier ?? feed.sync());
        const out = new Map<string, ProxyView>();
        for (const id of ids) {
          const e = this.fresh(id);
          if (!e) break;
          out.set(id, e.view);
        }
        if (out.size === ids.length) return out;
      } catch {
        // Freshness unknown: read the database.
      }
    }
    return this.load(ids);
  }

  private fresh(id: string): { view: ProxyView } | undefined {
    const e = this.entries.get(id);
    if (e && e.expires <= this.now()) {
      this.entries.delete(id);
      return undefined;
    }
    return e;
  }

  private async load(ids: readonly string[]): Promise<Map<string, ProxyView>> {
    const tickets = ids.map((id) => {
      const t: Ticket = { stale: false };
      let set = this.loading.get(id);
      if (!set) this.loading.set(id, (set = new Set()));
      set.add(t);
      return [id, t] as const;
    });
    try {
      const views = await readProxyViews(this.db, ids);
      for (const [id, t] of tickets) {
        const view = views.get(id);
        // Kept only when no change to it was announced while it was read, and the feed still listens.
        if (view && !t.stale && this.opts.feed?.listening) this.keep(view);
      }
      return views;
    } finally {
      for (const [id, t] of tickets) {
        const set = this.loading.get(id);
        set?.delete(t);
        if (set?.size === 0) this.loading.delete(id);
      }
    }
  }

  private keep(view: ProxyView): void {
    this.entries.delete(view.id);
    this.entries.set(view.id, { view, expires: this.now() + this.ttlMs });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  get size(): number {
    return this.entries.size;
  }
}
