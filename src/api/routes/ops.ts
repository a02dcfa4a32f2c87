import { Router } from 'express';
import type { ApiDeps } from '../deps.js';
import { dbMetrics, registry, withTimeout } from '../metrics.js';
import { apiDocsRouter } from '../openapi/docs-router.js';
import { fetchWorkerMetrics } from '../worker-metrics.js';

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
    const fromDb = await dbMetrics(deps.db, deps.settings.enabledBackends).catch((err: unknown) => {
      // The process metrics still answer while the DB is away; its figures come back with it.
      deps.log.warn({ err }, 'metrics from the database unavailable');
      return '';
    });
    const fromWorker = await fetchWorkerMetrics(deps.settings.workerMetricsUrls ?? [], deps.log);
    res
      .set('Content-Type', registry.contentType)
      .send(`${await registry.metrics()}\n${fromDb}${fromWorker ? `\n${fromWorker}` : ''}`);
  });

  r.use(apiDocsRouter());

  return r;
}
