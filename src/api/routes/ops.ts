import { Router } from 'express';
import { z } from 'zod';
import type { ApiDeps } from '../deps.js';
import { dbMetrics, registry, withTimeout } from '../metrics.js';
import { budgetBody } from './budget.js';
import { memoryBody } from './memories.js';
import { createScheduleBody, patchScheduleBody } from './schedules.js';
import {
  createOrgBody,
  createWorkspaceBody,
  configureBody,
  patchWorkspaceBody,
  workspaceSchema,
} from '../schemas.js';
import { installPluginBody } from './plugins.js';

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
    const fromDb = await dbMetrics(deps.db, deps.settings.enabledBackends).catch((err: unknown) => {
      // The process metrics still answer while the DB is away; its figures come back with it.
      deps.log.warn({ err }, 'metrics from the database unavailable');
      return '';
    });
    res.set('Content-Type', registry.contentType).send(`${await registry.metrics()}\n${fromDb}`);
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
      '/v1/orgs/{id}/secrets': {
        get: { responses: { '200': { description: 'default keys (admin), never values' } } },
      },
      '/v1/orgs/{id}/secrets/{key}': {
        put: { responses: { '204': { description: 'stored; workspace secrets of the key override it' } } },
        delete: { responses: { '204': { description: 'deleted' } } },
      },
      '/v1/admin/sweeps': { get: { responses: { '200': { description: 'schedules + last result' } } } },
      '/v1/admin/sweeps/{name}/run': {
        post: { responses: { '200': { description: 'result of one sweep run now' } } },
      },
      '/v1/templates': {
        get: {
          responses: {
            '200': { description: 'the template catalog: {items: [{name, runtime, description?}]}' },
          },
        },
      },
      '/v1/plugins': {
        get: {
          responses: { '200': { description: 'the plugin catalog: {items: [{name, version, source}]}' } },
        },
      },
      '/v1/workspaces/{id}/plugins': {
        get: { responses: { '200': { description: '{items: [{name, version, status, installedAt?}]}' } } },
        post: {
          requestBody: json(installPluginBody),
          responses: { '202': { description: 'validated and stored; the plugin workflow installs it' } },
        },
      },
      '/v1/workspaces/{id}/plugins/{name}': {
        delete: { responses: { '202': { description: 'the plugin workflow removes it' } } },
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
      '/v1/workspaces/{id}/memories': {
        get: {
          responses: {
            '200': { description: '{items: [{id, content, scope, createdAt}], nextCursor}, newest first' },
          },
        },
        post: { requestBody: json(memoryBody), responses: { '201': { description: 'stored (redacted)' } } },
      },
      '/v1/workspaces/{id}/memories/{memoryId}': {
        delete: {
          responses: { '204': { description: 'deleted' }, '404': { description: 'no such memory' } },
        },
      },
      '/v1/workspaces/{id}/budget': {
        get: { responses: { '200': { description: '{limitCents, spentCents}' } } },
        patch: {
          requestBody: json(budgetBody),
          responses: { '200': { description: '{limitCents, spentCents}' } },
        },
      },
      '/v1/workspaces/{id}/secrets': { get: { responses: { '200': { description: 'keys, never values' } } } },
      '/v1/workspaces/{id}/secrets/{key}': {
        put: { responses: { '204': { description: 'stored' } } },
        delete: { responses: { '204': { description: 'deleted' } } },
      },
      '/v1/workspaces/{id}/schedules': {
        get: { responses: { '200': { description: '{items: [Schedule]} with lastRun' } } },
        post: { requestBody: json(createScheduleBody), responses: { '201': { description: 'Schedule' } } },
      },
      '/v1/workspaces/{id}/schedules/{sid}': {
        get: { responses: { '200': { description: 'Schedule' } } },
        patch: { requestBody: json(patchScheduleBody), responses: { '200': { description: 'Schedule' } } },
        delete: { responses: { '204': { description: 'deleted, with its Temporal Schedule' } } },
      },
      '/v1/workspaces/{id}/schedules/{sid}/run': {
        post: { responses: { '202': { description: 'one run started now; see lastRun' } } },
      },
    },
  };
}
