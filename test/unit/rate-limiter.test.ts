/**
 * The API's own limiter (src/api/rate-limiter.ts) answers exactly as express-rate-limit did with
 * the options the API used: the same statuses, `RateLimit`, `RateLimit-Policy` and `Retry-After`
 * headers, request by request, for the failed-authentication limiter (counts only 401s, per
 * address, the admin skipped) and the per-key limiter behind it. Both stacks run side by side on
 * loopback with the clock frozen, and are sent the same sequence.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express, type RequestHandler } from 'express';
import { ipKeyGenerator, rateLimit } from 'express-rate-limit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { bearer, type Principal } from '../../src/api/auth.js';
import { failedAuthRateLimit, perKeyRateLimit, rateLimitKey } from '../../src/api/limits.js';
import { partitionKey, policyName, WindowStore } from '../../src/api/rate-limiter.js';
import { safeEqual } from '../../src/security/tokens.js';

const ADMIN = 'admin-token';
const LIMIT = 3;

/** express-rate-limit configured as src/api/limits.ts configured it before its own limiter. */
function libraryLimiters(perMinute: number): [RequestHandler, RequestHandler] {
  const failed = rateLimit({
    skip: (req) => {
      const token = bearer(req);
      return token !== null && safeEqual(token, ADMIN);
    },
    windowMs: 60_000,
    limit: perMinute,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    keyGenerator: (req) => `auth-failures:${ipKeyGenerator(req.ip ?? 'unknown')}`,
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
  const perKey = rateLimit({
    windowMs: 60_000,
    limit: perMinute,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    keyGenerator: (_req, res) => rateLimitKey(res.locals.principal as Principal, String(res.locals.rawToken)),
    handler: (_req, res) => {
      res.status(429).json({
        error: {
          code: 'rate_limited',
          message: `over ${perMinute} requests per minute for this key; retry later`,
        },
      });
    },
    validate: { ip: false, trustProxy: false, xForwardedForHeader: false, keyGeneratorIpFallback: false },
  });
  return [failed, perKey];
}

/** A stand-in for authenticate: `wo_org_…` tokens are org keys, `admin-token` the admin, the rest 401. */
const fakeAuth: RequestHandler = (req, res, next) => {
  const token = bearer(req);
  let principal: Principal | null = null;
  if (token === ADMIN) principal = { kind: 'admin' };
  else if (token?.startsWith('wo_org_good')) principal = { kind: 'org', orgId: token };
  else if (token?.startsWith('ws-'))
    principal = { kind: 'workspace', workspaceId: token.slice(3), generation: 1 };
  if (!principal) {
    res.status(401).json({ error: { code: 'unauthorized', message: 'invalid token' } });
    return;
  }
  res.locals.principal = principal;
  res.locals.rawToken = token;
  next();
};

function app([failed, perKey]: [RequestHandler, RequestHandler]): Express {
  const a = express();
  a.use(failed, fakeAuth, perKey);
  a.get('/x', (_req, res) => res.json({ ok: true }));
  return a;
}

async function serve(a: Express): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(a);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function answer(url: string, token: string | null) {
  const res = await fetch(`${url}/x`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return {
    status: res.status,
    body: await res.json(),
    rateLimit: res.headers.get('ratelimit'),
    policy: res.headers.get('ratelimit-policy'),
    retryAfter: res.headers.get('retry-after'),
  };
}

describe('API rate limiter against express-rate-limit', () => {
  let now = Date.parse('2026-11-29T12:00:00.000Z');
  const servers: Array<{ url: string; close(): Promise<void> }> = [];
  beforeAll(() => {
    // Both stacks read Date.now (the library's store too): frozen, moved by the test.
    vi.useFakeTimers({ toFake: ['Date'], now });
  });
  afterAll(async () => {
    vi.useRealTimers();
    await Promise.all(servers.map((s) => s.close()));
  });

  it('answers every request of a sequence alike: statuses and headers', async () => {
    const lib = await serve(app(libraryLimiters(LIMIT)));
    const own = await serve(
      app([failedAuthRateLimit(LIMIT, ADMIN), perKeyRateLimit(LIMIT)] as [RequestHandler, RequestHandler]),
    );
    servers.push(lib, own);
    const org = `wo_org_good${'A'.repeat(21)}`;
    const other = `wo_org_good${'B'.repeat(21)}`;
    const steps: Array<{ token: string | null; advanceMs?: number }> = [
      ...Array.from({ length: LIMIT + 1 }, () => ({ token: org, advanceMs: 700 })),
      { token: other },
      { token: 'ws-one' },
      { token: 'ws-one', advanceMs: 1_300 },
      { token: null },
      ...Array.from({ length: LIMIT + 1 }, () => ({ token: 'forged', advanceMs: 250 })),
      // Locked out by failures: a valid key from the same address too; the admin is not.
      { token: other },
      { token: ADMIN },
      // Then a new window: everything counts from zero again.
      { token: ADMIN, advanceMs: 60_000 },
      { token: org },
      { token: 'forged' },
      { token: other },
    ];
    let i = 0;
    const statuses: number[] = [];
    for (const step of steps) {
      const [a, b] = [await answer(lib.url, step.token), await answer(own.url, step.token)];
      expect({ step: i, ...b }).toEqual({ step: i, ...a });
      statuses.push(b.status);
      i++;
      if (step.advanceMs) {
        now += step.advanceMs;
        vi.setSystemTime(now);
      }
    }
    // The sequence reaches both limits, and a new window lifts them.
    expect(statuses).toEqual([
      200, 200, 200, 429, 200, 200, 200, 401, 401, 401, 429, 429, 429, 200, 200, 200, 401, 200,
    ]);
  });
});

describe('rate limiter parts', () => {
  it('names its policy and partition keys as the library does', () => {
    expect(policyName(30, 60_000)).toBe('30-in-1min');
    expect(policyName(5, 1_000)).toBe('5-in-1sec');
    expect(policyName(5, 7_200_000)).toBe('5-in-2hrs');
    expect(partitionKey('org-key:abc')).toMatch(/^[A-Za-z0-9+/=]{16}$/);
  });

  it('a window starts at its key first hit, and a decrement never goes below zero', () => {
    let t = 1_000;
    const store = new WindowStore(100, () => t);
    expect(store.increment('k')).toEqual({ totalHits: 1, resetTime: 1_100 });
    t = 1_050;
    expect(store.increment('k').totalHits).toBe(2);
    store.decrement('k');
    store.decrement('k');
    store.decrement('k');
    expect(store.increment('k').totalHits).toBe(1);
    t = 1_100;
    expect(store.increment('k')).toEqual({ totalHits: 1, resetTime: 1_200 });
    store.close();
  });
});
