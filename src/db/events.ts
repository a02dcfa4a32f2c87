import type { Queryable } from './queryable.js';
import { storable } from './storable.js';

export interface BootEvent {
  generation: number;
  phase: string;
  message: string | null;
  ts: Date;
}

/**
 * Boot events one generation may store: a boot reports a handful (a reboot of the same generation
 * a handful more); an agent posting for ever would fill the database every tenant shares.
 */
export const BOOT_EVENTS_PER_GENERATION_MAX = 200;

/**
 * Stores a boot event and shows its phase on the workspace, unless its generation already holds
 * BOOT_EVENTS_PER_GENERATION_MAX: false then, and nothing is written. An event of a workspace
 * stopping, stopped, failed or being deleted is stored (the boot log shows it) but leaves the
 * phase its transition set: a VM stopped while its agent booted (EC2's stop takes seconds) posts
 * late, and `stopped` must not read as booting. One statement (the event and the phase of its
 * current generation): the agent's boot posts one per phase, and each waited for two round trips.
 */
export async function recordBootEvent(
  db: Queryable,
  workspaceId: string,
  e: { generation: number; phase: string; message?: string | null; ts: Date },
): Promise<boolean> {
  const { rows } = await db.query<{ stored: number }>(
    `WITH room AS (
       SELECT count(*) < $6 AS ok FROM boot_events WHERE workspace_id = $1 AND generation = $2),
     u AS (UPDATE workspaces SET phase = $3, updated_at = now()
            WHERE id = $1 AND generation = $2 AND (SELECT ok FROM room)
              AND status NOT IN ('stopping', 'stopped', 'failed', 'deleting', 'deleted')),
     i AS (INSERT INTO boot_events (workspace_id, generation, phase, message, ts)
           SELECT $1, $2, $3, $4, $5 WHERE (SELECT ok FROM room) RETURNING 1)
     SELECT count(*)::int AS stored FROM i`,
    [workspaceId, e.generation, e.phase, e.message ?? null, e.ts, BOOT_EVENTS_PER_GENERATION_MAX],
  );
  return (rows[0]?.stored ?? 0) > 0;
}

/** The most recent `limit` boot events (of one generation, when given), oldest first. */
export async function listBootEvents(
  db: Queryable,
  workspaceId: string,
  limit = 1000,
  generation?: number,
): Promise<BootEvent[]> {
  const { rows } = await db.query<{ generation: number; phase: string; message: string | null; ts: Date }>(
    `SELECT generation, phase, message, ts FROM (
       SELECT id, generation, phase, message, ts FROM boot_events
       WHERE workspace_id = $1 AND ($3::integer IS NULL OR generation = $3)
       ORDER BY id DESC LIMIT $2) recent
     ORDER BY id`,
    [workspaceId, limit, generation ?? null],
  );
  return rows;
}

export interface TransitionEvent {
  id: string;
  status: string;
  phase: string | null;
  message: string | null;
  generation: number;
  ts: Date;
}

export async function listTransitions(
  db: Queryable,
  workspaceId: string,
  afterId = '0',
): Promise<TransitionEvent[]> {
  const { rows } = await db.query<TransitionEvent>(
    `SELECT id::text AS id, status, phase, message, generation, ts FROM workspace_transitions
     WHERE workspace_id = $1 AND workspace_transitions.id > $2::bigint ORDER BY workspace_transitions.id LIMIT 500`,
    [workspaceId, afterId],
  );
  return rows;
}

/**
 * Kept consoles per workspace: the newest generations'. A copy is up to 256 KB and a restart loop
 * that fails each boot keeps one a generation, faster than HISTORY_RETENTION_DAYS removes them.
 */
export const CONSOLE_LOGS_KEPT_PER_WORKSPACE = 20;

/**
 * Keeps a generation's console output (`truncated`: older output was already dropped), and drops
 * the workspace's copies older than its newest CONSOLE_LOGS_KEPT_PER_WORKSPACE.
 */
export async function saveConsoleLog(
  db: Queryable,
  workspaceId: string,
  generation: number,
  text: string,
  truncated = false,
): Promise<void> {
  await db.query(
    `INSERT INTO console_logs (workspace_id, generation, text, truncated) VALUES ($1, $2, $3, $4)
     ON CONFLICT (workspace_id, generation)
     DO UPDATE SET text = EXCLUDED.text, truncated = EXCLUDED.truncated, captured_at = now()`,
    // A console may print anything, NUL included: the kept copy must not be lost for it.
    [workspaceId, generation, storable(text), truncated],
  );
  await db.query(
    `DELETE FROM console_logs WHERE workspace_id = $1 AND generation < (
       SELECT generation FROM console_logs WHERE workspace_id = $1
       ORDER BY generation DESC OFFSET $2 - 1 LIMIT 1)`,
    [workspaceId, CONSOLE_LOGS_KEPT_PER_WORKSPACE],
  );
}

export interface KeptConsole {
  /** The last `maxChars` characters of the kept copy. */
  text: string;
  /** Output was dropped when it was kept, or the copy is longer than `maxChars`. */
  truncated: boolean;
}

/** The console output kept for one generation (null when none was kept). */
export async function keptConsoleLog(
  db: Queryable,
  workspaceId: string,
  generation: number,
  maxChars = 256 * 1024,
): Promise<KeptConsole | null> {
  const { rows } = await db.query<KeptConsole>(
    `SELECT right(text, $3) AS text, truncated OR length(text) > $3 AS truncated
     FROM console_logs WHERE workspace_id = $1 AND generation = $2`,
    [workspaceId, generation, maxChars],
  );
  return rows[0] ?? null;
}
