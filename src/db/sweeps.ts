import type { BackendKind } from '../backends/backend.js';
import type { CheckedWorkspace } from '../domain/health.js';
import { liveOrgKey, type KnownWorkspace } from '../domain/orphans.js';
import type { Queryable } from './queryable.js';

/**
 * What the orphan sweep needs of the DB, in one round trip however many resources were listed:
 * the listed workspaces' backend, generation and status, which of the listed orgs exist (deleted
 * orgs included: their leftovers are still ours to remove), and which orgs of the listed networks
 * have a workspace short of `deleted` on a backend (`liveOrgs`, as `liveOrgKey`s).
 */
export async function sweepLookup(
  db: Queryable,
  workspaceIds: readonly string[],
  orgIds: readonly string[],
  networkOrgIds: readonly string[] = [],
): Promise<{ workspaces: Map<string, KnownWorkspace>; knownOrgs: Set<string>; liveOrgs: Set<string> }> {
  const { rows } = await db.query<{
    kind: 'w' | 'o' | 'l';
    id: string;
    backend: BackendKind | null;
    generation: number | null;
    status: string | null;
    discarded_generation: number | null;
  }>(
    `SELECT 'w' AS kind, id, backend, generation, status, discarded_generation FROM workspaces
       WHERE id = ANY($1::text[])
     UNION ALL
     SELECT 'o' AS kind, id, NULL, NULL, NULL, NULL FROM orgs WHERE id = ANY($2::text[])
     UNION ALL
     SELECT DISTINCT 'l' AS kind, org_id, backend, NULL::integer, NULL, NULL::integer FROM workspaces
       WHERE org_id = ANY($3::text[]) AND status <> 'deleted'`,
    [[...new Set(workspaceIds)], [...new Set(orgIds)], [...new Set(networkOrgIds)]],
  );
  const workspaces = new Map<string, KnownWorkspace>();
  const knownOrgs = new Set<string>();
  const liveOrgs = new Set<string>();
  for (const r of rows) {
    if (r.kind === 'o') knownOrgs.add(r.id);
    else if (r.kind === 'l') liveOrgs.add(liveOrgKey(r.backend!, r.id));
    else {
      workspaces.set(r.id, {
        backend: r.backend!,
        generation: r.generation!,
        status: r.status!,
        discardedGeneration: r.discarded_generation,
      });
    }
  }
  return { workspaces, knownOrgs, liveOrgs };
}

/** A workspace row whose create may never have started its entity (see lostCreates). */
export interface LostCreate {
  id: string;
  orgId: string;
  orgName: string;
  backend: BackendKind;
  name: string;
  template: string | null;
  runtime: string;
  restartPolicy: 'always' | 'never' | null;
}

/**
 * Rows a create committed more than `olderThanMs` ago (by the database's clock) whose entity never
 * took a step: still `provisioning` at generation 0, of an org not deleted (the org cascade deletes
 * those), oldest first, at most `limit`. Whether an entity exists is Temporal's to say: the caller
 * starts one as the create does, which Temporal refuses when any ran.
 */
export async function lostCreates(db: Queryable, olderThanMs: number, limit: number): Promise<LostCreate[]> {
  const { rows } = await db.query<{
    id: string;
    org_id: string;
    org_name: string;
    backend: BackendKind;
    name: string;
    template: string | null;
    runtime: string;
    restart_policy: 'always' | 'never' | null;
  }>(
    `SELECT w.id, w.org_id, o.name AS org_name, w.backend, w.name, w.template, w.runtime, w.restart_policy
       FROM workspaces w JOIN orgs o ON o.id = w.org_id AND o.deleted_at IS NULL
      WHERE w.status = 'provisioning' AND w.generation = 0
        AND w.created_at < now() - make_interval(secs => $1::double precision / 1000)
      ORDER BY w.created_at LIMIT $2`,
    [olderThanMs, limit],
  );
  return rows.map((r) => ({
    id: r.id,
    orgId: r.org_id,
    orgName: r.org_name,
    backend: r.backend,
    name: r.name,
    template: r.template,
    runtime: r.runtime,
    restartPolicy: r.restart_policy,
  }));
}

/** A deleted org with workspaces short of `deleted` (see deletedOrgsWithWorkspaces). */
export interface DeletedOrgLeft {
  orgId: string;
  /** How many of its workspaces are not `deleted` yet. */
  workspaces: number;
}

/**
 * Orgs marked deleted more than `olderThanMs` ago (by the database's clock) that still have a
 * workspace short of `deleted`, at most `limit`: their cascade never started (an API killed between
 * the commit and the start, Temporal down then), ended early (a worker before it waited for every
 * workspace, or before a failed sweep stopped failing it), or is still running (Temporal says
 * which). Picked at random when there are more: cascades still running (hours, for a stuck delete)
 * never keep the others out of every run.
 */
