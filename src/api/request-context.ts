/**
 * Per request: an id (a sane inbound X-Request-Id, else a new one; echoed in the answer), a log
 * context that every line written while serving it carries (request id; the workspace and its
 * workflow once the route names one; the org of an org key), the request's duration in
 * `wo_http_request_duration_seconds` under its route pattern, and one line when it is answered.
 */
import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { bindLogWorkspace, logContext, type LogContext } from '../log.js';
import type { Principal } from './auth.js';
import { observeRequest } from './metrics.js';

/** Printable, no spaces, bounded: anything else is replaced, never logged or echoed. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;
/** What a workspace id looks like (newId): a path segment that is not one binds nothing. */
const ID_SHAPE = /^[A-Za-z0-9_-]{1,64}$/;
/** Routes whose `:id` is a workspace id (the pattern includes the mount prefix). */
const WORKSPACE_ROUTE = /^\/v1\/workspaces\/:id(\/|$)/;
/** Frequent and uninteresting when they succeed: logged at debug. */
const QUIET_ROUTES = new Set(['/healthz', '/readyz', '/metrics', '/v1/registry/heartbeat']);

export function requestContext(log: Logger): RequestHandler {
  return (req, res, next) => {
    const inbound = req.get('x-request-id');
    const requestId = inbound && SANE_REQUEST_ID.test(inbound) ? inbound : randomUUID();
    res.set('X-Request-Id', requestId);
    const ctx: LogContext = { requestId };
    const started = process.hrtime.bigint();
    let route: string | undefined;
    // Express sets req.route when a route matches, while req.baseUrl is its mount prefix; an error
    // answered later by the app's error handler sees the prefix already unwound. So the pattern
    // (and the workspace it names) is taken at the moment of the match.
    let matched: { path?: unknown } | undefined;
    Object.defineProperty(req, 'route', {
      configurable: true,
      enumerable: true,
      get: () => matched,
      set(value: { path?: unknown } | undefined) {
        matched = value;
        if (typeof value?.path !== 'string') return;
        // A router's own root ('/') under a mount is the mount itself: `/v1/workspaces`.
        route = value.path === '/' && req.baseUrl ? req.baseUrl : req.baseUrl + value.path;
        bindRoute(ctx, route, req, res);
      },
    });
    // Once: when the answer ends, or when the connection closes first (a client leaving a stream).
    let counted = false;
    const answered = (cut: boolean): void => {
      if (counted) return;
      counted = true;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const pattern = route ?? 'unmatched';
      observeRequest(pattern, req.method, res.statusCode, seconds);
      const level = res.statusCode >= 500 ? 'warn' : QUIET_ROUTES.has(pattern) ? 'debug' : 'info';
      log[level](
        { ...ctx, method: req.method, route: pattern, status: res.statusCode, durationMs: seconds * 1000 },
        cut ? 'request closed before its answer ended' : 'request answered',
      );
    };
    res.on('finish', () => answered(false));
    res.on('close', () => answered(!res.writableFinished));
    logContext.run(ctx, next);
  };
}

function bindRoute(ctx: LogContext, route: string, req: Request, res: Response): void {
  const principal = res.locals.principal as Principal | undefined;
  const id = (req.params as Record<string, unknown> | undefined)?.id;
  let workspaceId: string | undefined;
  if (WORKSPACE_ROUTE.test(route) && typeof id === 'string' && ID_SHAPE.test(id)) workspaceId = id;
  else if (principal?.kind === 'workspace' || principal?.kind === 'bootstrap') {
    workspaceId = principal.workspaceId;
  }
  if (workspaceId) bindLogWorkspace(workspaceId, ctx);
  if (principal?.kind === 'org') ctx.orgId = principal.orgId;
}
