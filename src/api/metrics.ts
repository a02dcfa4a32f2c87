/**
 * What /metrics serves. This process's own figures (HTTP requests, Node's process metrics) live in
 * `registry`; the deployment's figures are read from the DB at each scrape, because the API may be
 * several processes and the workflows, activities and sweeps run in the worker processes:
 * `wo_workspaces` (one GROUP BY over workspaces), the worker's running totals (metric_totals:
 * `wo_provision_duration_seconds`, `wo_workflow_outcomes_total`) and the sweeps' (sweep_stats).
 */
import client from 'prom-client';
import type { BackendKind } from '../backends/backend.js';
import {
  metricTotals,
  notifyQueueUsage,
  OUTCOME_METRIC,
  PROVISION_BUCKETS,
  PROVISION_METRIC,
  workspaceCounts,
  type MetricTotal,
} from '../db/metrics.js';
import type { Queryable } from '../db/queryable.js';
import { sweepStats } from '../db/sweeps.js';
import { WORKSPACE_STATUSES } from '../workflows/messages.js';
import { SWEEP_NAMES } from '../worker/schedules.js';

export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });
export const httpRequests = new client.Counter({
  name: 'wo_http_requests_total',
  help: 'HTTP requests by method, route and status',
  labelNames: ['method', 'route', 'status'] as const,
  registers: [registry],
});
export const httpDuration = new client.Histogram({
  name: 'wo_http_request_duration_seconds',
  help: 'HTTP request durations by route pattern (with its mount prefix; "unmatched" when none), method and status',
  labelNames: ['route', 'method', 'status'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

export const connectionsOpen = new client.Gauge({
  name: 'wo_api_connections_open',
  help: 'Client connections this API process holds open',
  registers: [registry],
});
export const connectionsRefused = new client.Counter({
  name: 'wo_api_connections_refused_total',
  help: 'Client connections refused at a cap (reason: max = API_MAX_CONNECTIONS, per_client = API_MAX_CONNECTIONS_PER_CLIENT)',
  labelNames: ['reason'] as const,
  registers: [registry],
});
export const bufferedUploads = new client.Gauge({
  name: 'wo_api_buffered_uploads',
  help: 'File uploads of unknown length this API process is reading whole (FILE_BUFFERED_UPLOADS_MAX)',
  registers: [registry],
});

/** Counts one answered request (`route`: the matched pattern, never the raw URL). */
export function observeRequest(route: string, method: string, status: number, seconds: number): void {
  const labels = { route, method, status: String(status) };
  httpRequests.inc(labels);
  httpDuration.observe(labels, seconds);
}

/** A scrape's wait for the DB: past it, /metrics answers with this process's figures alone. */
export const DB_METRICS_TIMEOUT_MS = 2_000;

/** The deployment's figures from the DB, as exposition text (empty when there are none). */
export async function dbMetrics(db: Queryable, backends: readonly BackendKind[]): Promise<string> {
  const [workspaces, totals, sweeps, notifyQueue] = await withTimeout(
    Promise.all([workspaceCounts(db), metricTotals(db), sweepMetrics(db), notifyQueueUsage(db)]),
    DB_METRICS_TIMEOUT_MS,
  );
  const scrape = new client.Registry();
  new client.Gauge({
    name: 'wo_pg_notify_queue_usage',
    help: "Fraction of PostgreSQL's NOTIFY queue in use (alert well below 1: at 1 every notifying commit fails)",
    registers: [scrape],
  }).set(notifyQueue);
  const gauge = new client.Gauge({
    name: 'wo_workspaces',
    help: 'Workspaces that are not deleted, by status and backend (read from the DB at scrape)',
    labelNames: ['status', 'backend'] as const,
    registers: [scrape],
  });
  // Every status of every enabled backend, zeros included: a series does not vanish when it empties.
  for (const backend of backends)
    for (const status of WORKSPACE_STATUSES) if (status !== 'deleted') gauge.set({ status, backend }, 0);
  for (const w of workspaces) gauge.set({ status: w.status, backend: w.backend }, w.count);
  return [await scrape.metrics(), renderTotals(totals), sweeps].filter(Boolean).join('\n');
}

const TOTALS_HELP: Record<
  string,
  { type: 'counter' | 'histogram'; help: string; buckets?: readonly number[] }
> = {
  [PROVISION_METRIC]: {
    type: 'histogram',
    help: 'How long each provision phase of a generation took, by backend and phase (total, resource, then the boot phases; durations as the boot log times them)',
    buckets: PROVISION_BUCKETS,
  },
  [OUTCOME_METRIC]: {
    type: 'counter',
    help: 'Workflow executions ended, by workflow type and outcome (completed, failed, cancelled, continued_as_new)',
  },
};

/** metric_totals as exposition text: counters as they are, histograms with every bucket. */
export function renderTotals(totals: readonly MetricTotal[]): string {
  const lines: string[] = [];
  for (const [name, meta] of Object.entries(TOTALS_HELP)) {
    const mine = totals.filter((t) => t.name === name);
    lines.push(`# HELP ${name} ${meta.help}`, `# TYPE ${name} ${meta.type}`);
    const bySet = new Map<string, Map<string, number>>();
    for (const t of mine) {
      const key = labelText(t.labels);
      const series = bySet.get(key) ?? new Map<string, number>();
      series.set(t.series, t.value);
      bySet.set(key, series);
    }
    for (const [labels, series] of bySet) {
      if (meta.type === 'counter') {
        lines.push(`${name}{${labels}} ${series.get('') ?? 0}`);
        continue;
      }
      const sep = labels ? ',' : '';
      for (const le of meta.buckets ?? [])
        lines.push(`${name}_bucket{${labels}${sep}le="${le}"} ${series.get(String(le)) ?? 0}`);
      lines.push(`${name}_bucket{${labels}${sep}le="+Inf"} ${series.get('+Inf') ?? 0}`);
      lines.push(`${name}_sum{${labels}} ${series.get('sum') ?? 0}`);
      lines.push(`${name}_count{${labels}} ${series.get('count') ?? 0}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`)
    .join(',');
}

/**
 * The sweeps' figures, read from sweep_stats at each scrape: the sweeps run in the worker, which
 * may be several processes, so each run adds its figures to the DB (recordSweepRun) and whichever
 * API is scraped reports the deployment's totals.
 */
const SWEEP_OUTCOMES = ['ok', 'partial', 'failed'] as const;

async function sweepMetrics(db: Queryable): Promise<string> {
  const stats = await sweepStats(db);
  const scrape = new client.Registry();
  const runs = new client.Counter({
    name: 'wo_sweep_runs_total',
    help: 'Sweep runs by sweep and outcome (ok, partial: some action or listing failed, failed)',
    labelNames: ['sweep', 'outcome'] as const,
    registers: [scrape],
  });
  const actions = new client.Counter({
    name: 'wo_sweep_actions_total',
    help: 'What the sweeps did: health verdicts signalled, orphans removed (docker) or terminated (ec2)',
    labelNames: ['sweep', 'action'] as const,
    registers: [scrape],
  });
  const duration = new client.Gauge({
    name: 'wo_sweep_duration_seconds',
    help: 'How long the latest run of each sweep took (compare with its interval)',
    labelNames: ['sweep'] as const,
    registers: [scrape],
  });
  // Every sweep's run counters from the first scrape (at 0 until it runs): a fresh deployment has the
  // series, and an alert on their rate does not start from nothing.
  for (const sweep of SWEEP_NAMES) for (const outcome of SWEEP_OUTCOMES) runs.inc({ sweep, outcome }, 0);
  for (const s of stats) {
    if (s.metric === 'runs') runs.inc({ sweep: s.sweep, outcome: s.label }, s.value);
    else if (s.metric === 'actions') actions.inc({ sweep: s.sweep, action: s.label }, s.value);
    else if (s.metric === 'last_duration_seconds') duration.set({ sweep: s.sweep }, s.value);
  }
  return scrape.metrics();
}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms).unref(),
    ),
  ]);
}
