import { Router } from 'express';
import client from 'prom-client';
import { sweepStats } from '../../db/sweeps.js';
import type { Queryable } from '../../db/queryable.js';
import type { ApiDeps } from '../deps.js';
import { apiDocsRouter } from '../openapi/docs-router.js';

export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });
export const httpRequests = new client.Counter({
  name: 'wo_http_requests_total',
  help: 'HTTP requests by method, route and status',
  labelNames: ['method', 'route', 'status'] as const,
  registers: [registry],
});

/** Unauthenticated operational routes: health, readiness, metrics, the OpenAPI document and its UI. */
export function opsRouter(deps: ApiDeps): Router {
  const r = Router();
  r.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });

  r.get('/readyz', async (_req, res) => {
    // Each part by name, so a 503 says which one failed (api.md "Operations").
    const checks: Record<string, () => Promise<unknown>> = {
      database: () => deps.db.query('SELECT 1'),
      temporal: () => deps.entity.ping(),
      worker: () => deps.entity.requireWorker(),
      ...deps.readiness,
    };
    for (const kind of deps.settings.enabledBackends)
      checks[`backend:${kind}`] = () => deps.backends[kind].ping();
    const results: Record<string, string> = {};
    let ok = true;
    await Promise.all(
      Object.entries(checks).map(async ([name, probe]) => {
        try {
          await withTimeout(probe(), 3000);
          results[name] = 'ok';
        } catch (err) {
          ok = false;
          results[name] = err instanceof Error ? err.message : 'failed';
        }
      }),
    );
    res.status(ok ? 200 : 503).json({ ok, checks: results });
  });

  r.get('/metrics', async (_req, res) => {
    const sweeps = await sweepMetrics(deps.db).catch((err: unknown) => {
      // The process metrics still answer while the DB is away; the sweep figures come back with it.
      deps.log.warn({ err }, 'sweep metrics unavailable');
      return '';
    });
    res.set('Content-Type', registry.contentType).send((await registry.metrics()) + sweeps);
  });

  r.use(apiDocsRouter());

  return r;
}

/**
 * The sweeps' figures, read from sweep_stats at each scrape: the sweeps run in the worker, which
 * serves no HTTP and may be several processes, so each run adds its figures to the DB
 * (recordSweepRun) and whichever API is scraped reports the deployment's totals.
 */
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
  for (const s of stats) {
    if (s.metric === 'runs') runs.inc({ sweep: s.sweep, outcome: s.label }, s.value);
    else if (s.metric === 'actions') actions.inc({ sweep: s.sweep, action: s.label }, s.value);
    else if (s.metric === 'last_duration_seconds') duration.set({ sweep: s.sweep }, s.value);
  }
  return stats.length > 0 ? `\n${await scrape.metrics()}` : '';
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms).unref(),
    ),
  ]);
}
