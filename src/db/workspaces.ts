import { hashConfig, type WorkspaceConfig } from '../domain/config-hash.js';
import type { WorkspaceStatus } from '../workflows/messages.js';
import type { Queryable } from './queryable.js';
import { storable } from './storable.js';
import { revokeSupersededTokens } from './tokens.js';

export interface WorkspaceRow {
  id: string;
  orgId: string;
  name: string;
  backend: 'docker' | 'ec2';
  template: string | null;
  runtime: string;
  config: WorkspaceConfig;
  configHash: string;
  configVersion: number;
  generation: number;
  status: WorkspaceStatus;
  phase: string | null;
  instanceId: string | null;
  endpoint: string | null;
  lastHeartbeatAt: Date | null;
  runtimeState: string | null;
  error: string | null;
  workflowId: string;
  bootRuntime: string | null;
  bootConfig: WorkspaceConfig | null;
  bootConfigHash: string | null;
  registeredGeneration: number | null;
  registeredConfigHash: string | null;
  restartCount: number;
  lastRestartReason: string | null;
  /** The workspace's own restart policy; null: the template's, else the server default. */
  restartPolicy: 'always' | 'never' | null;
  createdAt: Date;
  updatedAt: Date;
}

const COLUMNS = `id, org_id, name, backend, template, runtime, config, config_hash, config_version, generation,
  status, phase, instance_id, endpoint, last_heartbeat_at, runtime_state, error, workflow_id, boot_runtime,
  boot_config, boot_config_hash, registered_generation, registered_config_hash, restart_count, last_restart_reason, restart_policy, created_at, updated_at`;

type Raw = Record<string, unknown>;

function toRow(r: Raw): WorkspaceRow {
  return {
    id: r.id as string,
    orgId: r.org_id as string,
    name: r.name as string,
    backend: r.backend as WorkspaceRow['backend'],
    template: (r.template as string | null) ?? null,
    runtime: r.runtime as string,
    config: r.config as WorkspaceConfig,
    configHash: r.config_hash as string,
    configVersion: r.config_version as number,
    generation: r.generation as number,
    status: r.status as WorkspaceStatus,
    phase: (r.phase as string | null) ?? null,
    instanceId: (r.instance_id as string | null) ?? null,
    endpoint: (r.endpoint as string | null) ?? null,
    lastHeartbeatAt: (r.last_heartbeat_at as Date | null) ?? null,
    runtimeState: (r.runtime_state as string | null) ?? null,
    error: (r.error as string | null) ?? null,
    workflowId: r.workflow_id as string,
    bootRuntime: (r.boot_runtime as string | null) ?? null,
    bootConfig: (r.boot_config as WorkspaceConfig | null) ?? null,
    bootConfigHash: (r.boot_config_hash as string | null) ?? null,
    registeredGeneration: (r.registered_generation as number | null) ?? null,
    registeredConfigHash: (r.registered_config_hash as string | null) ?? null,
    restartCount: (r.restart_count as number | null) ?? 0,
    lastRestartReason: (r.last_restart_reason as string | null) ?? null,
    restartPolicy: (r.restart_policy as WorkspaceRow['restartPolicy']) ?? null,
    createdAt: r.created_at as Date,
    updatedAt: r.updated_at as Date,
  };
}

export interface NewWorkspace {
  id: string;
  orgId: string;
  name: string;
  backend: 'docker' | 'ec2';
  template: string | null;
  runtime: string;
  config: WorkspaceConfig;
  workflowId: string;
  parentId: string | null;
  budgetLimitCents: number | null;
  /** The create body's `restartPolicy` (null or absent: the template's, else the default). */
  restartPolicy?: 'always' | 'never' | null;
}

export async function insertWorkspace(db: Queryable, w: NewWorkspace): Promise<WorkspaceRow> {
  const { rows } = await db.query(
    `INSERT INTO workspaces (id, org_id, name, backend, template, runtime, config, config_hash, status, workflow_id,
       parent_id, budget_limit_cents, restart_policy)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'provisioning', $9, $10, $11, $12) RETURNING ${COLUMNS}`,
    [
      w.id,
      w.orgId,
      w.name,
      w.backend,
      w.template,
      w.runtime,
      w.config,
      hashConfig(w.runtime, w.config),
      w.workflowId,
      w.parentId,
      w.budgetLimitCents,
      w.restartPolicy ?? null,
    ],
  );
  return toRow(rows[0] as Raw);
}

export async function deleteWorkspaceRow(db: Queryable, id: string): Promise<void> {
  await db.query('DELETE FROM workspaces WHERE id = $1', [id]);
}

/** `orgId` null = admin, who sees every org's workspaces. */
export async function getWorkspace(
  db: Queryable,
  id: string,
  orgId: string | null = null,
): Promise<WorkspaceRow | null> {
  const { rows } = await db.query(
    `SELECT ${COLUMNS} FROM workspaces WHERE id = $1 AND ($2::text IS NULL OR org_id = $2)`,
    [id, orgId],
  );
  return rows[0] ? toRow(rows[0] as Raw) : null;
}

