/**
 * Memories of a workspace: seeded at create (`initialMemories`) and managed through
 * `/v1/workspaces/:id/memories`. Content is redacted by the caller before it gets here (the one
 * redaction function, `redactorFor`). Timestamps leave the database as ISO-8601 text with
 * microseconds, so a page cursor names exactly one row's position.
 */
import { newId } from '../security/tokens.js';
import type pg from 'pg';
import { inTransaction, type Queryable } from './queryable.js';
import { storable } from './storable.js';

export interface MemoryRow {
  id: string;
  content: string;
  scope: string;
  /** ISO-8601 UTC with microseconds. */
  createdAt: string;
}

/** Where a page ended: the last row's (createdAt, id); the next page holds only rows before it. */
export interface MemoryPosition {
  createdAt: string;
  id: string;
}

const TS_TEXT = `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/**
 * Stores a memory unless the workspace already holds `max`: null then. Counted under the workspace
 * row's lock, so concurrent stores cannot overshoot.
 */
export async function insertMemoryWithin(
  pool: pg.Pool,
  workspaceId: string,
  content: string,
  scope: string,
  max: number,
): Promise<MemoryRow | null> {
  return inTransaction(pool, async (tx) => {
    await tx.query('SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE', [workspaceId]);
    const { rows } = await tx.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM memories WHERE workspace_id = $1',
      [workspaceId],
    );
    if ((rows[0]?.n ?? 0) >= max) return null;
    return insertMemory(tx, workspaceId, content, scope);
  });
}

/** Content must already be redacted by the caller (the one redaction function). */
export async function insertMemory(
  db: Queryable,
  workspaceId: string,
  content: string,
  scope: string,
): Promise<MemoryRow> {
  const id = newId();
  const { rows } = await db.query<{ created_at: string }>(
    `INSERT INTO memories (id, workspace_id, content, scope) VALUES ($1, $2, $3, $4)
     RETURNING ${TS_TEXT} AS created_at`,
    [id, workspaceId, storable(content), scope],
  );
  return { id, content: storable(content), scope, createdAt: rows[0]!.created_at };
}

/** One page, newest first by (created_at, id); `after` continues where a previous page ended. */
export async function listMemories(
  db: Queryable,
  f: { workspaceId: string; limit: number; scope?: string; after?: MemoryPosition },
): Promise<{ items: MemoryRow[]; next: MemoryPosition | null }> {
  const { rows } = await db.query<{ id: string; content: string; scope: string; created_at: string }>(
    `SELECT id, content, scope, ${TS_TEXT} AS created_at FROM memories
      WHERE workspace_id = $1 AND ($2::text IS NULL OR scope = $2)
        AND ($3::timestamptz IS NULL OR (created_at, id) < ($3::timestamptz, $4::text))
      ORDER BY memories.created_at DESC, memories.id DESC LIMIT $5`,
    [f.workspaceId, f.scope ?? null, f.after?.createdAt ?? null, f.after?.id ?? '', f.limit + 1],
  );
  const items = rows
    .slice(0, f.limit)
    .map((r) => ({ id: r.id, content: r.content, scope: r.scope, createdAt: r.created_at }));
  const last = items[items.length - 1];
  return { items, next: rows.length > f.limit && last ? { createdAt: last.createdAt, id: last.id } : null };
}

/** Deletes the memory only when it belongs to the workspace; false when it does not exist there. */
export async function deleteMemory(db: Queryable, workspaceId: string, memoryId: string): Promise<boolean> {
  const { rowCount } = await db.query(`DELETE FROM memories WHERE id = $1 AND workspace_id = $2`, [
    memoryId,
    workspaceId,
  ]);
  return (rowCount ?? 0) > 0;
}
