/**
 * /openapi.json: a maintained OpenAPI 3.1 validator accepts it, and it lists exactly the routes the
 * Express app mounts (walked from the router stack), so a route added without its entry fails here.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Validator } from '@seriousme/openapi-schema-validator';
import express, { type Express } from 'express';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app.js';
import type { ApiDeps, ApiSettings } from '../../src/api/deps.js';
import { openApiDocument } from '../../src/api/openapi/document.js';
import { ROUTES } from '../../src/api/openapi/routes.js';
import { checkResponse, findOperation } from '../support/openapi-check.js';

const settings: ApiSettings = {
  adminToken: 'admin-token-for-the-route-walk',
  enabledBackends: ['docker'],
  runtimeImages: {},
  defaultRuntime: 'claude-code',
  bootDeadlineMs: 60_000,
  continueAsNewAfterEvents: 1000,
  heartbeatIntervalMs: 1000,
  publicUrl: 'http://127.0.0.1',
  templates: {},
  orgWorkspaceQuota: 10,
  rateLimitPerMinute: 1000,
};

/** Building the app touches no dependency: the walk needs only its router. */
const fakeDeps = {
  db: {},
  entity: {},
  backends: {},
  secrets: {},
  settings,
  log: pino({ level: 'silent' }),
  readiness: {},
} as unknown as ApiDeps; // never called: the routes are only listed (and /openapi.json, /docs served)

interface RouterLike {
  stack: Array<{ route?: { path: unknown; methods: Record<string, boolean> }; handle: unknown }>;
}
const isRouter = (h: unknown): h is RouterLike =>
  typeof h === 'function' && Array.isArray((h as Partial<RouterLike>).stack);

/**
 * Builds the app while recording where each router is mounted: Express 5's layers keep a matcher,
 * not the path they were mounted at, so `use` is observed on the routers' shared prototype.
 */
function appWithMounts(): { app: Express; mounts: Map<unknown, string> } {
  const mounts = new Map<unknown, string>();
  // A router is a function whose prototype is its own Router instance; `use` is on Router.prototype.
  const proto = Object.getPrototypeOf(Object.getPrototypeOf(express.Router())) as {
    use: (...args: unknown[]) => unknown;
  };
  const use = proto.use;
  proto.use = function (this: unknown, ...args: unknown[]) {
    const path = typeof args[0] === 'string' ? args[0] : '/';
    for (const h of args.flat()) if (isRouter(h)) mounts.set(h, path);
    return use.apply(this, args);
  };
  try {
    return { app: createApp(fakeDeps), mounts };
  } finally {
    proto.use = use;
  }
}

/** Every `METHOD /path` the app routes, in OpenAPI path form (`:id` → `{id}`). */
function mountedRoutes(): string[] {
  const { app, mounts } = appWithMounts();
  const out: string[] = [];
  const join = (a: string, b: string) => (a.replace(/\/$/, '') + b).replace(/\/$/, '') || '/';
  const walk = (router: RouterLike, prefix: string) => {
    for (const layer of router.stack) {
      if (layer.route) {
        const p = layer.route.path;
        if (typeof p !== 'string' || /[*?(){}]/.test(p))
          throw new Error(`cannot document route path ${String(p)}`);
        const path = join(prefix, p).replace(/:([A-Za-z0-9_]+)/g, '{$1}');
        for (const m of Object.keys(layer.route.methods)) out.push(`${m.toUpperCase()} ${path}`);
      } else if (isRouter(layer.handle)) {
        const mount = mounts.get(layer.handle);
        if (mount === undefined) throw new Error('a router mounted without a recorded path');
        walk(layer.handle, join(prefix, mount));
      }
    }
  };
  walk((app as unknown as { router: RouterLike }).router, '');
  return out.sort();
}

describe('OpenAPI document', () => {
  it('is valid OpenAPI 3.1 for a maintained validator', async () => {
    const doc = openApiDocument();
    expect(doc.openapi).toBe('3.1.0');
    const validator = new Validator();
    const result = await validator.validate(
      structuredClone(doc) as unknown as Parameters<Validator['validate']>[0],
    );
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('documents every mounted route, and only those', () => {
    const mounted = mountedRoutes();
    // The walk sees the app's routers (a sanity floor, so an empty walk cannot pass).
    expect(mounted).toContain('GET /v1/workspaces/{id}/files/content');
    expect(mounted).toContain('POST /v1/registry/heartbeat');
    const key = (r: (typeof ROUTES)[number]) => `${r.method.toUpperCase()} ${r.path}`;
    const documented = ROUTES.map(key).sort();
    // The terminal is the HTTP server's upgrade handler (terminal.ts), not an Express route.
    const upgrades = new Set(ROUTES.filter((r) => r.upgrade).map(key));
    expect([...upgrades]).toEqual(['GET /v1/workspaces/{id}/terminal']);
    expect(new Set(documented).size).toBe(documented.length);
    const missing = mounted.filter((r) => !documented.includes(r));
    const extra = documented.filter((r) => !mounted.includes(r) && !upgrades.has(r));
    expect({ missing, extra }).toEqual({ missing: [], extra: [] });
  });

  it('gives every path parameter a schema, every operation an id, a tag and an answer', () => {
    const doc = openApiDocument();
    const ids = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths ?? {})) {
      const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const op of Object.values(item as Record<string, Record<string, unknown>>)) {
        const params = (
          (op.parameters ?? []) as Array<{ in: string; name: string; schema?: unknown }>
        ).filter((p) => p.in === 'path');
        expect(params.map((p) => p.name).sort()).toEqual([...names].sort());
        for (const p of params) expect(p.schema).toBeDefined();
        expect(typeof op.operationId).toBe('string');
        expect(ids.has(op.operationId as string)).toBe(false);
        ids.add(op.operationId as string);
        expect(op.tags).toHaveLength(1);
        expect(Object.keys(op.responses as object).length).toBeGreaterThan(0);
      }
    }
    expect(ids.size).toBe(ROUTES.length);
  });

  it('documents the error shape on authenticated routes (401, 429) and on JSON bodies (400)', () => {
    const doc = openApiDocument() as unknown as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>
      >;
    };
    const create = doc.paths['/v1/workspaces']!.post!.responses;
    for (const s of ['400', '401', '403', '413', '415', '429'])
      expect(create[s]?.content?.['application/json']?.schema).toEqual({
        $ref: '#/components/schemas/Error',
      });
    expect(doc.paths['/healthz']!.get!.responses['401']).toBeUndefined();
    // A path parameter can be a %-escape express cannot decode: 400 (test/integration/bad-input.test.ts).
    expect(doc.paths['/v1/workspaces/{id}']!.get!.responses['400']).toBeDefined();
    expect(doc.paths['/v1/workspaces/{id}']!.get!.responses.default).toBeDefined();
  });
});

