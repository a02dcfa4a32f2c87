/**
 * The metrics the worker observes (workflow outcomes, provision durations), kept as running totals
 * in metric_totals so that any API process can serve them at /metrics (like sweep_stats).
 */
import { BACKEND_KINDS, type BackendKind } from '../backends/backend.js';
import { phaseDurations } from '../api/boot-phases.js';
import type { Queryable } from './queryable.js';

export type Labels = Record<string, string>;

/** One row of metric_totals: a counter value (series ''), or a histogram bucket, sum or count. */
export interface MetricTotal {
  name: string;
  labels: Labels;
  series: string;
  value: number;
}

export const PROVISION_METRIC = 'wo_provision_duration_seconds';
/** Seconds: a docker boot takes a few, an EC2 one a minute or more; the boot deadline is 180 s. */
export const PROVISION_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 180, 300, 600] as const;
export const OUTCOME_METRIC = 'wo_workflow_outcomes_total';

/** A histogram observation as the rows it adds to: every bucket it falls in, +Inf, sum, count. */
export function histogramRows(
  name: string,
  buckets: readonly number[],
  labels: Labels,
  value: number,
): MetricTotal[] {
  const rows = buckets.filter((b) => value <= b).map((b) => ({ name, labels, series: String(b), value: 1 }));
  rows.push(
    { name, labels, series: '+Inf', value: 1 },
    { name, labels, series: 'sum', value },
    { name, labels, series: 'count', value: 1 },
  );
  return rows;
}

/** Rows of the same series summed (one statement may not update a row twice). */
export function merged(rows: readonly MetricTotal[]): MetricTotal[] {
  const out = new Map<string, MetricTotal>();
  for (const r of rows) {
    const key = JSON.stringify([r.name, Object.entries(r.labels).sort(), r.series]);
    const seen = out.get(key);
    if (seen) seen.value += r.value;
    else out.set(key, { ...r });
  }
  return [...out.values()];
}

/** The rows as the statement's four array parameters ($1..$4: name, labels, series, value). */
const ADD_ROWS = `INSERT INTO metric_totals (name, labels, series, value)
  SELECT n, l::jsonb, s, v FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[]) AS t(n, l, s, v)`;
const SUM_ON_CONFLICT = `ON CONFLICT (name, labels, series) DO UPDATE SET
  value = metric_totals.value + EXCLUDED.value, updated_at = now()`;
const rowParams = (m: readonly MetricTotal[]) => [
  m.map((r) => r.name),
  m.map((r) => JSON.stringify(r.labels)),
  m.map((r) => r.series),
  m.map((r) => r.value),
];

/** Adds the rows to the running totals, in one statement. */
export async function addMetricTotals(db: Queryable, rows: readonly MetricTotal[]): Promise<void> {
  const m = merged(rows);
  if (m.length > 0) await db.query(`${ADD_ROWS} ${SUM_ON_CONFLICT}`, rowParams(m));
}

/** A workflow execution ended (or continued as new): counted once per outcome. */
export async function recordWorkflowOutcome(db: Queryable, workflow: string, outcome: string): Promise<void> {
  await addMetricTotals(db, [{ name: OUTCOME_METRIC, labels: { workflow, outcome }, series: '', value: 1 }]);
}

/** Every running total, for /metrics. */
export async function metricTotals(db: Queryable): Promise<MetricTotal[]> {
  const { rows } = await db.query<MetricTotal>(
    `SELECT name, labels, series, value FROM metric_totals ORDER BY name, labels::text, series`,
  );
  return rows;
}

/** Live workspaces by status and backend, for the `wo_workspaces` gauge. */
export async function workspaceCounts(
  db: Queryable,
): Promise<{ status: string; backend: BackendKind; count: number }[]> {
  const { rows } = await db.query<{ status: string; backend: BackendKind; count: number }>(
    `SELECT status, backend, count(*)::integer AS count FROM workspaces
     WHERE status <> 'deleted' GROUP BY status, backend ORDER BY status, backend`,
  );
  return rows.filter((r) => (BACKEND_KINDS as readonly string[]).includes(r.backend));
}

/**
 * The provision of one generation, observed once when it first comes online: `total` (its first
 * transition to now), `resource` (its first transition to the agent's first boot event: creating
 * and starting the container or instance) and each boot phase the agent reported, timed like the
 * boot log's durationMs (until the next event). Only `phases` are labels (the agent's phase text is
 * its own: an unknown one is not a label). False when this generation was already observed.
 */
export async function recordProvision(
  db: Queryable,
  workspaceId: string,
  generation: number,
  phases: readonly string[],
): Promise<boolean> {
  const { rows } = await db.query<{ kind: 't' | 'b'; backend: BackendKind; phase: string | null; ts: Date }>(
    `SELECT 't' AS kind, w.backend, NULL AS phase, min(t.ts) AS ts
       FROM workspaces w JOIN workspace_transitions t ON t.workspace_id = w.id AND t.generation = $2
       WHERE w.id = $1 GROUP BY w.backend
     UNION ALL
     SELECT 'b', w.backend, e.phase, e.ts FROM (
       SELECT phase, ts, id FROM boot_events WHERE workspace_id = $1 AND generation = $2
       ORDER BY id LIMIT 100) e JOIN workspaces w ON w.id = $1`,
    [workspaceId, generation],
  );
  const started = rows.find((r) => r.kind === 't');
  if (!started) return false;
  const backend = started.backend;
  const events = rows.filter((r) => r.kind === 'b').map((r) => ({ generation, phase: r.phase!, ts: r.ts }));
  const observations: { phase: string; seconds: number }[] = [
    { phase: 'total', seconds: (Date.now() - started.ts.getTime()) / 1000 },
  ];
  if (events[0]) {
    observations.push({
      phase: 'resource',
      seconds: Math.max(0, events[0].ts.getTime() - started.ts.getTime()) / 1000,
    });
  }
  phaseDurations(events).forEach((ms, i) => {
    const phase = events[i]!.phase;
    if (ms !== null && phases.includes(phase)) observations.push({ phase, seconds: ms / 1000 });
  });
  const m = merged(
    observations.flatMap((o) =>
      histogramRows(PROVISION_METRIC, PROVISION_BUCKETS, { backend, phase: o.phase }, Math.max(0, o.seconds)),
    ),
  );
  // Claiming the generation and adding its figures are one statement: a retried activity adds
  // nothing twice, and a failed one leaves the generation unclaimed.
  const res = await db.query(
    `WITH claim AS (
       UPDATE workspaces SET provision_observed_generation = $6
       WHERE id = $5 AND coalesce(provision_observed_generation, 0) < $6 RETURNING 1)
     ${ADD_ROWS} WHERE EXISTS (SELECT 1 FROM claim) ${SUM_ON_CONFLICT}`,
    [...rowParams(m), workspaceId, generation],
  );
  return (res.rowCount ?? 0) > 0;
}

/**
 * How full PostgreSQL's NOTIFY queue is (0..1): the API's change feed LISTENs, and a listener that
 * stops reading (a frozen process) holds every notification sent since; once the queue is full,
 * every transaction that notifies (a transition, a workspace update) fails at commit.
 */
export async function notifyQueueUsage(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ usage: number }>('SELECT pg_notification_queue_usage() AS usage');
  return Number(rows[0]?.usage ?? 0);
}
