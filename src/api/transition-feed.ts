/**
 * One shared poller of `workspace_transitions` per process, feeding every `/events` stream: one
 * query per tick whatever the number of subscribers (`WHERE id > cursor`, fanned out in memory).
 * Works on PGlite as on PostgreSQL (no LISTEN/NOTIFY needed). It runs only while someone listens.
 * Where PostgreSQL announces new transitions (`wake`, from the change feed's LISTEN), a followed
 * workspace's transition is polled at once instead of at the next tick; the tick stays as the
 * backstop, so a lost notification only makes an event late, never lost.
 *
 * Ids come from a sequence, so a transaction can commit a lower id after a higher one was seen:
 * ids skipped over are re-asked for a while (`gapWaitMs`) so such a late row still reaches every
 * subscriber.
 */
import type { Logger } from 'pino';
import { listTransitions, type TransitionEvent } from '../db/events.js';
import type { Queryable } from '../db/queryable.js';

export interface FeedOptions {
  intervalMs: number;
  /** Rows per poll (the next poll follows at once when a poll was full). */
  batch?: number;
  /** How long an id skipped over is waited for (a transaction still committing). */
  gapWaitMs?: number;
  log?: Pick<Logger, 'warn'>;
}

type Deliver = (t: TransitionEvent) => void;

interface Subscriber {
  workspaceId: string;
  deliver: Deliver;
  /** Live events held while the history is being sent. */
  held: TransitionEvent[] | null;
  /** Ids already sent (bounded; only needed to drop the overlap of history and live events). */
  sent: Set<string>;
}

const SENT_IDS_KEPT = 4096;
/** Ids below the starting point checked for transactions still committing. */
const START_WINDOW = 256;
const MAX_GAPS = 1024;
/** The least time between two polls a wake brings forward. */
const WAKE_GAP_MS = 20;

interface Row extends TransitionEvent {
  workspace_id: string;
}

export class TransitionFeed {
  private readonly subs = new Map<string, Set<Subscriber>>();
  private count = 0;
  private cursor: bigint | null = null;
  private starting: Promise<void> | null = null;
  /** Skipped ids → when to stop waiting for them. */
  private readonly gaps = new Map<bigint, number>();
  private timer: NodeJS.Timeout | null = null;
  /** Bumped by stop(): a poll of an earlier run does not schedule another. */
  private epoch = 0;
  private closed = false;
  /** Polls run so far: one query each. */
  polls = 0;
  /** The epoch whose poll is running (a wake meanwhile asks for another right after it). */
  private pollingEpoch: number | null = null;
  private pollAgain = false;
  /** performance.now() of the last poll's start, and of the scheduled one. */
  private lastPollAt = -Infinity;
  private nextPollAt = Infinity;

  constructor(
    private readonly db: Queryable,
    private readonly opts: FeedOptions,
  ) {}

  /** Current subscribers. */
  get size(): number {
    return this.count;
  }

  /** Whether the poller is scheduled (it is only while someone listens). */
  get running(): boolean {
    return this.timer !== null;
  }

  /**
   * Sends the workspace's history (after `afterId`: a client resuming with the last id it saw),
   * then every new transition, to `deliver`, each once and in id order (a late-committed row may
   * come after a higher id). Returns the unsubscribe function.
   */
  async subscribe(workspaceId: string, deliver: Deliver, afterId = '0'): Promise<() => void> {
    const sub: Subscriber = { workspaceId, deliver, held: [], sent: new Set() };
    let set = this.subs.get(workspaceId);
    if (!set) this.subs.set(workspaceId, (set = new Set()));
    set.add(sub);
    this.count++;
    const unsubscribe = (): void => {
      if (!set.delete(sub)) return;
      this.count--;
      if (set.size === 0) this.subs.delete(workspaceId);
      if (this.count === 0) this.stop();
    };
    try {
      await this.start();
      // History: one query per page for this subscriber, once (not per tick).
      let after = afterId;
      for (;;) {
        const page = await listTransitions(this.db, workspaceId, after);
        for (const t of page) this.send(sub, t);
        if (page.length < 500) break;
        after = page[page.length - 1]!.id;
      }
    } catch (err) {
      unsubscribe();
      throw err;
    }
    const held = sub.held ?? [];
    sub.held = null;
    for (const t of held) this.send(sub, t);
    return unsubscribe;
  }

  /**
   * A transition of `workspaceId` ('*': of any workspace) was committed: poll now if a subscriber
   * follows it. Wakes that come while a poll runs fold into one poll after it.
   */
  wake(workspaceId: string): void {
    if (this.closed || this.count === 0) return;
    if (workspaceId !== '*' && !this.subs.has(workspaceId)) return;
    // Starting, or polling: the first poll, or the next, follows at once.
    if (this.cursor === null || this.pollingEpoch === this.epoch) {
      this.pollAgain = true;
      return;
    }
    // At most one poll per WAKE_GAP_MS for wakes: a storm of transitions costs a bounded rate of
    // queries, not one each.
    const now = performance.now();
    const at = Math.max(now, this.lastPollAt + WAKE_GAP_MS);
    if (at >= this.nextPollAt) return;
    if (this.timer) clearTimeout(this.timer);
    // From the same reading: a second one would be later, and "at once" a negative delay.
    this.schedule(at - now);
  }

