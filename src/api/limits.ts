/**
 * Per-key request rate limits (express-rate-limit, in-process memory store: each API process
 * counts on its own). The key is who calls, never the address they call from: an org or admin key
 * by the SHA-256 of its token, a workspace (registry, A2A, MCP) by its id, so all generations'
 * tokens of one workspace share one budget.
 */
import type { Request, RequestHandler } from 'express';
import { MemoryStore, ipKeyGenerator, rateLimit } from 'express-rate-limit';
import { hashToken, safeEqual } from '../security/tokens.js';
import { bearer, type Principal } from './auth.js';

export const RATE_LIMIT_WINDOW_MS = 60_000;

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
      const waitMs = (resetTime?.getTime() ?? Date.now() + RATE_LIMIT_WINDOW_MS) - Date.now();
      return { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
    },
  };
}

/** Where the failed-auth limiter marks a request it counted (not skipped, not refused). */
const COUNTED_FAILED_AUTH = 'failedAuthRateLimit';

/**
 * Runs before authenticate(): counts only the requests that end 401 (a token of the right shape is
 * still a database lookup), per client address. Past `perMinute` failures the address gets 429
 * until the window passes; callers with valid tokens never add to the count.
 */
export function failedAuthRateLimit(perMinute: number, adminToken: string): RequestHandler {
  const store = new MemoryStore();
  const keyOf = (req: Request) => `auth-failures:${ipKeyGenerator(req.ip ?? 'unknown')}`;
  const limiter = rateLimit({
    // The admin is never locked out by someone failing from the same address (a cheap comparison).
    skip: (req) => {
      const token = bearer(req);
      return token !== null && safeEqual(token, adminToken);
    },
    store,
    windowMs: RATE_LIMIT_WINDOW_MS,
    limit: perMinute,
    standardHeaders: 'draft-8',
    // Its own name in the RateLimit headers, beside the per-key limit's ("<limit>-in-1min").
    identifier: 'auth-failures',
    legacyHeaders: false,
    keyGenerator: keyOf,
    requestPropertyName: COUNTED_FAILED_AUTH,
    requestWasSuccessful: (_req, res) => res.statusCode !== 401,
    skipSuccessfulRequests: true,
    handler: (_req, res) => {
      res.status(429).json({
        error: {
          code: 'rate_limited',
          message: `over ${perMinute} failed authentications per minute; retry later`,
        },
      });
    },
    validate: { trustProxy: false, xForwardedForHeader: false },
  });
  return (req, res, next) => {
    void limiter(req, res, (err?: unknown) => {
      // The library un-counts a request when its answer finishes other than 401; one whose answer
      // never finished (the caller left, a stream it closed) was no failed authentication either.
      if (err === undefined && COUNTED_FAILED_AUTH in req) {
        res.once('close', () => {
          if (!res.writableEnded) void store.decrement(keyOf(req));
        });
      }
      next(err);
    });
  };
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
