/**
 * The workspace a route's `:id` names, loaded once per request by `router.param('id', …)` and handed
 * out only through `workspaceOf(res, access)`, which applies the route's access rule. The loader never
 * answers on its own: every refusal (403, 404) comes from the rule, at the point the route asks, so
 * each route keeps its own order of checks (a files upload's 413 still comes before a 404).
 */
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import type { Queryable } from '../db/queryable.js';
import { getWorkspace, type WorkspaceRow } from '../db/workspaces.js';
import type { ProxyView, ProxyViews } from '../db/proxy-view.js';
import { principalOf, type Principal } from './auth.js';
import { HttpError, notFound } from './errors.js';
import { workspaceIdParam } from './schemas.js';

/** What an access rule reads of a row. */
export type AccessRow = Pick<WorkspaceRow, 'id' | 'orgId' | 'status'>;

/** What the loader found for one `:id`: the row is the one the caller's org can see, if any. */
export interface WorkspaceLookup<R extends AccessRow = WorkspaceRow> {
  id: string;
  /** The id has the shape of one (anything else is a 404 unread). */
  valid: boolean;
  row: R | null;
  /** A workspace token's own workspace, when the proxy's lookup read it (null: gone). */
  own?: R | null;
}

/** Finds a workspace, in one org (orgId) or any (null). */
export type FindWorkspace = (id: string, orgId: string | null) => Promise<WorkspaceRow | null>;

export interface Access {
  /** The token's kind is refused (403) before the id is looked at (management routes), else after. */
  tokenFirst: boolean;
  /**
   * A workspace token's reach: its own workspace (any other id is 404), its org's workspaces (the
   * A2A proxy's peers), or none (403 with this message).
   */
  workspaceToken: 'own' | 'org' | { refused: string };
  /** The 403 message for any other token than an org key, the admin token or a workspace token. */
  otherToken: string;
  /** A deleted workspace's record is served (reads), or answers 404 (changes). */
  deleted: 'served' | 'hidden';
}

const MANAGE_MESSAGE = 'this token cannot manage workspaces';

/** Org key or admin only; a deleted workspace is still served (its record, its boot log, its files' 409). */
export const MANAGE: Access = {
  tokenFirst: true,
  workspaceToken: { refused: MANAGE_MESSAGE },
  otherToken: MANAGE_MESSAGE,
  deleted: 'served',
};

/** Org key or admin only, live workspaces only. */
export const MANAGE_LIVE: Access = { ...MANAGE, deleted: 'hidden' };

/** Org key, admin, or the workspace's own token; `otherToken` names what a bootstrap token cannot do. */
export const readOwn = (otherToken: string): Access => ({
  tokenFirst: false,
  workspaceToken: 'own',
  otherToken,
  deleted: 'served',
});

/** As readOwn, but a deleted workspace cannot be changed (404). */
export const writeOwn = (otherToken: string): Access => ({ ...readOwn(otherToken), deleted: 'hidden' });

/** A budget change: org key or admin; never a workspace token, not even for its own workspace. */
export const BUDGET_WRITE: Access = {
  ...MANAGE_LIVE,
  tokenFirst: false,
  workspaceToken: { refused: 'a workspace cannot change its own budget' },
};

/**
 * The A2A proxy: the caller (checked first, by the proxy: a workspace token of a live workspace and
 * its current generation) reaches the workspaces of its org, deleted ones too.
 */
export const PROXY: Access = {
  tokenFirst: true,
  workspaceToken: 'org',
  otherToken: 'this token cannot call agents',
  deleted: 'served',
};

/** The lookup's home on res.locals; read through workspaceOf, which applies a rule. */
const LOCALS_KEY = 'workspaceLookup';
/** The A2A proxy's lookup (views, not full rows): its own key, never mistaken for a full row. */
const PROXY_LOCALS_KEY = 'proxyWorkspaceLookup';

/**
 * The row the principal's org can see: an org key's own org, the admin's any, a workspace token's
 * its own org (its own workspace, or a peer). Other tokens see none.
 */
export async function lookupWorkspace(
  find: FindWorkspace,
  p: Principal,
  id: string,
): Promise<WorkspaceLookup> {
  if (!workspaceIdParam.safeParse(id).success) return { id, valid: false, row: null };
  let row: WorkspaceRow | null = null;
  if (p.kind === 'admin') row = await find(id, null);
  else if (p.kind === 'org') row = await find(id, p.orgId);
  else if (p.kind === 'workspace') {
    const own = await find(p.workspaceId, null);
    if (id === p.workspaceId) row = own;
    else row = own ? await find(id, own.orgId) : null;
  }
  return { id, valid: true, row };
}

/**
 * As lookupWorkspace, for the A2A proxy: the same rule over proxy views, with the caller's own
 * workspace and the called one read together (`views` reads several ids at once).
 */
export async function lookupProxyWorkspace(
  views: (ids: readonly string[]) => Promise<Map<string, ProxyView>>,
  p: Principal,
  id: string,
): Promise<WorkspaceLookup<ProxyView>> {
  if (!workspaceIdParam.safeParse(id).success) return { id, valid: false, row: null };
  if (p.kind === 'admin' || p.kind === 'org') {
    const row = (await views([id])).get(id) ?? null;
    return { id, valid: true, row: row && (p.kind === 'admin' || row.orgId === p.orgId) ? row : null };
  }
  if (p.kind === 'workspace') {
    const found = await views(id === p.workspaceId ? [id] : [p.workspaceId, id]);
    const own = found.get(p.workspaceId) ?? null;
    const peer = found.get(id) ?? null;
    const row = own && peer && peer.orgId === own.orgId ? peer : null;
    return { id, valid: true, row, own };
  }
  return { id, valid: true, row: null };
}