describe('the response check', () => {
  it('finds operations by concrete path, literal segments first', () => {
    expect(
      findOperation('GET', '/v1/workspaces/0123456789abcdef/files/content?root=/workspace&path=a')
        .operationId,
    ).toBe('readFile');
    expect(findOperation('DELETE', '/v1/workspaces/0123456789abcdef/secrets/API_KEY').operationId).toBe(
      'deleteSecret',
    );
    expect(() => findOperation('GET', '/v1/nowhere')).toThrow(/not in the OpenAPI route table/);
  });

  it('accepts documented answers and refuses undocumented fields, statuses and shapes', () => {
    const path = '/v1/workspaces/0123456789abcdef/budget';
    checkResponse('GET', path, { status: 200, body: { limitCents: null, spentCents: 0 } });
    checkResponse('GET', path, {
      status: 404,
      body: { error: { code: 'not_found', message: 'workspace not found' } },
    });
    expect(() =>
      checkResponse('GET', path, { status: 200, body: { limitCents: 5, spentCents: 0, extra: 1 } }),
    ).toThrow(/does not match getBudget/);
    expect(() =>
      checkResponse('GET', path, { status: 200, body: { limitCents: 'x', spentCents: 0 } }),
    ).toThrow();
    expect(() => checkResponse('GET', path, { status: 418, body: null })).toThrow(/status not documented/);
    expect(() => checkResponse('GET', path, { status: 404, body: { error: { code: 'not_found' } } })).toThrow(
      /does not match/,
    );
    checkResponse('PUT', '/v1/workspaces/0123456789abcdef/secrets/A', { status: 204, body: null });
    // An unknown route: only the app's 404 with the Error shape.
    checkResponse('GET', '/v1/nowhere', {
      status: 404,
      body: { error: { code: 'not_found', message: 'no route' } },
    });
    expect(() => checkResponse('GET', '/v1/nowhere', { status: 200, body: {} })).toThrow(
      /not in the OpenAPI/,
    );
  });
});

describe('/openapi.json and /docs', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer(createApp(fakeDeps));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('serves the document without a token', async () => {
    const res = await fetch(`${base}/openapi.json`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(openApiDocument())));
  });

  it('serves Swagger UI from the installed package, pointed at /openapi.json', async () => {
    const page = await fetch(`${base}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain("url: '/openapi.json'");
    const scripts = [...html.matchAll(/(?:src|href)="(\/docs\/[^"]+)"/g)].map((m) => m[1]!);
    expect(scripts).toEqual(expect.arrayContaining(['/docs/swagger-ui-bundle.js', '/docs/swagger-ui.css']));
    for (const asset of scripts) {
      const res = await fetch(`${base}${asset}`);
      expect(res.status, asset).toBe(200);
      expect((await res.arrayBuffer()).byteLength, asset).toBeGreaterThan(0);
    }
    // The package's own demo page (it points at a remote petstore) is not served.
    expect((await fetch(`${base}/docs/index.html`)).status).toBe(404);
    expect((await fetch(`${base}/docs/swagger-initializer.js`)).status).toBe(404);
  });

  it('serves /docs under a CSP: its own scripts (the inline one by hash), requests here only, never framed', async () => {
    const page = await fetch(`${base}/docs`);
    const csp = page.headers.get('content-security-policy') ?? '';
    const directives = new Map(
      csp.split(';').map((d) => {
        const [name = '', ...values] = d.trim().split(/\s+/);
        return [name, values] as const;
      }),
    );
    expect(directives.get('default-src')).toEqual(["'none'"]);
    expect(directives.get('connect-src')).toEqual(["'self'"]);
    expect(directives.get('frame-ancestors')).toEqual(["'none'"]);
    const html = await page.text();
    const inline = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
    expect(inline).toHaveLength(1);
    const hash = `'sha256-${createHash('sha256').update(inline[0]!).digest('base64')}'`;
    expect(directives.get('script-src')).toEqual(["'self'", hash]);
  });
});
