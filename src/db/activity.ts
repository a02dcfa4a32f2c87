/**
 * Activity log queries. Timestamps leave the database as ISO-8601 text with microseconds (the
 * column's full precision), so a `before_ts` taken from an answer means exactly that row's instant.
 */
import type { Queryable } from './queryable.js';
import { storable } from './storable.js';

/**
 * What an activity row records: an A2A call (MCP's included), a scheduled run's message, or a
 * status transition (written with it, src/db/workspaces.ts recordTransition).
 */
export const ACTIVITY_TYPES = ['a2a', 'schedule', 'lifecycle'] as const;
export type ActivityType = (typeof ACTIVITY_TYPES)[number];

export interface NewA2AActivity {
  workspaceId: string;
  peerId: string | null;
  direction: 'inbound' | 'outbound';
  /** Default `a2a`. */
  type?: ActivityType;
  method: string | null;
  status: number;
  durationMs: number;
  /** Already redacted. */
  summary: string;
  requestText: string | null;
  responseText: string | null;
}

export interface ActivityRow {
  id: string;
  /** ISO-8601 UTC with microseconds, e.g. `2026-11-28T00:39:14.123456Z`. */
  ts: string;
  type: string;
  peerId: string | null;
  direction: string | null;
  method: string | null;
  status: string;
  durationMs: number | null;
  summary: string;
  requestText: string | null;
  responseText: string | null;
}

