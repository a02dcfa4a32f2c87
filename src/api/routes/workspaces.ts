import { Router } from 'express';
import * as app from '../../app/workspaces.js';
import type { TransitionEvent } from '../../db/events.js';
import type { WorkspaceRow } from '../../db/workspaces.js';
import { orgScope, principalKey, principalOf } from '../auth.js';
import { boundsOf } from '../bounds.js';
import { CappedCounts } from '../capped-counts.js';
import type { ApiDeps } from '../deps.js';
import { HttpError, badRequest, parse } from '../errors.js';
import { decodeIdCursor, encodeIdCursor } from '../id-cursor.js';
import { presentWorkspace } from '../present.js';
import { TransitionFeed } from '../transition-feed.js';
import {
  bootLogQuery,
  configureBody,
  createWorkspaceBody,
  listQuery,
  patchWorkspaceBody,
} from '../schemas.js';
import { MANAGE, loadsWorkspace, workspaceOf } from '../workspace-param.js';

export function workspacesRouter(deps: ApiDeps): Router {
  const { db, settings } = deps;
  const r = loadsWorkspace(Router(), db);

  const present = (w: WorkspaceRow) => presentWorkspace(w, app.policyInForce(settings, w));

  r.post('/', async (req, res) => {
    const scope = orgScope(principalOf(res));
    const body = parse(createWorkspaceBody, req.body);
    res.status(202).json(await app.createWorkspace(deps, scope, body));
  });

  r.get('/', async (req, res) => {
    const scope = orgScope(principalOf(res));
    const q = parse(listQuery, req.query, 'query');
    const afterId = q.cursor ? decodeIdCursor('ws', q.cursor) : undefined;
    const page = await app.listPage(deps, scope, { ...q, afterId });
    const last = page.items[page.items.length - 1];
    const nextCursor = page.more && last ? encodeIdCursor('ws', last.id) : null;
    res.json({ items: page.items.map(present), nextCursor });
  });

  r.get('/:id', (_req, res) => {
    res.json(present(workspaceOf(res, MANAGE)));
  });

  r.patch('/:id', async (req, res) => {
    const w = workspaceOf(res, MANAGE);
    const body = parse(patchWorkspaceBody, req.body);
    if (body.restartPolicy === undefined) {
      throw badRequest(
        'restartPolicy: required ("always", "never", or null for the default)',
        'restartPolicy',
      );
    }
    const scope = orgScope(principalOf(res));
    res.json(present(await app.setRestartPolicy(deps, scope, w, body.restartPolicy)));
  });

  r.patch('/:id/config', async (req, res) => {
    const w = workspaceOf(res, MANAGE);
    const body = parse(configureBody, req.body);
    res.json(await app.configure(deps, w, body));
  });

  for (const action of app.LIFECYCLE_ACTIONS) {
    r.post(`/:id/${action}`, async (_req, res) => {
      const w = workspaceOf(res, MANAGE);
      res.status(202).json(await app.lifecycle(deps, w, action));
    });
  }

  r.delete('/:id', async (_req, res) => {
    const w = workspaceOf(res, MANAGE);
    res.status(202).json(await app.deleteWorkspace(deps, w));
  });

  r.get('/:id/boot-log', async (req, res) => {
    const w = workspaceOf(res, MANAGE);
    const q = parse(bootLogQuery, req.query, 'query');
    const log = await app.bootLog(deps, w, q.generation, q.console !== 'false');
    res.json({
      backend: w.backend,
      events: log.events.map((e) => ({ ...e, ts: e.ts.toISOString() })),
      console: log.console.text,
      consoleGeneration: log.consoleGeneration,
      consoleTruncated: log.console.truncated,
    });
  });

  // One shared poller feeds every event stream of this process; streams are capped.
  const bounds = boundsOf(settings);
  const feed = new TransitionFeed(db, { intervalMs: bounds.eventsPollMs, log: deps.log });
  deps.transitionHints?.onTransition((id) => feed.wake(id));
  const streams = new CappedCounts(bounds.eventStreamsMax, bounds.eventStreamsPerPrincipal);

  r.get('/:id/events', async (req, res) => {
    const w = workspaceOf(res, MANAGE);
    const release = streams.take(principalKey(principalOf(res)));
    if (typeof release !== 'function') {
      throw new HttpError(429, 'too_many_streams', 'too many open event streams; close one or retry later', {
        retryAfterSeconds: 5,
      });
    }
    let unsubscribe: (() => void) | null = null;
    // Comments between events keep proxies from dropping an idle stream (first one after the headers).
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 10_000);
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearInterval(keepAlive);
      unsubscribe?.();
      release();
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
      const off = await feed.subscribe(w.id, send, resumeAfter(req.get('last-event-id')));
      if (finished) off();
      else unsubscribe = off;
    } catch (err) {
      deps.log.warn({ err, workspaceId: w.id }, 'event stream failed');
      finish();
    }
  });

  return r;
}

/**
 * Where a reconnecting client resumes: after the `Last-Event-ID` it sends (an EventSource sends
 * the last `id:` it received), so it is not sent the history again. Anything but one of our ids
 * (a whole number that fits a bigint) is ignored: the whole history, as for a first connection.
 */
export function resumeAfter(lastEventId: string | undefined): string {
  const id = lastEventId?.trim();
  return id !== undefined && /^\d{1,18}$/.test(id) ? id : '0';
}

/** Bytes an event stream may have queued for a slow client before it is closed. */
const STREAM_BUFFER_MAX = 1024 * 1024;