/** The workspace token's own workspace as the A2A proxy's lookup read it; undefined when it did not. */
export function ownProxyWorkspaceOf(res: Response): ProxyView | null | undefined {
  return (res.locals[PROXY_LOCALS_KEY] as WorkspaceLookup<ProxyView> | undefined)?.own;
}

/** The `router.param('id', …)` handler: one lookup per request, whatever routers it passes. */
export function workspaceParam(find: FindWorkspace) {
  return async (_req: Request, res: Response, next: NextFunction, id: string): Promise<void> => {
    const prior = res.locals[LOCALS_KEY] as WorkspaceLookup | undefined;
    if (prior?.id !== id) res.locals[LOCALS_KEY] = await lookupWorkspace(find, principalOf(res), id);
    next();
  };
}

/** Installs the A2A proxy's loader (views, see lookupProxyWorkspace) on its router. */
export function loadsProxyWorkspace(
  r: Router,
  views: (ids: readonly string[], barrier?: Promise<void>) => Promise<Map<string, ProxyView>>,
): Router {
  r.param('id', async (_req: Request, res: Response, next: NextFunction, id: string) => {
    const prior = res.locals[PROXY_LOCALS_KEY] as WorkspaceLookup<ProxyView> | undefined;
    if (prior?.id !== id) {
      const early = earlyBarrierOf(res, id);
      res.locals[PROXY_LOCALS_KEY] = await lookupProxyWorkspace(
        (ids) => views(ids, early),
        principalOf(res),
        id,
      );
    }
    next();
  });
  return r;
}

/** Installs the loader on a router whose routes name the workspace `:id`. */
export function loadsWorkspace(r: Router, db: Queryable): Router {
  r.param(
    'id',
    workspaceParam((id, orgId) => getWorkspace(db, id, orgId)),
  );
  return r;
}

function checkToken(p: Principal, id: string, access: Access): void {
  if (p.kind === 'admin' || p.kind === 'org') return;
  if (p.kind === 'workspace') {
    const reach = access.workspaceToken;
    if (reach === 'own') {
      if (p.workspaceId !== id) throw notFound();
      return;
    }
    if (reach === 'org') return;
    throw new HttpError(403, 'forbidden', reach.refused);
  }
  throw new HttpError(403, 'forbidden', access.otherToken);
}

/** Applies an access rule to a lookup: the workspace, or the 403/404 the rule gives. */
export function checkAccess<R extends AccessRow>(
  p: Principal,
  lookup: WorkspaceLookup<R>,
  access: Access,
): R {
  if (access.tokenFirst) checkToken(p, lookup.id, access);
  if (!lookup.valid) throw notFound();
  if (!access.tokenFirst) checkToken(p, lookup.id, access);
  const w = lookup.row;
  if (!w || (access.deleted === 'hidden' && w.status === 'deleted')) throw notFound();
  return w;
}

/** The request's `:id` workspace under a route's access rule. */
export function workspaceOf(res: Response, access: Access): WorkspaceRow {
  const lookup = res.locals[LOCALS_KEY] as WorkspaceLookup | undefined;
  // A programming error (a router without the loader), not a caller's: 500.
  if (!lookup) throw new Error('workspaceOf: no :id workspace was loaded for this route');
  return checkAccess(principalOf(res), lookup, access);
}

/** The A2A proxy's `:id` workspace view under its access rule (loadsProxyWorkspace). */
export function proxyWorkspaceOf(res: Response, access: Access): ProxyView {
  const lookup = res.locals[PROXY_LOCALS_KEY] as WorkspaceLookup<ProxyView> | undefined;
  if (!lookup) throw new Error('proxyWorkspaceOf: no :id workspace was loaded for this route');
  return checkAccess(principalOf(res), lookup, access);
}

const EARLY_BARRIER_KEY = 'proxyEarlyBarrier';
/** `POST /v1/workspaces/<id>/a2a`, the only route whose lookup a barrier begun early serves. */
const A2A_CALL = /^\/v1\/workspaces\/([A-Za-z0-9_-]{1,64})\/a2a\/?(?:\?|$)/;

/**
 * The app's first middleware: for an A2A call whose workspace's view is cached, begins the
 * freshness barrier as the request arrives (see ProxyViews.barrierFor).
 */
export function beginProxyBarrier(views: Pick<ProxyViews, 'barrierFor'>): RequestHandler {
  return (req, res, next) => {
    if (req.method === 'POST') {
      const id = A2A_CALL.exec(req.url)?.[1];
      const barrier = id === undefined ? undefined : views.barrierFor(id);
      if (barrier) res.locals[EARLY_BARRIER_KEY] = { id, barrier };
    }
    next();
  };
}

function earlyBarrierOf(res: Response, id: string): Promise<void> | undefined {
  const early = res.locals[EARLY_BARRIER_KEY] as { id: string; barrier: Promise<void> } | undefined;
  return early?.id === id ? early.barrier : undefined;
}
