/**
 * Workspace history past HISTORY_RETENTION_DAYS, deleted by the orphan sweep. What a workspace is
 * now never goes: its current generation's boot events and console (the boot log of what runs),
 * and its newest status transition (what `/events` starts from). The rest goes once older than
 * the cut: past generations' boot events and kept consoles, older transitions, and a deleted
 * workspace's whole history (its row stays: a deleted id is still known as deleted).
 *
 * Each statement finds at most `limit` ($2) rows older than the cut ($1) through an index on the
 * row's own time and deletes them by key as an array, never `IN (subquery)` (which the planner may
 * answer with a hash join over the whole table).
 */
import type { Queryable } from './queryable.js';

/** The tables pruned, in the order a run takes them (the largest rows first). */
export const HISTORY_TABLES = ['consoleLogs', 'bootEvents', 'transitions'] as const;
export type HistoryTable = (typeof HISTORY_TABLES)[number];

/** A past generation's row, or any row of a deleted workspace. */
const PAST = `(x.generation < w.generation OR w.status = 'deleted')`;

export const PRUNE_HISTORY_SQL: Record<HistoryTable, string> = {
  // Keyed by (workspace_id, generation): deleted by row address, found under the same snapshot
  // (a row updated meanwhile has moved and is left for the next run).
  consoleLogs: `DELETE FROM console_logs WHERE ctid = ANY(ARRAY(
    SELECT x.ctid FROM console_logs x JOIN workspaces w ON w.id = x.workspace_id
    WHERE x.captured_at < $1 AND ${PAST}
    LIMIT $2))`,
  // received_at, not ts: ts is the agent's clock.
  bootEvents: `DELETE FROM boot_events WHERE id = ANY(ARRAY(
    SELECT x.id FROM boot_events x JOIN workspaces w ON w.id = x.workspace_id
    WHERE x.received_at < $1 AND ${PAST}
    LIMIT $2))`,
  // Every workspace keeps its newest transition, whatever its age.
  transitions: `DELETE FROM workspace_transitions WHERE id = ANY(ARRAY(
    SELECT x.id FROM workspace_transitions x
    WHERE x.ts < $1 AND x.id < (
      SELECT max(n.id) FROM workspace_transitions n WHERE n.workspace_id = x.workspace_id)
    LIMIT $2))`,
};

/** One of PRUNE_HISTORY_SQL: answers how many rows went. */
export async function pruneHistory(
  db: Queryable,
  table: HistoryTable,
  before: Date,
  limit: number,
): Promise<number> {
  const { rowCount } = await db.query(PRUNE_HISTORY_SQL[table], [before, limit]);
  return rowCount ?? 0;
}
