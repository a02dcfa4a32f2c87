import { Router, type Response } from 'express';
import { keptConsoleLog, listBootEvents, type TransitionEvent } from '../../db/events.js';
import { insertMemory } from '../../db/memories.js';
import { lockOrgAndCountWorkspaces } from '../../db/orgs.js';
import { inTransaction } from '../../db/queryable.js';
import { putSecret, redactorFor } from '../../db/secrets.js';
import { storePendingPlugin } from '../../db/plugins.js';
import * as workspaces from '../../db/workspaces.js';
import { CONSOLE_FETCH_SLACK_BYTES, redactedTail, type RedactedTail } from '../../security/redacted-tail.js';
import { newId } from '../../security/tokens.js';
import { restartUpdate, startUpdate, stopUpdate, workspaceWorkflowId } from '../../workflows/messages.js';
import { orgScope, principalOf, type Principal } from '../auth.js';
import { phaseDurations } from '../boot-phases.js';
import { boundsOf } from '../bounds.js';
import type { ApiDeps } from '../deps.js';
import { temporalUnavailable } from '../entity.js';
import { requireBudget } from '../../app/budget.js';
import { HttpError, badRequest, notFound, parse } from '../errors.js';
import { presentWorkspace } from '../present.js';
import { TransitionFeed } from '../transition-feed.js';
import {
  bootLogQuery,
  configureBody,
  createWorkspaceBody,
  listQuery,
  patchWorkspaceBody,
  workspaceIdParam,
} from '../schemas.js';
import { MANAGE, loadsWorkspace, workspaceOf } from '../workspace-param.js';

