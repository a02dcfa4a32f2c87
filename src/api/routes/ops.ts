import { Router } from 'express';
import client from 'prom-client';
import { z } from 'zod';
import type { ApiDeps } from '../deps.js';
import {
  createOrgBody,
  createWorkspaceBody,
  configureBody,
  patchWorkspaceBody,
  workspaceSchema,
} from '../schemas.js';

export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });
export const httpRequests = new client.Counter({
  name: 'wo_http_requests_total',
  help: 'HTTP requests by method, route and status',
  labelNames: ['method', 'route', 'status'] as const,
  registers: [registry],
});

/** Unauthenticated operational routes: health, readiness, metrics, the OpenAPI document. */
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
    res.set('Content-Type', registry.contentType).send(await registry.metrics());
  });

  r.get('/openapi.json', (_req, res) => {
    res.json(openApiDocument());
  });

  // A readable index of the documented operations; the schemas are in /openapi.json.
  r.get('/docs', (_req, res) => {
    const doc = openApiDocument();
    const rows = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `<li><code>${m.toUpperCase()} ${p}</code></li>`),
    );
    res
      .type('html')
      .send(
        `<!doctype html><title>workspace-orchestrator API</title><h1>workspace-orchestrator API</h1>` +
          `<p>Schemas: <a href="/openapi.json">/openapi.json</a></p><ul>${rows.join('')}</ul>`,
      );
  });

  return r;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms).unref(),
    ),
  ]);
}

function openApiDocument() {
  const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });
  const json = (s: z.ZodType) => ({ content: { 'application/json': { schema: schema(s) } } });
  return {
    openapi: '3.1.0',
    info: { title: 'workspace-orchestrator', version: '1' },
    paths: {
      '/v1/orgs': {
        post: { requestBody: json(createOrgBody), responses: { '201': { description: 'created' } } },
        get: { responses: { '200': { description: 'orgs (not deleted)' } } },
      },
      '/v1/orgs/{id}': {
        get: { responses: { '200': { description: 'org' }, '404': { description: 'unknown or deleted' } } },
        delete: { responses: { '202': { description: 'keys revoked, cascade started' } } },
      },
      '/v1/admin/sweeps': { get: { responses: { '200': { description: 'schedules + last result' } } } },
      '/v1/admin/sweeps/{name}/run': {
        post: { responses: { '200': { description: 'result of one sweep run now' } } },
      },
      '/v1/workspaces': {
        post: { requestBody: json(createWorkspaceBody), responses: { '202': { description: 'accepted' } } },
      },
      '/v1/workspaces/{id}': {
        get: { responses: { '200': { description: 'workspace', ...json(workspaceSchema) } } },
        patch: {
          requestBody: json(patchWorkspaceBody),
          responses: { '200': { description: 'workspace, with the restart policy in force' } },
        },
      },
      '/v1/workspaces/{id}/config': {
        patch: { requestBody: json(configureBody), responses: { '200': { description: 'saved' } } },
      },
      '/v1/workspaces/{id}/restart': { post: { responses: { '202': { description: 'accepted' } } } },
      '/v1/workspaces/{id}/stop': { post: { responses: { '202': { description: 'accepted' } } } },
      '/v1/workspaces/{id}/start': { post: { responses: { '202': { description: 'accepted' } } } },
      '/v1/workspaces/{id}/events': { get: { responses: { '200': { description: 'text/event-stream' } } } },
      '/v1/workspaces/{id}/boot-log': {
        get: { responses: { '200': { description: 'boot events + console' } } },
      },
      '/v1/workspaces/{id}/secrets': { get: { responses: { '200': { description: 'keys, never values' } } } },
      '/v1/workspaces/{id}/secrets/{key}': {
        put: { responses: { '204': { description: 'stored' } } },
        delete: { responses: { '204': { description: 'deleted' } } },
      },
    },
  };
}
