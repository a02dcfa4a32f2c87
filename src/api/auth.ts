import type { Request, RequestHandler } from 'express';
import { orgIdForApiKey } from '../db/orgs.js';
import type { Queryable } from '../db/queryable.js';
import { lookupBootstrapToken, lookupWorkspaceToken } from '../db/tokens.js';
import { hashToken, safeEqual } from '../security/tokens.js';
import { HttpError } from './errors.js';
import type { FailedAuthLimit } from './limits.js';

export type Principal =
  | { kind: 'admin' }
  | { kind: 'org'; orgId: string }
  | { kind: 'workspace'; workspaceId: string; generation: number }
  /** Only accepted by the bootstrap endpoint, which redeems it; looked up (not spent) here. */
  | { kind: 'bootstrap'; token: string; workspaceId: string; generation: number };

export function bearer(req: Request): string | null {
  const h = req.headers.authorization;
  if (!h) return null;
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  return m ? m[1]! : null;
}

const unauthorized = (message: string) => new HttpError(401, 'unauthorized', message);

/** What mintToken() makes: a kind prefix and 24 random bytes, base64url. Anything else is refused unread. */
const TOKEN_SHAPE = /^wo_(org|ws|boot)_[A-Za-z0-9_-]{32}$/;

/** The kind of a well-formed minted token, or null (admin tokens are compared, not parsed). */
export function tokenKind(token: string): 'org' | 'ws' | 'boot' | null {
  const m = TOKEN_SHAPE.exec(token);
  return m ? (m[1] as 'org' | 'ws' | 'boot') : null;
}

/**
 * Finds the request's principal. A failure is counted per address by `failures` (limits.ts), which
 * turns it into a 429 past its limit; a token that authenticates is never refused here.
 */
export function authenticate(db: Queryable, adminToken: string, failures?: FailedAuthLimit): RequestHandler {
  const refuse = async (req: Request, message: string) =>
    failures ? failures.refusal(req, message) : unauthorized(message);
  return async (req, res, next) => {
    const token = bearer(req);
    if (!token) throw await refuse(req, 'missing bearer token');
    let principal: Principal | null = null;
    const kind = tokenKind(token);
    if (safeEqual(token, adminToken)) principal = { kind: 'admin' };
    else if (kind === 'org') {
      // Hashed once a request: the rate limiter's key reuses it (limits.ts).
      const hash = hashToken(token);
      res.locals.tokenHash = hash;
      const orgId = await orgIdForApiKey(db, token, hash);
      if (orgId) principal = { kind: 'org', orgId };
    } else if (kind === 'ws') {
      const ws = await lookupWorkspaceToken(db, token);
      if (ws) principal = { kind: 'workspace', ...ws };
    } else if (kind === 'boot') {
      const boot = await lookupBootstrapToken(db, token);
      if (boot) principal = { kind: 'bootstrap', token, ...boot };
    }
    if (!principal) throw await refuse(req, 'invalid token');
    res.locals.principal = principal;
    res.locals.rawToken = token;
    next();
  };
}

export function principalOf(res: { locals: Record<string, unknown> }): Principal {
  return res.locals.principal as Principal;
}

/** Who a per-principal cap counts: an org (all its keys), the admin, a workspace token's workspace. */
export function principalKey(p: Principal): string {
  switch (p.kind) {
    case 'org':
      return `org:${p.orgId}`;
    case 'workspace':
      return `ws:${p.workspaceId}`;
    default:
      return p.kind;
  }
}

/** Org scope of a management call: null = admin (all orgs). Workspace tokens may not manage. */
export function orgScope(p: Principal): string | null {
  if (p.kind === 'admin') return null;
  if (p.kind === 'org') return p.orgId;
  throw new HttpError(403, 'forbidden', 'this token cannot manage workspaces');
}

export function requireAdmin(p: Principal): void {
  if (p.kind !== 'admin') throw new HttpError(403, 'forbidden', 'admin token required');
}