  close(): void {
    this.closed = true;
    this.stop();
    this.subs.clear();
    this.count = 0;
  }

  private send(sub: Subscriber, t: TransitionEvent): void {
    if (sub.sent.has(t.id)) return;
    sub.sent.add(t.id);
    if (sub.sent.size > SENT_IDS_KEPT) sub.sent.delete(sub.sent.values().next().value!);
    sub.deliver(t);
  }

  private start(): Promise<void> {
    if (this.cursor !== null) return Promise.resolve();
    this.starting ??= (async () => {
      try {
        // The newest ids: the highest is where polling starts; ids missing just below it may be
        // transactions still committing, so they are waited for like any other gap.
        const { rows } = await this.db.query<{ id: string }>(
          // Ordered by the column, not by its text alias ("99" sorts after "100").
          `SELECT id::text AS id FROM workspace_transitions ORDER BY workspace_transitions.id DESC LIMIT ${START_WINDOW}`,
        );
        if (this.count > 0 && !this.closed) {
          const high = rows[0] ? BigInt(rows[0].id) : 0n;
          const present = new Set(rows.map((r) => r.id));
          const until = Date.now() + (this.opts.gapWaitMs ?? 10_000);
          for (let id = high - 1n; id > 0n && id > high - BigInt(START_WINDOW); id--) {
            if (!present.has(id.toString())) this.gaps.set(id, until);
          }
          this.cursor = high;
          this.schedule(this.pollAgain ? 0 : this.opts.intervalMs);
        }
      } finally {
        this.starting = null;
      }
    })();
    return this.starting;
  }

  private stop(): void {
    this.epoch++;
    this.pollAgain = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.nextPollAt = Infinity;
    this.cursor = null;
    this.gaps.clear();
  }

  private schedule(ms: number): void {
    if (this.closed || this.count === 0) return;
    const epoch = this.epoch;
    this.nextPollAt = performance.now() + ms;
    this.timer = setTimeout(() => void this.tick(epoch), ms);
    this.timer.unref();
  }

  private async tick(epoch: number): Promise<void> {
    const batch = this.opts.batch ?? 1000;
    let full = false;
    this.pollingEpoch = epoch;
    this.pollAgain = false;
    this.lastPollAt = performance.now();
    this.nextPollAt = Infinity;
    try {
      full = await this.poll(batch);
    } catch (err) {
      this.opts.log?.warn({ err }, 'polling workspace transitions failed');
    } finally {
      if (this.pollingEpoch === epoch) this.pollingEpoch = null;
    }
    if (epoch !== this.epoch) return;
    if (full) this.schedule(0);
    else if (this.pollAgain) this.schedule(WAKE_GAP_MS);
    else this.schedule(this.opts.intervalMs);
  }

  /** One query for every subscribed workspace; true when the batch was full. */
  private async poll(batch: number): Promise<boolean> {
    const cursor = this.cursor;
    if (cursor === null) return false;
    const now = Date.now();
    for (const [id, until] of this.gaps) if (until < now) this.gaps.delete(id);
    this.polls++;
    const { rows } = await this.db.query<Row>(
      `SELECT id::text AS id, workspace_id, status, phase, message, generation, ts FROM workspace_transitions
       WHERE id > $1::bigint OR id = ANY($2::bigint[]) ORDER BY workspace_transitions.id LIMIT $3`,
      [cursor.toString(), [...this.gaps.keys()].map(String), batch],
    );
    // The feed may have stopped (and restarted) while the query ran.
    if (this.cursor !== cursor) return false;
    let high = cursor;
    for (const row of rows) {
      const id = BigInt(row.id);
      if (id <= cursor) this.gaps.delete(id);
      else {
        for (let missing = high + 1n; missing < id && this.gaps.size < MAX_GAPS; missing++) {
          this.gaps.set(missing, now + (this.opts.gapWaitMs ?? 10_000));
        }
        if (id > high) high = id;
      }
      const { workspace_id: workspaceId, ...t } = row;
      for (const sub of this.subs.get(workspaceId) ?? []) {
        if (sub.held) sub.held.push(t);
        else this.send(sub, t);
      }
    }
    // A delivery may have unsubscribed the last subscriber (the events route does on `deleted`):
    // stop() reset the cursor then, and restoring it would leave a feed with no timer that the next
    // start() takes for running.
    if (this.cursor !== cursor) return false;
    this.cursor = high;
    return rows.length === batch;
  }
}
