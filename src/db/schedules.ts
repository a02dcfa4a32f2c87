/**
 * Per-workspace schedules: the source of truth that the Temporal Schedules mirror
 * (src/schedules/mirror.ts). A row is only ever added to a workspace that is not being deleted, so
 * the delete path (finalizeDelete) sees every row it has to remove.
 *
 * How a delete and the mirror's writers stay apart (src/app/schedules.ts has the whole argument):
 * a delete holds the row's lock from before it removes the mirror until the row is gone
 * (deleteScheduleAnd), and every writer of a mirror reads the row again after its write landed
 * with a lock that waits for such a delete (rereadSchedule), so it sees the row gone and removes
 * what it wrote.
 */
import pg from 'pg';
import { inTransaction, type Queryable, type Transactable } from './queryable.js';
import { storable } from './storable.js';

export type ScheduleRunStatus = 'ok' | 'failed' | 'skipped';

export interface ScheduleRow {
  id: string;
  workspaceId: string;
  cron: string;
  timezone: string;
  prompt: string;
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
  lastRun: { at: Date; status: ScheduleRunStatus; error: string | null; durationMs: number | null } | null;
}

const COLUMNS = `id, workspace_id, cron, timezone, prompt, enabled, created_at, updated_at, last_run_status,
  last_run_at, last_run_error, last_run_ms`;

type Raw = Record<string, unknown>;

function toRow(r: Raw): ScheduleRow {
  return {
    id: r.id as string,
    workspaceId: r.workspace_id as string,
    cron: r.cron as string,
    timezone: r.timezone as string,
    prompt: r.prompt as string,
    enabled: r.enabled as boolean,
    createdAt: r.created_at as Date,
    updatedAt: r.updated_at as Date,
    lastRun:
      r.last_run_at && r.last_run_status
        ? {
            at: r.last_run_at as Date,
            status: r.last_run_status as ScheduleRunStatus,
            error: (r.last_run_error as string | null) ?? null,
            durationMs: (r.last_run_ms as number | null) ?? null,
          }
        : null,
  };
}

export interface NewSchedule {
  id: string;
  workspaceId: string;
  cron: string;
  timezone: string;
  prompt: string;
  enabled: boolean;
}

/**
 * Adds a schedule unless the workspace is being deleted (or is gone), or already has `max`
 * schedules. The workspace row is locked first (FOR NO KEY UPDATE, as the delete's status change
 * does), in its own statement: concurrent creates then count one after another, each seeing the
 * rows the others committed (a count in the locking statement would read that statement's older
 * snapshot), and a delete that began meanwhile either sees the row or refuses it. The lock leaves
 * foreign-key checks of other tables alone.
 */
export async function insertSchedule(
  pool: pg.Pool,
  s: NewSchedule,
  max: number,
): Promise<{ row: ScheduleRow } | { refused: 'workspace' | 'quota' }> {
  return inTransaction(pool, async (tx) => {
    const live = await tx.query(
      `SELECT 1 FROM workspaces WHERE id = $1 AND status NOT IN ('deleting', 'deleted') FOR NO KEY UPDATE`,
      [s.workspaceId],
    );
    if (live.rows.length === 0) return { refused: 'workspace' as const };
    const { rows } = await tx.query(
      `INSERT INTO schedules (id, workspace_id, cron, timezone, prompt, enabled)
       SELECT $1, $2, $3, $4, $5, $6 WHERE (SELECT count(*) FROM schedules WHERE workspace_id = $2) < $7
       RETURNING ${COLUMNS}`,
      [s.id, s.workspaceId, s.cron, s.timezone, s.prompt, s.enabled, max],
    );
    return rows[0] ? { row: toRow(rows[0] as Raw) } : { refused: 'quota' as const };
  });
}

/** SQLSTATE lock_not_available: a lock wait ran past its lock_timeout (boundLockWait). */
const LOCK_NOT_AVAILABLE = '55P03';

/** Whether a statement gave up on a row another transaction holds (boundLockWait, or NOWAIT). */
export function isLockTimeout(err: unknown): boolean {
  return err instanceof pg.DatabaseError && err.code === LOCK_NOT_AVAILABLE;
}

/**
 * Bounds this transaction's lock waits to `waitMs` (at least 1 ms: 0 would mean no bound), so a
 * request behind a holder stuck on Temporal still answers by its deadline.
 */
async function boundLockWait(tx: Queryable, waitMs: number | undefined): Promise<void> {
  if (waitMs === undefined) return;
  await tx.query(`SELECT set_config('lock_timeout', $1, true)`, [`${Math.max(1, Math.ceil(waitMs))}ms`]);
}

