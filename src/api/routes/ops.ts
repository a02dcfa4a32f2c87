import { Router } from 'express';
import type { ApiDeps } from '../deps.js';
import { dbMetrics, registry, withTimeout } from '../metrics.js';
import { apiDocsRouter } from '../openapi/docs-router.js';
import { sharedResult } from '../shared-result.js';
import { fetchWorkerMetrics } from '../worker-metrics.js';

/** How long a readiness or metrics answer serves the requests after it (about a second stale at most). */
export const OPS_REUSE_MS = 1_000;

/** Unauthenticated operational routes: health, readiness, metrics, the OpenAPI document and its UI. */
export function opsRouter(deps: ApiDeps): Router {
  const r = Router();
  r.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });

  // At most one round of probes (and one of the database's and workers' figures) per
  // OPS_REUSE_MS per process, shared by the requests that ask meanwhile (shared-result.ts).
  const readiness = sharedResult(async () => {
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
    return { ok, checks: results };
  }, OPS_REUSE_MS);

  r.get('/readyz', async (_req, res) => {
    const answer = await readiness();
    res.status(answer.ok ? 200 : 503).json(answer);
  });

  const figures = sharedResult(async () => {
    const [fromDb, fromWorker] = await Promise.all([
      dbMetrics(deps.db, deps.settings.enabledBackends).catch((err: unknown) => {
        // The process metrics still answer while the DB is away; its figures come back with it.
        deps.log.warn({ err }, 'metrics from the database unavailable');
        return '';
      }),
      fetchWorkerMetrics(deps.settings.workerMetricsUrls ?? [], deps.log),
    ]);
    return `${fromDb}${fromWorker ? `\n${fromWorker}` : ''}`;
  }, OPS_REUSE_MS);

  r.get('/metrics', async (_req, res) => {
    const shared = await figures();
    res.set('Content-Type', registry.contentType).send(`${await registry.metrics()}\n${shared}`);
  });

  r.use(apiDocsRouter());

  return r;
}