export interface ListFilter {
  orgId: string | null;
  status?: string;
  backend?: string;
  limit: number;
  /** Keyset cursor: the last id of the previous page (newest-first by created_at, id). */
  afterId?: string;
}

export async function listWorkspaces(db: Queryable, f: ListFilter): Promise<WorkspaceRow[]> {
  const { rows } = await db.query(
    `SELECT ${COLUMNS} FROM workspaces
     WHERE ($1::text IS NULL OR org_id = $1) AND ($2::text IS NULL OR status = $2)
       AND ($3::text IS NULL OR backend = $3)
       AND ($4::text IS NULL OR (created_at, id) <
            -- The cursor's workspace in the caller's scope only: another org's id is as unknown.
            (SELECT created_at, id FROM workspaces WHERE id = $4 AND ($1::text IS NULL OR org_id = $1)))
     ORDER BY created_at DESC, id DESC LIMIT $5`,
    [f.orgId, f.status ?? null, f.backend ?? null, f.afterId ?? null, f.limit],
  );
  return rows.map((r) => toRow(r as Raw));
}

/** Saves desired config (inside the configure Update, before any restart is accepted). */
export async function saveConfig(
  db: Queryable,
  id: string,
  patch: { runtime?: string; config?: WorkspaceConfig },
): Promise<{ configHash: string; configVersion: number; runtime: string }> {
  const current = await getWorkspace(db, id);
  if (!current) throw new Error(`workspace ${id} not found`);
  const runtime = patch.runtime ?? current.runtime;
  const config = patch.config ?? current.config;
  const configHash = hashConfig(runtime, config);
  // A save that changes nothing (the same runtime and config again: a client that re-applies its
  // settings) is not a new version: a boot in flight runs the last saved config still, and must not
  // be superseded by a restart to the very same config.
  const { rows } = await db.query<{ config_version: number }>(
    `UPDATE workspaces SET runtime = $2, config = $3, config_hash = $4,
       config_version = config_version + (config_hash IS DISTINCT FROM $4)::int,
       updated_at = CASE WHEN config_hash IS DISTINCT FROM $4 THEN now() ELSE updated_at END
     WHERE id = $1 RETURNING config_version`,
    [id, runtime, config, configHash],
  );
  return { configHash, configVersion: rows[0]!.config_version, runtime };
}

/** The workspace's own restart policy; null: the template's, else the server default. */
export async function saveRestartPolicy(
  db: Queryable,
  id: string,
  override: 'always' | 'never' | null,
): Promise<void> {
  await db.query('UPDATE workspaces SET restart_policy = $2, updated_at = now() WHERE id = $1', [
    id,
    override,
  ]);
}

/**
 * Fixes what a generation boots with: the saved config at this moment, read from the DB (never from
 * a running resource). Idempotent: a retry for the same generation returns the same snapshot.
 */
export async function prepareGeneration(
  db: Queryable,
  id: string,
  generation: number,
): Promise<{ runtime: string; configHash: string; configVersion: number }> {
  const { rows } = await db.query<{ boot_runtime: string; boot_config_hash: string; config_version: number }>(
    `UPDATE workspaces SET generation = $2, boot_runtime = runtime, boot_config = config,
       boot_config_hash = config_hash, registered_generation = NULL, registered_config_hash = NULL,
       instance_id = NULL, endpoint = NULL, updated_at = now()
     WHERE id = $1 AND generation < $2
     RETURNING boot_runtime, boot_config_hash, config_version`,
    [id, generation],
  );
  // Older generations' tokens die with them (idempotent: a retried prepare revokes nothing new).
  await revokeSupersededTokens(db, id, generation);
  if (rows[0]) {
    return {
      runtime: rows[0].boot_runtime,
      configHash: rows[0].boot_config_hash,
      configVersion: rows[0].config_version,
    };
  }
  const w = await getWorkspace(db, id);
  if (!w || w.generation !== generation || !w.bootRuntime || !w.bootConfigHash) {
    throw new Error(`workspace ${id} cannot prepare generation ${generation}`);
  }
  return { runtime: w.bootRuntime, configHash: w.bootConfigHash, configVersion: w.configVersion };
}

export async function recordResource(
  db: Queryable,
  id: string,
  generation: number,
  r: { instanceId: string | null; endpoint: string | null },
): Promise<void> {
  await db.query(
    `UPDATE workspaces SET instance_id = $3, endpoint = $4, updated_at = now() WHERE id = $1 AND generation = $2`,
    [id, generation, r.instanceId, r.endpoint],
  );
}

/** The generation starts again (a stop and start of a failed workspace): it is live once more. */
export async function undiscardGeneration(db: Queryable, id: string, generation: number): Promise<void> {
  await db.query(
    'UPDATE workspaces SET discarded_generation = NULL WHERE id = $1 AND discarded_generation = $2',
    [id, generation],
  );
}

