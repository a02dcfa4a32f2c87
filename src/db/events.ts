import type { Queryable } from './queryable.js';
import { storable } from './storable.js';

export interface BootEvent {
  generation: number;
  phase: string;
  message: string | null;
  ts: Date;
}

export async function insertBootEvent(
  db: Queryable,
  workspaceId: string,
  e: { generation: number; phase: string; message?: string | null; ts: Date },
): Promise<void> {
  await db.query(
    `INSERT INTO boot_events (workspace_id, generation, phase, message, ts) VALUES ($1, $2, $3, $4, $5)`,
    [workspaceId, e.generation, e.phase, e.message ?? null, e.ts],
  );
}

/** The most recent `limit` boot events, oldest first. */
export async function listBootEvents(db: Queryable, workspaceId: string, limit = 1000): Promise<BootEvent[]> {
  const { rows } = await db.query<{ generation: number; phase: string; message: string | null; ts: Date }>(
    `SELECT generation, phase, message, ts FROM (
       SELECT id, generation, phase, message, ts FROM boot_events WHERE workspace_id = $1
       ORDER BY id DESC LIMIT $2) recent
     ORDER BY id`,
    [workspaceId, limit],
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

export async function saveConsoleLog(
  db: Queryable,
  workspaceId: string,
  generation: number,
  text: string,
): Promise<void> {
  await db.query(
    `INSERT INTO console_logs (workspace_id, generation, text) VALUES ($1, $2, $3)
     ON CONFLICT (workspace_id, generation) DO UPDATE SET text = EXCLUDED.text, captured_at = now()`,
    // A console may print anything, NUL included: the kept copy must not be lost for it.
    [workspaceId, generation, storable(text)],
  );
}

/** The newest kept console output: its last `maxChars` characters. */
export async function latestConsoleLog(
  db: Queryable,
  workspaceId: string,
  maxChars = 256 * 1024,
): Promise<string | null> {
  const { rows } = await db.query<{ text: string }>(
    `SELECT right(text, $2) AS text FROM console_logs WHERE workspace_id = $1 ORDER BY generation DESC LIMIT 1`,
    [workspaceId, maxChars],
  );
  return rows[0]?.text ?? null;
}
