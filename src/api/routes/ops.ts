import { Router } from 'express';
import type { ApiDeps } from '../deps.js';
import { dbMetrics, registry, withTimeout } from '../metrics.js';
import { apiDocsRouter } from '../openapi/docs-router.js';

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
    const fromWorker = await workerMetrics(deps);
    res
      .set('Content-Type', registry.contentType)
      .send(`${await registry.metrics()}\n${fromDb}${fromWorker ? `\n${fromWorker}` : ''}`);
  });

  r.use(apiDocsRouter());

  return r;
}

/** A scrape's wait for the worker's metrics page: past it, /metrics answers without them. */
export const WORKER_METRICS_TIMEOUT_MS = 1_000;

/**
 * The worker's own series (the SDK's temporal_*), served by the Temporal runtime on its own port:
 * appended so that one scrape of the API has them too. Only `temporal_` families are taken (the
 * page is another process's; nothing of it may shadow or break this one's series).
 */
async function workerMetrics(deps: Pick<ApiDeps, 'settings' | 'log'>): Promise<string> {
  const url = deps.settings.workerMetricsUrl;
  if (!url) return '';
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(WORKER_METRICS_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`worker metrics answered ${res.status}`);
    const text = await res.text();
    const lines = text.split('\n').filter((l) => /^(# (HELP|TYPE) )?temporal_[a-zA-Z0-9_:]*[ {]/.test(l));
    return lines.length > 0 ? `${lines.join('\n')}\n` : '';
  } catch (err) {
    deps.log.warn({ err, url }, 'worker metrics unavailable');
    return '';
  }
}