export async function getSchedule(
  db: Queryable,
  workspaceId: string,
  id: string,
): Promise<ScheduleRow | null> {
  const { rows } = await db.query(`SELECT ${COLUMNS} FROM schedules WHERE workspace_id = $1 AND id = $2`, [
    workspaceId,
    id,
  ]);
  return rows[0] ? toRow(rows[0] as Raw) : null;
}

/**
 * Reads a schedule again after a write of its mirror landed. FOR KEY SHARE waits for a delete that
 * holds the row (deleteScheduleAnd: FOR UPDATE) and then sees it gone, so a mirror put back after
 * that delete removed it is seen as one to remove. It does not wait for changes (updateSchedule
 * holds FOR NO KEY UPDATE, as any UPDATE of these columns does): the mirror's follow needs no more.
 * `waitMs` bounds the wait (an isLockTimeout error past it).
 */
export async function rereadSchedule(
  db: Transactable,
  workspaceId: string,
  id: string,
  waitMs?: number,
): Promise<ScheduleRow | null> {
  const read = async (q: Queryable, wait: '' | ' NOWAIT') => {
    const { rows } = await q.query(
      `SELECT ${COLUMNS} FROM schedules WHERE workspace_id = $1 AND id = $2 FOR KEY SHARE${wait}`,
      [workspaceId, id],
    );
    return rows[0] ? toRow(rows[0] as Raw) : null;
  };
  if (waitMs === undefined) return read(db, '');
  // One statement when no delete holds the row (nearly always); a bounded wait in a transaction
  // of its own when one does.
  try {
    return await read(db, ' NOWAIT');
  } catch (err) {
    if (!isLockTimeout(err)) throw err;
  }
  return inTransaction(db, async (tx) => {
    await boundLockWait(tx, waitMs);
    return read(tx, '');
  });
}

export async function listSchedules(db: Queryable, workspaceId: string): Promise<ScheduleRow[]> {
  const { rows } = await db.query(
    `SELECT ${COLUMNS} FROM schedules WHERE workspace_id = $1 ORDER BY created_at, id`,
    [workspaceId],
  );
  return rows.map((r) => toRow(r as Raw));
}

export interface ScheduleChange {
  cron?: string;
  timezone?: string;
  prompt?: string;
  enabled?: boolean;
}

/**
 * Applies a change; the row just before it and just after (null when the schedule is gone). Both
 * from one transaction, so `before` is exactly what this change replaced, even when other changes
 * came in between an earlier read and this one. Waits for a delete holding the row (then null);
 * `waitMs` bounds that wait (an isLockTimeout error past it, nothing changed).
 */
