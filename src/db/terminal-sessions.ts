import type { BackendKind } from '../backends/backend.js';
import type { Queryable } from './queryable.js';

/**
 * The registry of open terminal sessions (migration 1764615000000_terminal_sessions.sql): what
 * lets any API process find, and kill, the sessions of an API process that died without closing
 * them.
 */
export interface TerminalSessionRow {
  id: string;
  workspaceId: string;
  generation: number;
  backend: BackendKind;
}

/** Written before the backend opens the shell: a crash in between leaves a row, never a shell. */
export async function insertTerminalSession(
  db: Queryable,
  s: TerminalSessionRow,
  staleAfterMs: number,
): Promise<void> {
  await db.query(
    `INSERT INTO terminal_sessions (id, workspace_id, generation, backend, stale_after_ms)
     VALUES ($1, $2, $3, $4, $5)`,
    [s.id, s.workspaceId, s.generation, s.backend, staleAfterMs],
  );
}

export async function deleteTerminalSession(db: Queryable, id: string): Promise<void> {
  await db.query('DELETE FROM terminal_sessions WHERE id = $1', [id]);
}

/** One UPDATE for every session an API process holds: they are alive as long as it is. */
export async function touchTerminalSessions(db: Queryable, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const res = await db.query('UPDATE terminal_sessions SET last_seen = now() WHERE id = ANY($1::uuid[])', [
    [...ids],
  ]);
  return res.rowCount ?? 0;
}

/**
 * Claims up to `limit` sessions whose owner stopped refreshing them (each judged by its owner's own
 * threshold). A claim refreshes the row (a lease of one stale period): a concurrent reaper neither
 * sees it stale nor waits for it (SKIP LOCKED), so only one replica acts on a session; the claimer
 * deletes the row once the processes are gone, and a claimer that fails (or dies) leaves the row
 * to be claimed again when its lease runs out.
 */
export async function claimStaleTerminalSessions(db: Queryable, limit = 50): Promise<TerminalSessionRow[]> {
  const { rows } = await db.query<{
    id: string;
    workspace_id: string;
    generation: number;
    backend: BackendKind;
  }>(
    `UPDATE terminal_sessions SET last_seen = now()
      WHERE id IN (
        SELECT id FROM terminal_sessions
         WHERE last_seen < now() - make_interval(secs => stale_after_ms / 1000.0)
         ORDER BY last_seen
         LIMIT $1
         FOR UPDATE SKIP LOCKED)
        AND last_seen < now() - make_interval(secs => stale_after_ms / 1000.0)
      RETURNING id, workspace_id, generation, backend`,
    [limit],
  );
  return rows.map((r) => ({
    id: r.id,
    workspaceId: r.workspace_id,
    generation: r.generation,
    backend: r.backend,
  }));
}