export function workspacesRouter(deps: ApiDeps): Router {
  const { db, settings } = deps;
  const r = loadsWorkspace(Router(), db);

  /** The workspace as it is now (after a change), as the caller's org sees it. */
  async function reload(res: Response, id: string) {
    const w = await workspaces.getWorkspace(db, id, orgScope(principalOf(res)));
    if (!w) throw notFound();
    return w;
  }

  /** The restart policy in force: the workspace's own, else its template's, else the default. */
  const policyOf = (w: { restartPolicy: 'always' | 'never' | null; template: string | null }) =>
    w.restartPolicy ??
    (w.template ? settings.templates[w.template]?.restartPolicy : undefined) ??
    settings.restartPolicy?.policy ??
    'always';
  const present = (w: workspaces.WorkspaceRow) => ({ ...presentWorkspace(w), restartPolicy: policyOf(w) });

  r.post('/', async (req, res) => {
    const scope = orgScope(principalOf(res));
    const body = parse(createWorkspaceBody, req.body);
    const orgId = scope ?? body.orgId;
    if (!orgId) throw badRequest('orgId: required when creating with the admin token', 'orgId');
    if (scope && body.orgId && body.orgId !== scope) throw badRequest('orgId: must be your own org', 'orgId');
    if (!settings.enabledBackends.includes(body.backend)) {
      throw badRequest(`backend: "${body.backend}" is not enabled on this server`, 'backend');
    }
    // Own keys only: "constructor" or "toString" is not a template.
    const template =
      body.template && Object.hasOwn(settings.templates, body.template)
        ? settings.templates[body.template]
        : undefined;
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
    // The template's default plugins: stored with the workspace, delivered by its first bundle.
    const defaultPlugins = (template?.plugins ?? []).map((name) => {
      const p = settings.plugins?.[name];
      if (!p)
        throw badRequest(
          `template: plugin "${name}" of template "${body.template}" is not in the catalog`,
          'template',
        );
      return p;
    });
    const id = newId();
    const workflowId = workspaceWorkflowId(id);
    await inTransaction(db, async (tx) => {
      const org = await lockOrgAndCountWorkspaces(tx, orgId);
      if (!org) throw badRequest('orgId: no such org', 'orgId');
      if (org.liveWorkspaces >= settings.orgWorkspaceQuota) {
        throw new HttpError(
          403,
          'quota_exceeded',
          `the org has ${org.liveWorkspaces} workspaces, its quota is ${settings.orgWorkspaceQuota}; delete one first`,
        );
      }
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
        restartPolicy: body.restartPolicy ?? null,
      });
      for (const p of defaultPlugins) await storePendingPlugin(tx, id, p, newId());
      for (const [key, value] of Object.entries(body.secrets ?? {}))
        await putSecret(tx, deps.secrets, { workspaceId: id }, key, value);
      // Its own secrets and its org's defaults: the same set every later redaction uses.
      const clean = await redactorFor(tx, deps.secrets, id);
      for (const m of body.initialMemories ?? []) {
        await insertMemory(tx, id, clean(m.content), m.scope ?? 'local');
      }
    });
    try {
      await deps.entity.start({
        workspaceId: id,
        orgId,
        backend: body.backend,
        bootDeadlineMs: settings.bootDeadlineMs,
        continueAsNewAfterEvents: settings.continueAsNewAfterEvents,
        restartPolicy: {
          ...settings.restartPolicy,
          policy: body.restartPolicy ?? template?.restartPolicy ?? settings.restartPolicy?.policy ?? 'always',
        },
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
    res.json({ items: page.map(present), nextCursor });
  });

  r.get('/:id', async (req, res) => {
    res.json(present(workspaceOf(res, MANAGE)));
  });

  // The entity saves the workspace's own policy and applies the one in force from its next decision.
  r.patch('/:id', async (req, res) => {
    const w = workspaceOf(res, MANAGE);
    const body = parse(patchWorkspaceBody, req.body);
    if (body.restartPolicy === undefined) {
      throw badRequest(
        'restartPolicy: required ("always", "never", or null for the default)',
        'restartPolicy',
      );
    }
    const override = body.restartPolicy;
    await deps.entity.setRestartPolicy(w.id, {
      override,
      policy: policyOf({ ...w, restartPolicy: override }),
    });
    res.json(present(await reload(res, w.id)));
  });

  r.patch('/:id/config', async (req, res) => {
    const w = workspaceOf(res, MANAGE);
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
      const w = workspaceOf(res, MANAGE);
      // Booting a workspace over its budget would only have the budget sweep stop it again.
      if (name !== 'stop') await requireBudget(db, w.id);
      const result = await deps.entity.update(w.id, def);
      res.status(202).json(result);
    });
  }

  r.delete('/:id', async (req, res) => {
    const w = workspaceOf(res, MANAGE);
    if (w.status === 'deleted') {
      res.status(202).json({ accepted: true, status: 'deleted' });
      return;
    }
    res.status(202).json(
      await deps.entity.delete(w, {
        bootDeadlineMs: settings.bootDeadlineMs,
        continueAsNewAfterEvents: settings.continueAsNewAfterEvents,
      }),
    );
  });

  /**
   * A generation's console, redacted and capped: the live resource's while it exists, else the copy
   * kept when the generation failed (compensation removed its resource). Both backends alike.
   */
  async function consoleOf(
    w: workspaces.WorkspaceRow,
    generation: number,
    maxBytes: number,
    secrets: readonly string[],
  ): Promise<RedactedTail> {
    if (generation === w.generation && w.instanceId && w.status !== 'deleted') {
      // A little over the cap, so a longer console shows as truncated.
      const live = await deps.backends[w.backend]
        .bootLog(w.id, generation, maxBytes + CONSOLE_FETCH_SLACK_BYTES)
        .catch(() => '');
      if (live) return redactedTail(live, secrets, maxBytes);
    }
    const kept = await keptConsoleLog(db, w.id, generation, maxBytes);
    return kept ? redactedTail(kept.text, secrets, maxBytes, kept.truncated) : { text: '', truncated: false };
  }

  r.get('/:id/boot-log', async (req, res) => {
    const w = workspaceOf(res, MANAGE);
    const q = parse(bootLogQuery, req.query, 'query');
    const generation = q.generation ?? w.generation;
    const clean = await redactorFor(db, deps.secrets, w.id);
    // Bounded: the most recent events, the last bytes of the console (live or kept).
    const { bootLogMaxEvents, bootLogConsoleMaxBytes: maxBytes } = boundsOf(settings);
    const events = await listBootEvents(db, w.id, bootLogMaxEvents, q.generation);
    const durations = phaseDurations(events);
    const shown = await consoleOf(w, generation, maxBytes, clean.values);
    res.json({
      backend: w.backend,
      events: events.map((e, i) => ({
        ts: e.ts.toISOString(),
        phase: e.phase,
        generation: e.generation,
        ...(e.message ? { message: clean(e.message) } : {}),
        durationMs: durations[i] ?? null,
      })),
      console: shown.text,
      consoleGeneration: generation,
      consoleTruncated: shown.truncated,
    });
  });

  // One shared poller feeds every event stream of this process; streams are capped.
  const bounds = boundsOf(settings);
  const feed = new TransitionFeed(db, { intervalMs: bounds.eventsPollMs, log: deps.log });
  let openStreams = 0;
  const streamsOf = new Map<string, number>();

  r.get('/:id/events', async (req, res) => {
    const w = workspaceOf(res, MANAGE);
    const who = principalKey(principalOf(res));
    if (
      openStreams >= bounds.eventStreamsMax ||
      (streamsOf.get(who) ?? 0) >= bounds.eventStreamsPerPrincipal
    ) {
      throw new HttpError(429, 'too_many_streams', 'too many open event streams; close one or retry later', {
        retryAfterSeconds: 5,
      });
    }
    openStreams++;
    streamsOf.set(who, (streamsOf.get(who) ?? 0) + 1);
    let unsubscribe: (() => void) | null = null;
    // Comments between events keep proxies from dropping an idle stream (first one after the headers).
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 10_000);
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearInterval(keepAlive);
      unsubscribe?.();
      openStreams--;
      const n = (streamsOf.get(who) ?? 1) - 1;
      if (n > 0) streamsOf.set(who, n);
      else streamsOf.delete(who);
      res.end();
    };
    res.on('close', finish);
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
    });
    res.flushHeaders();
    const send = (t: TransitionEvent): void => {
      if (finished) return;
      const payload = { status: t.status, phase: t.phase, ts: t.ts.toISOString(), generation: t.generation };
      res.write(
        `id: ${t.id}\ndata: ${JSON.stringify(t.message ? { ...payload, message: t.message } : payload)}\n\n`,
      );
      // A client that does not read is dropped rather than buffered for.
      if (res.writableLength > STREAM_BUFFER_MAX) return finish();
      if (t.status === 'deleted') finish();
    };
    try {
      const off = await feed.subscribe(w.id, send);
      if (finished) off();
      else unsubscribe = off;
    } catch (err) {
      deps.log.warn({ err, workspaceId: w.id }, 'event stream failed');
      finish();
    }
  });

  return r;
}

/** Bytes an event stream may have queued for a slow client before it is closed. */
const STREAM_BUFFER_MAX = 1024 * 1024;

/** Streams are counted per principal: an org's keys, the admin, a workspace token. */
function principalKey(p: Principal): string {
  switch (p.kind) {
    case 'org':
      return `org:${p.orgId}`;
    case 'workspace':
      return `ws:${p.workspaceId}`;
    default:
      return p.kind;
  }
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