const TS_TEXT = `to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
const COLUMNS = `id::text AS id, ${TS_TEXT} AS ts, type, peer_id, direction, method, status, duration_ms, summary,
  request_text, response_text`;

type Raw = Record<string, unknown>;

function toRow(r: Raw): ActivityRow {
  return {
    id: r.id as string,
    ts: r.ts as string,
    type: r.type as string,
    peerId: (r.peer_id as string | null) ?? null,
    direction: (r.direction as string | null) ?? null,
    method: (r.method as string | null) ?? null,
    status: r.status as string,
    durationMs: (r.duration_ms as number | null) ?? null,
    summary: r.summary as string,
    requestText: (r.request_text as string | null) ?? null,
    responseText: (r.response_text as string | null) ?? null,
  };
}

/** One multi-row INSERT (in the order given: `ts` defaults to clock_timestamp(), row by row). */
export async function insertA2AActivity(db: Queryable, rows: NewA2AActivity[]): Promise<void> {
  if (rows.length === 0) return;
  const values: string[] = [];
  const params: unknown[] = [];
  for (const raw of rows) {
    const o = params.length;
    const p = (n: number) => `$${o + n}`;
    values.push(
      `(${p(1)}, ${p(10)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)}, ${p(7)}, ${p(8)}, ${p(9)})`,
    );
    params.push(
      raw.workspaceId,
      raw.peerId,
      raw.direction,
      storable(raw.method),
      String(raw.status),
      Math.round(raw.durationMs),
      storable(raw.summary),
      storable(raw.requestText),
      storable(raw.responseText),
      raw.type ?? 'a2a',
    );
  }
  const text = `INSERT INTO activity (workspace_id, type, peer_id, direction, method, status, duration_ms, summary,
       request_text, response_text)
     VALUES ${values.join(', ')}`;
  // The common batch sizes are prepared once per connection (named by their row count, so a name
  // always means the same text): PostgreSQL then skips parsing and planning the INSERT per call.
  if (rows.length <= PREPARED_BATCH_ROWS) {
    await db.query({ name: `wo_activity_insert_${rows.length}`, text, values: params });
  } else await db.query(text, params);
}

/** Batches of up to this many rows use a prepared INSERT (a handful of statements per connection). */
export const PREPARED_BATCH_ROWS = 16;

export const ACTIVITY_BATCH_ROWS = 500;

interface Waiter {
  rows: NewA2AActivity[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit of activity rows: the first call's rows are written at once; calls arriving while
 * that INSERT runs wait and then share the next one (one multi-row INSERT, one commit). A caller's
 * promise settles when its own rows are committed, or rejects with the error that kept them out
 * (nothing is dropped silently): a batch PostgreSQL refused is tried again caller by caller, so one
 * caller's bad row fails only that caller; a batch whose outcome is unknown (connection lost) fails
 * every caller in it, never written twice. The proxy awaits it before the response ends, so a row
 * is never only in memory once its caller has the answer, and a shutdown that waits for open
 * requests waits for their rows.
 */
export class ActivityBatcher {
  private queue: Waiter[] = [];
  private running: Promise<void> | null = null;

  constructor(
    private readonly insert: (rows: NewA2AActivity[]) => Promise<void>,
    /** Most rows in one INSERT (10 parameters each, far below PostgreSQL's 65,535). */
    private readonly maxRows = ACTIVITY_BATCH_ROWS,
  ) {}

  write(rows: NewA2AActivity[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ rows, resolve, reject });
      this.running ??= this.run();
    });
  }

  /** Settles once every row handed in so far is written or failed. */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  private async run(): Promise<void> {
    // Yield once, so `running` is set before the loop may end (and so calls made in the same tick
    // share the first INSERT).
    await Promise.resolve();
    try {
      while (this.queue.length > 0) {
        let n = 0;
        let take = 0;
        while (
          take < this.queue.length &&
          (take === 0 || n + this.queue[take]!.rows.length <= this.maxRows)
        ) {
          n += this.queue[take]!.rows.length;
          take++;
        }
        const batch = this.queue.splice(0, take);
        try {
          await this.insert(batch.flatMap((w) => w.rows));
          for (const w of batch) w.resolve();
        } catch (err) {
          if (batch.length > 1 && refusedByServer(err)) {
            // One caller's bad row (a workspace deleted meanwhile, a value refused) must not fail
            // every call that shared its INSERT: each caller's rows go once more on their own.
            for (const w of batch) await this.insert(w.rows).then(w.resolve, w.reject);
          } else for (const w of batch) w.reject(err);
        }
      }
    } finally {
      this.running = null;
    }
  }
}

/**
 * PostgreSQL refused the statement (an error with a SQLSTATE): it was rolled back whole, so its rows
 * may be sent again. Any other failure (a connection lost mid-statement) leaves unknown whether it
 * committed: sending the rows again could write them twice.
 */
function refusedByServer(err: unknown): boolean {
  // An error message from the server carries a severity; a socket's (EPIPE: five capitals too) not.
  const e = err as { code?: unknown; severity?: unknown } | null;
  return typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && typeof e.severity === 'string';
}

const batchers = new WeakMap<Queryable, ActivityBatcher>();

/** The group-commit writer of one database pool (see ActivityBatcher). */
export function activityBatcher(db: Queryable): ActivityBatcher {
  let b = batchers.get(db);
  if (!b) {
    b = new ActivityBatcher((rows) => insertA2AActivity(db, rows));
    batchers.set(db, b);
  }
  return b;
}

export interface ActivityFilter {
  workspaceId: string;
  limit: number;
  /** ISO-8601; only rows strictly older. */
  beforeTs?: string;
  peerId?: string;
  type?: string;
}

// By the columns, not by the text aliases of the same names: the index (workspace_id, ts DESC,
// id DESC) then gives a page without sorting every row of the workspace, and ids tie-break as numbers.
const ORDER = 'ORDER BY activity.ts DESC, activity.id DESC';

const WHERE = `workspace_id = $1 AND ($2::timestamptz IS NULL OR ts < $2::timestamptz)
  AND ($3::text IS NULL OR peer_id = $3) AND ($4::text IS NULL OR type = $4)`;

/**
 * One page, newest first (ts DESC, id DESC). A page never ends inside a group of rows sharing one
 * timestamp: `nextBeforeTs` is the timestamp of the page's last row, and every row strictly older
 * than it is still to come, so paging with `before_ts = nextBeforeTs` returns each row exactly once.
 * (A page may be shorter than `limit` to achieve this; in the degenerate case of more than `limit`
 * rows in one microsecond the whole group is returned.)
 */
export async function listActivity(
  db: Queryable,
  f: ActivityFilter,
): Promise<{ items: ActivityRow[]; nextBeforeTs: string | null }> {
  const params = [f.workspaceId, f.beforeTs ?? null, f.peerId ?? null, f.type ?? null];
  const { rows } = await db.query(`SELECT ${COLUMNS} FROM activity WHERE ${WHERE} ${ORDER} LIMIT $5`, [
    ...params,
    f.limit + 1,
  ]);
  const all = rows.map((r) => toRow(r as Raw));
  if (all.length <= f.limit) return { items: all, nextBeforeTs: null };
  const extra = all[f.limit]!;
  let page = all.slice(0, f.limit);
  page = page.filter((r) => r.ts !== extra.ts);
  if (page.length === 0) {
    const group = await db.query(
      `SELECT ${COLUMNS} FROM activity WHERE ${WHERE} AND ${TS_TEXT} = $5 ${ORDER}`,
      [...params, extra.ts],
    );
    page = group.rows.map((r) => toRow(r as Raw));
  }
  return { items: page, nextBeforeTs: page[page.length - 1]!.ts };
}

/**
 * Deletes up to `limit` ($2) activity rows written before `before` ($1), found through the
 * (workspace_id, ts) index one workspace's range at a time (an index on `ts` alone would cost every
 * proxied call's INSERT) and deleted by primary key: as an array, not `id IN (subquery)`, which
 * the planner may answer with a hash join over the whole table.
 */
export const PRUNE_ACTIVITY_SQL = `DELETE FROM activity WHERE id = ANY(ARRAY(
  SELECT old.id FROM workspaces w
  CROSS JOIN LATERAL (
    SELECT a.id FROM activity a WHERE a.workspace_id = w.id AND a.ts < $1 LIMIT $2
  ) old
  LIMIT $2))`;

/** PRUNE_ACTIVITY_SQL: answers how many rows went. */
export async function pruneActivity(db: Queryable, before: Date, limit: number): Promise<number> {
  const { rowCount } = await db.query(PRUNE_ACTIVITY_SQL, [before, limit]);
  return rowCount ?? 0;
}
