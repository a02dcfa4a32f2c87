import { Router, type Response } from 'express';
import { listBootEvents, latestConsoleLog, listTransitions } from '../../db/events.js';
import { insertMemory } from '../../db/memories.js';
import { inTransaction } from '../../db/queryable.js';
import { putSecret, secretValues } from '../../db/secrets.js';
import * as workspaces from '../../db/workspaces.js';
import { redact } from '../../security/redact.js';
import { newId } from '../../security/tokens.js';
import {
  deleteUpdate,
  restartUpdate,
  startUpdate,
  stopUpdate,
  workspaceWorkflowId,
} from '../../workflows/messages.js';
import { orgScope, principalOf } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { temporalUnavailable } from '../entity.js';
import { badRequest, notFound, parse } from '../errors.js';
import { presentWorkspace } from '../present.js';
import { configureBody, createWorkspaceBody, listQuery, workspaceIdParam } from '../schemas.js';

export function workspacesRouter(deps: ApiDeps): Router {
  const { db, settings } = deps;
  const r = Router();

  /** Loads a workspace the caller may see; any other id (or another org's) answers 404. */
  async function load(res: Response, rawId: string) {
    const scope = orgScope(principalOf(res));
    if (!workspaceIdParam.safeParse(rawId).success) throw notFound();
    const w = await workspaces.getWorkspace(db, rawId, scope);
    if (!w) throw notFound();
    return w;
  }

  r.post('/', async (req, res) => {
    const scope = orgScope(principalOf(res));
    const body = parse(createWorkspaceBody, req.body);
    const orgId = scope ?? body.orgId;
    if (!orgId) throw badRequest('orgId: required when creating with the admin token', 'orgId');
    if (scope && body.orgId && body.orgId !== scope) throw badRequest('orgId: must be your own org', 'orgId');
    if (!settings.enabledBackends.includes(body.backend)) {
      throw badRequest(`backend: "${body.backend}" is not enabled on this server`, 'backend');
    }
    const template = body.template ? settings.templates[body.template] : undefined;
    if (body.template && !template)
      throw badRequest(`template: unknown template "${body.template}"`, 'template');
    const runtime = body.runtime ?? template?.runtime ?? settings.defaultRuntime;
    if (!settings.runtimeImages[runtime]) {
      const known = Object.keys(settings.runtimeImages).join(', ') || 'none configured';
      throw badRequest(`runtime: unknown runtime "${runtime}" (known: ${known})`, 'runtime');
    }
    if (body.parentId && !(await workspaces.getWorkspace(db, body.parentId, orgId))) {
      throw badRequest('parentId: no such workspace in this org', 'parentId');
    }
    const id = newId();
    const workflowId = workspaceWorkflowId(id);
    const secretList = Object.values(body.secrets ?? {});
    await inTransaction(db, async (tx) => {
      await workspaces.insertWorkspace(tx, {
        id,
        orgId,
        name: body.name,
        backend: body.backend,
        template: body.template ?? null,
        runtime,
        config: { ...(template?.config ?? {}), ...(body.config ?? {}) },
        workflowId,
        parentId: body.parentId ?? null,
        budgetLimitCents: body.budgetLimitCents ?? null,
      });
      for (const [key, value] of Object.entries(body.secrets ?? {}))
        await putSecret(tx, deps.secrets, id, key, value);
      for (const m of body.initialMemories ?? []) {
        await insertMemory(tx, id, redact(m.content, secretList), m.scope ?? 'local');
      }
    });
    try {
      await deps.entity.start({
        workspaceId: id,
        orgId,
        backend: body.backend,
        bootDeadlineMs: settings.bootDeadlineMs,
        continueAsNewAfterEvents: settings.continueAsNewAfterEvents,
      });
    } catch (err) {
      deps.log.error({ err }, 'could not start workspace workflow');
      // The start may have reached Temporal anyway (a timeout after the server accepted it): the
      // row goes only when Temporal says no workflow exists; if it does, the create succeeded.
      const exists = await deps.entity.exists(id);
      if (exists === false) {
        await workspaces.deleteWorkspaceRow(db, id);
        throw temporalUnavailable('workflow service unavailable; nothing was created');
      }
      if (exists === null) {
        throw temporalUnavailable(`workflow service unavailable; workspace ${id} may have been created`);
      }
    }
    res.status(202).json({ id, status: 'provisioning', workflowId });
  });

  r.get('/', async (req, res) => {
    const scope = orgScope(principalOf(res));
    const q = parse(listQuery, req.query, 'query');
    const afterId = q.cursor ? decodeCursor(q.cursor) : undefined;
    const rows = await workspaces.listWorkspaces(db, {
      orgId: scope,
      status: q.status,
      backend: q.backend,
      limit: q.limit + 1,
      afterId,
    });
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    const nextCursor = rows.length > q.limit && last ? encodeCursor(last.id) : null;
    res.json({ items: page.map(presentWorkspace), nextCursor });
  });

  r.get('/:id', async (req, res) => {
    res.json(presentWorkspace(await load(res, req.params.id)));
  });

  r.patch('/:id/config', async (req, res) => {
    const w = await load(res, req.params.id);
    const body = parse(configureBody, req.body);
    if (body.runtime && !settings.runtimeImages[body.runtime]) {
      throw badRequest(`runtime: unknown runtime "${body.runtime}"`, 'runtime');
    }
    const result = await deps.entity.configure(w.id, body);
    res.json(result);
  });

  const lifecycle = [
    ['restart', restartUpdate],
    ['stop', stopUpdate],
    ['start', startUpdate],
  ] as const;
  for (const [name, def] of lifecycle) {
    r.post(`/:id/${name}`, async (req, res) => {
      const w = await load(res, req.params.id);
      const result = await deps.entity.update(w.id, def);
      res.status(202).json(result);
    });
  }

  r.delete('/:id', async (req, res) => {
    const w = await load(res, req.params.id);
    if (w.status === 'deleted') {
      res.status(202).json({ accepted: true, status: 'deleted' });
      return;
    }
    res.status(202).json(await deps.entity.update(w.id, deleteUpdate));
  });

  r.get('/:id/boot-log', async (req, res) => {
    const w = await load(res, req.params.id);
    const secrets = Object.values(await secretValues(db, deps.secrets, w.id));
    const events = await listBootEvents(db, w.id);
    let consoleText = '';
    if (w.instanceId && w.status !== 'deleted') {
      consoleText = await deps.backends[w.backend].bootLog(w.id, w.generation).catch(() => '');
    }
    if (!consoleText) consoleText = (await latestConsoleLog(db, w.id)) ?? '';
    res.json({
      backend: w.backend,
      events: events.map((e) => ({
        ts: e.ts.toISOString(),
        phase: e.phase,
        generation: e.generation,
        ...(e.message ? { message: redact(e.message, secrets) } : {}),
      })),
      console: redact(consoleText, secrets),
    });
  });

  r.get('/:id/events', async (req, res) => {
    const w = await load(res, req.params.id);
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
    });
    res.flushHeaders();
    let lastId = '0';
    let closed = false;
    req.on('close', () => {
      closed = true;
    });
    // Transitions are rows in Postgres: poll them (works on PGlite too), keep-alive comments between.
    let idle = 0;
    while (!closed) {
      const rows = await listTransitions(db, w.id, lastId);
      for (const t of rows) {
        lastId = t.id;
        const payload = {
          status: t.status,
          phase: t.phase,
          ts: t.ts.toISOString(),
          generation: t.generation,
        };
        res.write(
          `id: ${t.id}\ndata: ${JSON.stringify(t.message ? { ...payload, message: t.message } : payload)}\n\n`,
        );
        if (t.status === 'deleted') closed = true;
      }
      if (closed) break;
      if (++idle % 40 === 0) res.write(': keep-alive\n\n');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    res.end();
  });

  return r;
}

/** Opaque to clients; the last id of the page (keyset paging is stable under inserts). */
function encodeCursor(id: string): string {
  return Buffer.from(`ws:${id}`).toString('base64url');
}

function decodeCursor(cursor: string): string {
  const raw = Buffer.from(cursor, 'base64url').toString('utf8');
  const id = raw.startsWith('ws:') ? raw.slice(3) : '';
  if (!workspaceIdParam.safeParse(id).success) throw badRequest('cursor: invalid cursor', 'cursor');
  return id;
}
