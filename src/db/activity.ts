/**
 * Activity log queries. Timestamps leave the database as ISO-8601 text with microseconds (the
 * column's full precision), so a `before_ts` taken from an answer means exactly that row's instant.
 */
import type { Queryable } from './queryable.js';
import { storable } from './storable.js';

export interface NewA2AActivity {
  workspaceId: string;
  peerId: string | null;
  direction: 'inbound' | 'outbound';
  /** Default `a2a`; a scheduled run's message is `schedule`. */
  type?: string;
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

export async function insertA2AActivity(db: Queryable, rows: NewA2AActivity[]): Promise<void> {
  for (const raw of rows) {
    const a = {
      ...raw,
      method: storable(raw.method),
      summary: storable(raw.summary),
      requestText: storable(raw.requestText),
      responseText: storable(raw.responseText),
    };
    await db.query(
      `INSERT INTO activity (workspace_id, type, peer_id, direction, method, status, duration_ms, summary,
         request_text, response_text)
       VALUES ($1, $10, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        a.workspaceId,
        a.peerId,
        a.direction,
        a.method,
        String(a.status),
        Math.round(a.durationMs),
        a.summary,
        a.requestText,
        a.responseText,
        a.type ?? 'a2a',
      ],
    );
  }
}

export interface ActivityFilter {
  workspaceId: string;
  limit: number;
  /** ISO-8601; only rows strictly older. */
  beforeTs?: string;
  peerId?: string;
  type?: string;
}

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
  const { rows } = await db.query(
    `SELECT ${COLUMNS} FROM activity WHERE ${WHERE} ORDER BY ts DESC, id DESC LIMIT $5`,
    [...params, f.limit + 1],
  );
  const all = rows.map((r) => toRow(r as Raw));
  if (all.length <= f.limit) return { items: all, nextBeforeTs: null };
  const extra = all[f.limit]!;
  let page = all.slice(0, f.limit);
  page = page.filter((r) => r.ts !== extra.ts);
  if (page.length === 0) {
    const group = await db.query(
      `SELECT ${COLUMNS} FROM activity WHERE ${WHERE} AND ${TS_TEXT} = $5 ORDER BY ts DESC, id DESC`,
      [...params, extra.ts],
    );
    page = group.rows.map((r) => toRow(r as Raw));
  }
  return { items: page, nextBeforeTs: page[page.length - 1]!.ts };
}