/** The generation's resource stopped: it has no address until it starts again. */
export async function forgetEndpoint(db: Queryable, id: string, generation: number): Promise<void> {
  await db.query(
    `UPDATE workspaces SET endpoint = NULL, updated_at = now() WHERE id = $1 AND generation = $2`,
    [id, generation],
  );
}

export async function clearResource(db: Queryable, id: string): Promise<void> {
  await db.query(
    `UPDATE workspaces SET instance_id = NULL, endpoint = NULL, updated_at = now() WHERE id = $1`,
    [id],
  );
}

export interface Transition {
  workspaceId: string;
  generation: number;
  status: WorkspaceStatus;
  phase?: string | null;
  message?: string | null;
  /** Set on `failed`, and on `stopping` while a refused stop is tried again; cleared otherwise. */
  error?: string | null;
  /** The restart policy's counters, when this transition changes them (else left as they are). */
  restart?: { count: number; lastReason: string | null };
  /** A generation the entity gave up but could not remove (the orphan sweep removes it). */
  discardedGeneration?: number;
  /**
   * The entity's step that makes it (run and number): written once, however many times the step
   * runs (a timed-out workflow task's local activity, and the retry's). Absent: always written.
   */
  step?: string;
}

/** Records a transition; false when its step was written already (nothing changed then). */
export async function recordTransition(db: Queryable, t: Transition): Promise<boolean> {
  const { rows } = await db.query<{ written: boolean }>(
    `WITH t AS (INSERT INTO workspace_transitions (workspace_id, status, phase, message, generation, step)
         VALUES ($1, $2, $3, $4, $6, $10) ON CONFLICT (workspace_id, step) WHERE step IS NOT NULL DO NOTHING
         RETURNING id),
       u AS (UPDATE workspaces SET status = $2, phase = $3, error = $5, updated_at = now(),
         restart_count = coalesce($7, restart_count),
         last_restart_reason = CASE WHEN $7::int IS NULL THEN last_restart_reason ELSE $8 END,
         discarded_generation = coalesce($9, discarded_generation)
       WHERE id = $1 AND EXISTS (SELECT 1 FROM t)),
       a AS (INSERT INTO activity (workspace_id, type, status, summary)
         SELECT $1, 'lifecycle', $2, $2 || coalesce(' (' || $3 || ')', '') WHERE EXISTS (SELECT 1 FROM t))
     SELECT EXISTS (SELECT 1 FROM t) AS written`,
    // Messages quote backend errors: a NUL in one must not lose the transition.
    [
      t.workspaceId,
      t.status,
      t.phase ?? null,
      storable(t.message ?? null),
      storable(t.error ?? null),
      t.generation,
      t.restart?.count ?? null,
      t.restart?.lastReason ?? null,
      t.discardedGeneration ?? null,
      t.step ?? null,
    ],
  );
  return rows[0]?.written ?? false;
}

/**
 * Records the agent's registration; null when the generation or config hash is not current. `first`:
 * no registration of this generation came before (one caller sees it, however many race).
 */
export async function recordRegistration(
  db: Queryable,
  id: string,
  generation: number,
  configHash: string,
  agentCard: unknown,
): Promise<{ first: boolean } | null> {
  const { rows } = await db.query<{ previous: number | null }>(
    `UPDATE workspaces w SET registered_generation = $2, registered_config_hash = $3, agent_card = $4,
       last_heartbeat_at = now(), updated_at = now()
     FROM (SELECT registered_generation AS previous FROM workspaces WHERE id = $1 FOR UPDATE) p
     WHERE w.id = $1 AND w.generation = $2 AND w.boot_config_hash = $3
     RETURNING p.previous`,
    [id, generation, configHash, JSON.stringify(agentCard ?? null)],
  );
  const row = rows[0];
  return row ? { first: row.previous !== generation } : null;
}

/** Writes the heartbeat; returns the previous runtime state so the caller can signal on change. */
export async function recordHeartbeat(
  db: Queryable,
  id: string,
  runtimeState: string,
): Promise<{ previous: string | null }> {
  const { rows } = await db.query<{ previous: string | null }>(
    `UPDATE workspaces w SET last_heartbeat_at = now(), runtime_state = $2
     FROM (SELECT runtime_state AS previous FROM workspaces WHERE id = $1 FOR UPDATE) p
     WHERE w.id = $1 RETURNING p.previous`,
    [id, runtimeState],
  );
  return { previous: rows[0]?.previous ?? null };
}

/**
 * Records where the current generation answers, as the backend re-read it. Writes only when it
 * changed (heartbeats call this), and never for a generation that is no longer current.
 */
export async function refreshEndpoint(
  db: Queryable,
  id: string,
  generation: number,
  endpoint: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE workspaces SET endpoint = $3, updated_at = now()
     WHERE id = $1 AND generation = $2 AND endpoint IS DISTINCT FROM $3`,
    [id, generation, endpoint],
  );
  return (rowCount ?? 0) > 0;
}
