/**
 * Per-key request rate limits (express-rate-limit, in-process memory store: each API process
 * counts on its own). The key is who calls, never the address they call from: an org or admin key
 * by the SHA-256 of its token, a workspace (registry, A2A, MCP) by its id, so all generations'
 * tokens of one workspace share one budget.
 */
import type { Request, RequestHandler } from 'express';
import { MemoryStore, ipKeyGenerator, rateLimit } from 'express-rate-limit';
import { hashToken } from '../security/tokens.js';
import type { Principal } from './auth.js';
import { HttpError } from './errors.js';

export const RATE_LIMIT_WINDOW_MS = 60_000;

/** Whole seconds (at least 1) until a window that resets at `resetTime` (unknown: a whole window). */
const retryAfterOf = (resetTime: Date | undefined): number =>
  Math.max(1, Math.ceil(((resetTime?.getTime() ?? Date.now() + RATE_LIMIT_WINDOW_MS) - Date.now()) / 1000));

export function rateLimitKey(
  principal: Principal,
  rawToken: string,
  /** hashToken(rawToken) when authenticate already computed it. */
  tokenHash?: string,
): string {
  switch (principal.kind) {
    case 'workspace':
      return `workspace:${principal.workspaceId}`;
    case 'org':
      return `org-key:${tokenHash ?? hashToken(rawToken)}`;
    case 'admin':
      return 'admin';
    case 'bootstrap':
      return `bootstrap:${hashToken(rawToken)}`;
  }
}

/**
 * The per-key limit of one API (its HTTP routes and its terminal share one count per key): the
 * middleware, and `charge` for calls that never pass through it (a terminal's WebSocket upgrade).
 */
export interface KeyRateLimit {
  middleware: RequestHandler;
  /** Counts one call of `key`; past the limit, how long to wait (s) instead of null. */
  charge(key: string): Promise<{ retryAfterSeconds: number } | null>;
}

/** Runs after authenticate(): answers 429 `rate_limited` with Retry-After past `perMinute`. */
export function perKeyRateLimit(perMinute: number): KeyRateLimit {
  const store = new MemoryStore();
  const middleware = rateLimit({
    store,
    windowMs: RATE_LIMIT_WINDOW_MS,
    limit: perMinute,
    // RateLimit/RateLimit-Policy headers, and Retry-After on a refusal.
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    keyGenerator: (_req, res) =>
      rateLimitKey(
        res.locals.principal as Principal,
        String(res.locals.rawToken),
        res.locals.tokenHash as string | undefined,
      ),
    handler: (_req, res) => {
      res.status(429).json({
        error: {
          code: 'rate_limited',
          message: `over ${perMinute} requests per minute for this key; retry later`,
        },
      });
    },
    // The key is never an IP address, so the library's IP checks do not apply.
    validate: { ip: false, trustProxy: false, xForwardedForHeader: false, keyGeneratorIpFallback: false },
  });
  return {
    middleware,
    async charge(key) {
      // The store the middleware counts in (initialised with its window when the limiter was made).
      const { totalHits, resetTime } = await store.increment(key);
      if (totalHits <= perMinute) return null;
      return { retryAfterSeconds: retryAfterOf(resetTime) };
    },
  };
}

/**
 * Failed authentications per client address (a token of the minted shape costs a database
 * lookup): counted when authentication fails, and only such a request is ever refused for it. A
 * token that authenticates is never held back for its address: tenants may share one (workspaces
 * behind a NAT, or the Docker bridge's gateway in front of the API), and one of them failing on
 * purpose must not lock the others out. Past `perMinute` failures in the window, a failing request
 * answers 429 `rate_limited` with Retry-After instead of 401.
 */
export class FailedAuthLimit {
  private readonly store = new MemoryStore();

  constructor(readonly perMinute: number) {
    // The store reads only the window of the options a limiter would give it.
    this.store.init({ windowMs: RATE_LIMIT_WINDOW_MS } as Parameters<MemoryStore['init']>[0]);
  }

  /** Counts one failed authentication of the request's address: the answer it gets. */
  async refusal(req: Request, message: string): Promise<HttpError> {
    const { totalHits, resetTime } = await this.store.increment(
      `auth-failures:${ipKeyGenerator(req.ip ?? 'unknown')}`,
    );
    if (totalHits <= this.perMinute) return new HttpError(401, 'unauthorized', message);
    return new HttpError(
      429,
      'rate_limited',
      `over ${this.perMinute} failed authentications per minute from this address; retry later`,
      { retryAfterSeconds: retryAfterOf(resetTime) },
    );
  }
}

const failures = new WeakMap<object, FailedAuthLimit>();

/** The failed-authentication count of one API (one per `owner`, its ApiDeps): /v1 and the console share it. */
export function failedAuthLimitOf(owner: object, perMinute: number): FailedAuthLimit {
  let limit = failures.get(owner);
  if (!limit) {
    limit = new FailedAuthLimit(perMinute);
    failures.set(owner, limit);
  }
  return limit;
}

const shared = new WeakMap<object, KeyRateLimit>();

/**
 * The per-key limit of one API (one per `owner`, its ApiDeps): the /v1 routes and the terminal's
 * upgrades count in it together, so a key cannot go around its limit through WebSockets.
 */
export function keyRateLimitOf(owner: object, perMinute: number): KeyRateLimit {
  let limit = shared.get(owner);
  if (!limit) {
    limit = perKeyRateLimit(perMinute);
    shared.set(owner, limit);
  }
  return limit;
}
