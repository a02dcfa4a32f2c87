/**
 * A small in-process cache of lookups on the A2A proxy's hot path (an API key's org, a workspace's
 * secrets for redaction, a generation's agent credential). Entries live `ttlMs` at most: that bounds
 * how stale a value written by another process can be; a write in this process invalidates at once
 * (`delete`/`clear`). A load that was in flight across an invalidation is returned to its caller but
 * not kept, so an invalidation is never undone by a slower, older read.
 */
export interface TtlCacheOptions<V> {
  ttlMs: number;
  /** Oldest entries are dropped past this many. */
  maxEntries: number;
  /** Values worth keeping (e.g. not a "no such key": a key minted next must work at once). */
  keep?: (value: V) => boolean;
  /** Milliseconds; injectable for tests. */
  now?: () => number;
}

export class TtlCache<K, V> {
  private readonly entries = new Map<K, { value: V; expires: number }>();
  /** Bumped by every invalidation: a load that started under an older epoch is not stored. */
  private epoch = 0;
  private readonly now: () => number;

  constructor(private readonly opts: TtlCacheOptions<V>) {
    this.now = opts.now ?? Date.now;
  }

  async get(key: K, load: () => Promise<V>): Promise<V> {
    const hit = this.entries.get(key);
    if (hit) {
      if (hit.expires > this.now()) return hit.value;
      this.entries.delete(key);
    }
    const epoch = this.epoch;
    const value = await load();
    if (epoch === this.epoch && (this.opts.keep?.(value) ?? true)) {
      this.entries.delete(key);
      this.entries.set(key, { value, expires: this.now() + this.opts.ttlMs });
      if (this.entries.size > this.opts.maxEntries) {
        this.entries.delete(this.entries.keys().next().value as K);
      }
    }
    return value;
  }

  delete(key: K): void {
    this.epoch++;
    this.entries.delete(key);
  }

  clear(): void {
    this.epoch++;
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}

/** How long a hot-path lookup is trusted without asking PostgreSQL again (see TtlCache). */
export const HOT_TTL_MS = 2_000;