export async function deletedOrgsWithWorkspaces(
  db: Queryable,
  olderThanMs: number,
  limit: number,
): Promise<DeletedOrgLeft[]> {
  const { rows } = await db.query<{ id: string; workspaces: string }>(
    `SELECT o.id, count(*) AS workspaces
       FROM orgs o JOIN workspaces w ON w.org_id = o.id AND w.status <> 'deleted'
      WHERE o.deleted_at < now() - make_interval(secs => $1::double precision / 1000)
      GROUP BY o.id ORDER BY random() LIMIT $2`,
    [olderThanMs, limit],
  );
  return rows.map((r) => ({ orgId: r.id, workspaces: Number(r.workspaces) }));
}

/** The org's workspaces that are not `deleted` yet (the org cascade waits for none to be left). */
export async function liveWorkspacesOfOrg(db: Queryable, orgId: string): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM workspaces WHERE org_id = $1 AND status <> 'deleted' ORDER BY id`,
    [orgId],
  );
  return rows.map((r) => r.id);
}

/**
 * The health sweep's one query: every workspace that should be running (a stop moves the status
 * to stopping/stopped, so these statuses mean desired running), with its last heartbeat.
 */
export async function workspacesToCheck(db: Queryable): Promise<CheckedWorkspace[]> {
  const { rows } = await db.query<{
    id: string;
    backend: BackendKind;
    generation: number;
    status: CheckedWorkspace['status'];
    last_heartbeat_at: Date | null;
    runtime_state: string | null;
    status_since: Date | null;
  }>(
    // A verdict's time (its newest transition, by the index on (workspace_id, id)): only a heartbeat
    // after it is news. Online ones need none (a few rows are degraded or offline at a time).
    `SELECT w.id, w.backend, w.generation, w.status, w.last_heartbeat_at, w.runtime_state,
            CASE WHEN w.status <> 'online' THEN
              (SELECT t.ts FROM workspace_transitions t WHERE t.workspace_id = w.id ORDER BY t.id DESC LIMIT 1)
            END AS status_since
       FROM workspaces w
      WHERE w.status IN ('online', 'degraded', 'offline') ORDER BY w.id`,
  );
  return rows.map((r) => ({
    id: r.id,
    backend: r.backend,
    generation: r.generation,
    status: r.status,
    lastHeartbeatAtMs: r.last_heartbeat_at?.getTime() ?? null,
    runtimeState: r.runtime_state,
    statusSinceMs: r.status_since?.getTime() ?? null,
  }));
}

/** One finished sweep run, as the worker counts it for /metrics. */
export interface SweepRun {
  sweep: 'health' | 'orphans' | 'budget';
  /** ok: all done; partial: some entity, removal or listing failed; failed: the run threw. */
  outcome: 'ok' | 'partial' | 'failed';
  durationMs: number;
  /** How many of each action the run took (signalled, removed, terminated). */
  actions: Record<string, number>;
}

/**
 * Adds one run to the running totals in a single statement: runs by outcome, actions by kind, and
 * the duration of the latest run (`last_duration_seconds`, replaced, not added).
 */
export async function recordSweepRun(db: Queryable, run: SweepRun): Promise<void> {
  const metrics = ['runs', 'last_duration_seconds', ...Object.keys(run.actions).map(() => 'actions')];
  const labels = [run.outcome, '', ...Object.keys(run.actions)];
  const values = [1, run.durationMs / 1000, ...Object.values(run.actions)];
  await db.query(
    `INSERT INTO sweep_stats (sweep, metric, label, value)
     SELECT $1, m, l, v FROM unnest($2::text[], $3::text[], $4::float8[]) AS t(m, l, v)
     ON CONFLICT (sweep, metric, label) DO UPDATE SET
       value = CASE WHEN EXCLUDED.metric = 'last_duration_seconds' THEN EXCLUDED.value
                    ELSE sweep_stats.value + EXCLUDED.value END,
       updated_at = now()`,
    [run.sweep, metrics, labels, values],
  );
}

export interface SweepStat {
  sweep: string;
  metric: 'runs' | 'actions' | 'last_duration_seconds';
  label: string;
  value: number;
}

/** The running totals, for /metrics. */
export async function sweepStats(db: Queryable): Promise<SweepStat[]> {
  const { rows } = await db.query<SweepStat>(
    `SELECT sweep, metric, label, value FROM sweep_stats ORDER BY sweep, metric, label`,
  );
  return rows;
}