export async function updateSchedule(
  pool: Transactable,
  workspaceId: string,
  id: string,
  c: ScheduleChange,
  waitMs?: number,
): Promise<{ before: ScheduleRow; after: ScheduleRow } | null> {
  return inTransaction(pool, async (tx) => {
    await boundLockWait(tx, waitMs);
    // NO KEY UPDATE: changes wait for each other and for a delete, not rereads (rereadSchedule).
    const prior = await tx.query(
      `SELECT ${COLUMNS} FROM schedules WHERE workspace_id = $1 AND id = $2 FOR NO KEY UPDATE`,
      [workspaceId, id],
    );
    if (!prior.rows[0]) return null;
    const { rows } = await tx.query(
      `UPDATE schedules SET cron = coalesce($3, cron), timezone = coalesce($4, timezone),
         prompt = coalesce($5, prompt), enabled = coalesce($6, enabled), updated_at = now()
       WHERE workspace_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
      [workspaceId, id, c.cron ?? null, c.timezone ?? null, c.prompt ?? null, c.enabled ?? null],
    );
    return { before: toRow(prior.rows[0] as Raw), after: toRow(rows[0] as Raw) };
  });
}

/**
 * Puts a row back as it was before a change whose mirror could not be applied, only if the row is
 * still what that change wrote: a later change (which got its 200) is never undone. True when put
 * back. (`updatedAt` came back through a JS Date: milliseconds, truncated.)
 */
export async function restoreSchedule(
  db: Queryable,
  before: ScheduleRow,
  wrote: ScheduleRow,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE schedules SET cron = $3, timezone = $4, prompt = $5, enabled = $6, updated_at = $7
     WHERE workspace_id = $1 AND id = $2 AND date_trunc('milliseconds', updated_at) = $8
       AND cron = $9 AND timezone = $10 AND prompt = $11 AND enabled = $12`,
    [
      before.workspaceId,
      before.id,
      before.cron,
      before.timezone,
      before.prompt,
      before.enabled,
      before.updatedAt,
      wrote.updatedAt,
      wrote.cron,
      wrote.timezone,
      wrote.prompt,
      wrote.enabled,
    ],
  );
  return (rowCount ?? 0) > 0;
}

export async function deleteSchedule(db: Queryable, workspaceId: string, id: string): Promise<boolean> {
  const { rowCount } = await db.query(`DELETE FROM schedules WHERE workspace_id = $1 AND id = $2`, [
    workspaceId,
    id,
  ]);
  return (rowCount ?? 0) > 0;
}

/**
 * Deletes a schedule, its mirror first: the row is locked (FOR UPDATE) before `removeMirror` runs
 * and stays so until the row is gone, in one transaction. A writer that put the mirror back after
 * `removeMirror` reads the row again behind that lock (rereadSchedule), sees it gone and removes
 * it; a change waiting for the lock finds no row. When `removeMirror` throws, the row stays as it
 * was (rolled back). False (and `removeMirror` not called) when there is no such row. `waitMs`
 * bounds the wait for another holder of the row (an isLockTimeout error past it).
 */
export async function deleteScheduleAnd(
  pool: Transactable,
  workspaceId: string,
  id: string,
  removeMirror: () => Promise<void>,
  waitMs?: number,
): Promise<boolean> {
  return inTransaction(pool, async (tx) => {
    await boundLockWait(tx, waitMs);
    const held = await tx.query(`SELECT 1 FROM schedules WHERE workspace_id = $1 AND id = $2 FOR UPDATE`, [
      workspaceId,
      id,
    ]);
    if (held.rows.length === 0) return false;
    await removeMirror();
    await tx.query(`DELETE FROM schedules WHERE workspace_id = $1 AND id = $2`, [workspaceId, id]);
    return true;
  });
}

/** Ids of a workspace's schedules (the delete path removes each with deleteScheduleAnd). */
export async function scheduleIdsOf(db: Queryable, workspaceId: string): Promise<string[]> {
  const { rows } = await db.query(`SELECT id FROM schedules WHERE workspace_id = $1 ORDER BY id`, [
    workspaceId,
  ]);
  return rows.map((r) => (r as { id: string }).id);
}

/** Records the outcome of one run (the error already redacted). */
export async function recordScheduleRun(
  db: Queryable,
  run: {
    workspaceId: string;
    scheduleId: string;
    status: ScheduleRunStatus;
    error: string | null;
    durationMs: number | null;
  },
): Promise<void> {
  await db.query(
    `UPDATE schedules SET last_run_status = $3, last_run_at = now(), last_run_error = $4, last_run_ms = $5
     WHERE workspace_id = $1 AND id = $2`,
    [
      run.workspaceId,
      run.scheduleId,
      run.status,
      storable(run.error),
      run.durationMs === null ? null : Math.round(run.durationMs),
    ],
  );
}

/**
 * What a reconcile needs to know of schedule mirrors it found in Temporal: for each (workspace,
 * schedule) pair, whether this database knows the workspace at all, whether it is deleted, and
 * whether the schedule row exists.
 */
export async function scheduleLookup(
  db: Queryable,
  pairs: Array<{ workspaceId: string; scheduleId: string }>,
): Promise<Map<string, { workspace: 'live' | 'deleted' | 'unknown'; row: boolean }>> {
  const out = new Map<string, { workspace: 'live' | 'deleted' | 'unknown'; row: boolean }>();
  if (pairs.length === 0) return out;
  const wsIds = [...new Set(pairs.map((p) => p.workspaceId))];
  const ws = await db.query(`SELECT id, status FROM workspaces WHERE id = ANY($1::text[])`, [wsIds]);
  const status = new Map(ws.rows.map((r) => [(r as { id: string }).id, (r as { status: string }).status]));
  const rows = await db.query(`SELECT workspace_id, id FROM schedules WHERE workspace_id = ANY($1::text[])`, [
    wsIds,
  ]);
  const known = new Set(
    rows.rows.map((r) => `${(r as { workspace_id: string }).workspace_id}/${(r as { id: string }).id}`),
  );
  for (const p of pairs) {
    const s = status.get(p.workspaceId);
    out.set(`${p.workspaceId}/${p.scheduleId}`, {
      workspace: s === undefined ? 'unknown' : s === 'deleted' || s === 'deleting' ? 'deleted' : 'live',
      row: known.has(`${p.workspaceId}/${p.scheduleId}`),
    });
  }
  return out;
}
