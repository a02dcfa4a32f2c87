/**
 * fast-check arbitraries of malformed requests for the fuzz test: every route the routers declare,
 * with bad path segments, query strings, headers, bodies, and raw WebSocket upgrades and frames.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { REPO_ROOT } from './stack.js';
import { wsFrame } from './raw-http.js';

export interface Route {
  method: string;
  /** Full path template, `:name` for parameters. */
  path: string;
}

/** Where app.ts mounts each router; a router missing here fails the test (so it gets fuzzed). */
const MOUNTS: Record<string, string> = {
  opsRouter: '',
  orgsRouter: '/v1/orgs',
  orgSecretsRouter: '/v1/orgs',
  sweepsRouter: '/v1/admin/sweeps',
  templatesRouter: '/v1/templates',
  pluginCatalogRouter: '/v1/plugins',
  workspacePluginsRouter: '/v1/workspaces',
  workspacesRouter: '/v1/workspaces',
  filesRouter: '/v1/workspaces',
  a2aRouter: '/v1/workspaces',
  activityRouter: '/v1/workspaces',
  secretsRouter: '/v1/workspaces',
  memoriesRouter: '/v1/workspaces',
  budgetRouter: '/v1/workspaces',
  schedulesRouter: '/v1/workspaces',
  registryRouter: '/v1/registry',
  consoleRouter: '/ui',
  mcpRouter: '/v1/mcp',
};

interface RouterLike {
  stack: Array<{ route?: { path: string; methods: Record<string, boolean> } }>;
}

/** Every route of every router in src/api/routes, read from the routers themselves. */
export async function enumerateRoutes(): Promise<Route[]> {
  const dir = path.join(REPO_ROOT, 'src/api/routes');
  const routes: Route[] = [];
  // Building a router only closes over its deps; nothing is called until a request arrives.
  const log = { child: () => log };
  const deps = { settings: {}, log } as never;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    const mod = (await import(path.join(dir, file))) as Record<string, unknown>;
    for (const [name, value] of Object.entries(mod)) {
      if (!name.endsWith('Router') || typeof value !== 'function') continue;
      const mount = MOUNTS[name];
      if (mount === undefined) throw new Error(`fuzz: router ${name} (${file}) has no mount in MOUNTS`);
      const router = (value as (d: never) => RouterLike)(deps);
      for (const layer of router.stack) {
        if (!layer.route) continue;
        for (const method of Object.keys(layer.route.methods)) {
          if (method === '_all') continue;
          routes.push({
            method: method.toUpperCase(),
            path: `${mount}${layer.route.path}`.replace(/\/$/, '') || '/',
          });
        }
      }
    }
  }
  routes.push({ method: 'GET', path: '/v1/workspaces/:id/terminal' });
  return routes;
}

export interface Identities {
  adminToken: string;
  keyA: string;
  keyB: string;
  /** A workspace token of A's workspace. */
  wsTokenA: string;
  workspaceA: string;
  workspaceB: string;
  orgA: string;
  orgB: string;
}

export type TokenLabel = 'admin' | 'A' | 'B' | 'wsA' | 'none' | 'garbage';

export interface FuzzRequest {
  kind: 'http' | 'ws';
  label: string;
  token: TokenLabel;
  /** The raw bytes to send: the head (and body), then for `ws` the frames after it. */
  chunks: Buffer[];
  /** What the request itself carried (ids it names are no leak when echoed). */
  text: string;
  /**
   * How long to wait for the server: short where the request is incomplete on purpose (the server
   * rightly waits for the rest) or opens a stream/session that stays open.
   */
  timeoutMs: number;
}

const hexId = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 16, maxLength: 16 });

const nasty = fc.oneof(
  fc.constantFrom(
    '',
    '%',
    '%zz',
    '%E0%A4%A',
    '%00',
    '%C0%AE%C0%AE',
    '..',
    '%2e%2e',
    '.',
    '%2F',
    '%5C',
    '\\..\\',
    'a%00b',
    '%F0%9F%98',
    '%ED%A0%80',
    '~',
    '*',
    "'; DROP TABLE workspaces; --",
    '${jndi:ldap://x}',
    '%25',
    '%uD800',
    'x'.repeat(2000),
  ),
  fc.string({ maxLength: 20 }).map((s) => encodeURIComponent(s)),
  fc.string({ unit: 'binary', maxLength: 12 }).map((s) => encodeURIComponent(s)),
  hexId,
  hexId.map((s) => s.toUpperCase()),
  fc.integer().map(String),
);

function idArb(ids: Identities) {
  return fc.oneof(
    { arbitrary: fc.constant(ids.workspaceA), weight: 5 },
    { arbitrary: fc.constant(ids.workspaceB), weight: 2 },
    { arbitrary: fc.constant(ids.orgA), weight: 1 },
    { arbitrary: nasty, weight: 6 },
  );
}

const paramArb = (ids: Identities, name: string) => {
  if (name === 'id') return idArb(ids);
  if (name === 'key') return fc.oneof(fc.constantFrom('API_KEY', 'lower', 'A'.repeat(200), '_', '9X'), nasty);
  return fc.oneof(fc.constantFrom('health', 'orphans', 'budget', 'x'), nasty);
};

const QUERY_NAMES = [
  'root',
  'path',
  'depth',
  'limit',
  'cursor',
  'status',
  'backend',
  'before_ts',
  'peer_id',
  'type',
  'token',
  'cols',
  'rows',
  'scope',
];

const queryValue = (ids: Identities) =>
  fc.oneof(
    fc.constantFrom(
      '/configs',
      '/workspace',
      '../../etc/passwd',
      '/etc',
      '1',
      '0',
      '-1',
      '5',
      '6',
      '1e3',
      '99999999999999999999',
      '3000000000',
      'NaN',
      'online',
      'docker',
      'ec2',
      '2024-02-30T00:00:00Z',
      '2024-02-29T00:00:00Z',
      '0000-01-01T00:00:00Z',
      '2024-01-01T25:00:00+99:99',
      'a%00b',
      '%zz',
      '%',
      '',
      'd3M6eHh4',
    ),
    fc.constant(ids.workspaceB),
    fc.constant(ids.workspaceA),
    nasty,
  );

const queryArb = (ids: Identities) =>
  fc.oneof(
    { arbitrary: fc.constant(''), weight: 3 },
    {
      arbitrary: fc
        .array(
          fc.tuple(
            fc.oneof(
              fc.constantFrom(...QUERY_NAMES),
              fc.constantFrom('a[b]', '__proto__', '%zz', 'x'),
              nasty,
            ),
            queryValue(ids),
          ),
          { minLength: 1, maxLength: 5 },
        )
        .map((pairs) => `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`),
      weight: 5,
    },
    {
      arbitrary: fc.constantFrom('?', '?&&', '?=', '?limit', '?%', '?a=%', `?${'x='.repeat(500)}`),
      weight: 1,
    },
  );

/** The target path of a route with its parameters filled, then maybe mangled (`//`, `..`, trailing). */
function targetArb(ids: Identities, route: Route) {
  const names = [...route.path.matchAll(/:(\w+)/g)].map((m) => m[1]!);
  return fc
    .tuple(
      fc.tuple(...names.map((n) => paramArb(ids, n))),
      fc.constantFrom(
        'none',
        'none',
        'none',
        'double-slash',
        'dot-dot',
        'trailing',
        'prefix-slash',
        'case',
        'encoded',
      ),
      queryArb(ids),
    )
    .map(([values, mangle, query]) => {
      let i = 0;
      let p = route.path.replace(/:(\w+)/g, () => String(values[i++]));
      switch (mangle) {
        case 'double-slash':
          p = p.replace(/\//g, '//');
          break;
        case 'dot-dot':
          p = `${p}/../..${p}`;
          break;
        case 'trailing':
          p = `${p}/`;
          break;
        case 'prefix-slash':
          p = `/${p}`;
          break;
        case 'case':
          p = p.toUpperCase();
          break;
        case 'encoded':
          p = p.replace(/\//g, '%2F').replace(/^%2F/, '/');
          break;
      }
      return p + query;
    });
}

function tokenArb() {
  return fc.constantFrom<TokenLabel>('admin', 'A', 'A', 'A', 'B', 'wsA', 'none', 'garbage');
}

function authHeader(ids: Identities, token: TokenLabel) {
  const value: Record<TokenLabel, string> = {
    admin: ids.adminToken,
    A: ids.keyA,
    B: ids.keyB,
    wsA: ids.wsTokenA,
    none: '',
    garbage: '',
  };
  if (token === 'none') return fc.constant<string | null>(null);
  if (token === 'garbage')
    return fc.oneof(
      fc.constantFrom(
        'Bearer',
        'Bearer ',
        'Basic dXNlcjpwYXNz',
        'Bearer wo_org_notarealkeynotarealkeynotarealk',
        'Bearer wo_ws_' + 'A'.repeat(32),
        'Bearer wo_boot_' + 'x'.repeat(32),
        'Bearer wo_org_%00',
        `Bearer ${'x'.repeat(8000)}`,
        'Bearer a b',
        'bearer\tx',
      ),
      fc.string({ unit: 'grapheme-ascii', maxLength: 60 }).map((s) => `Bearer ${s.replace(/[\r\n]/g, '')}`),
    );
  return fc.constantFrom(`Bearer ${value[token]}`, `bearer   ${value[token]}`, `Bearer ${value[token]} `);
}

const CONTENT_TYPES = [
  'application/json',
  'application/json',
  'application/json; charset=utf-16',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  'application/json; charset=nope',
  '',
];

function deep(n: number): string {
  return '['.repeat(n) + ']'.repeat(n);
}

/** Field values that are wrong in type, size, encoding or range. */
const badValue = fc.oneof(
  fc.constantFrom<unknown>(
    null,
    true,
    0,
    -1,
    1.5,
    3000000000,
    2 ** 31,
    2 ** 53,
    -(2 ** 63),
    1e308,
    'a\u0000b',
    '\ud800',
    '',
    ' ',
    'x'.repeat(300),
    [],
    {},
    { $gt: '' },
    ['a\u0000'],
    '2024-02-30T00:00:00Z',
    'docker',
    'ec2',
    '../..',
  ),
  fc.jsonValue({ maxDepth: 3 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
);

const FIELDS = [
  'name',
  'backend',
  'template',
  'runtime',
  'config',
  'secrets',
  'budgetLimitCents',
  'initialMemories',
  'content',
  'scope',
  'limitCents',
  'parentId',
  'orgId',
  'restart',
  'value',
  'workspaceId',
  'generation',
  'configHash',
  'agentCard',
  'phase',
  'message',
  'ts',
  'activeTasks',
  'errorRate',
  'uptimeSeconds',
  'spentCents',
  'runtimeState',
  'jsonrpc',
  'method',
  'params',
  'id',
];

/** A body: mostly a near-valid object with wrong fields, else raw junk. */
function bodyArb(ids: Identities) {
  const nearValid = fc
    .tuple(
      fc.dictionary(fc.constantFrom(...FIELDS), badValue, { maxKeys: 4 }),
      fc.constantFrom<Record<string, unknown>>(
        // A create that would be valid but for one of the fields above; the org quota caps real creates.
        { name: 'fuzz', backend: 'docker' },
        { name: 'fuzz', backend: 'ec2' },
        { workspaceId: ids.workspaceA, generation: 1, configHash: 'h' },
        { jsonrpc: '2.0', method: 'message/send', id: 1 },
        { config: { x: 1 } },
        {},
      ),
    )
    .map(([bad, base]) => JSON.stringify({ ...base, ...bad }));
  return fc.oneof(
    { arbitrary: nearValid, weight: 6 },
    { arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? 'null'), weight: 2 },
    {
      arbitrary: fc.constantFrom(
        '{"name": ',
        '{',
        'null',
        '"str"',
        '[]',
        '1e999999',
        '{"a":1,"a":2}',
        '\u0000',
        '{"name":"\\u0000"}',
        '{"name":"\\ud800","backend":"docker"}',
        '\xff\xfe{}',
        deep(5000),
        `{"config":${deep(200)}}`,
        '{"__proto__":{"polluted":true},"name":"x","backend":"docker"}',
        'x'.repeat(300_000),
      ),
      weight: 2,
    },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 200 }), weight: 1 },
    { arbitrary: fc.constant(''), weight: 1 },
  );
}

/** A header block line, maybe with an Upgrade header on a plain route. */
const extraHeaders = fc.oneof(
  { arbitrary: fc.constant<Array<[string, string]>>([]), weight: 6 },
  {
    arbitrary: fc.constant<Array<[string, string]>>([
      ['Connection', 'Upgrade'],
      ['Upgrade', 'websocket'],
      ['Sec-WebSocket-Version', '13'],
      ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
    ]),
    weight: 2,
  },
  {
    arbitrary: fc.constantFrom<Array<[string, string]>>(
      [
        ['Connection', 'Upgrade, keep-alive'],
        ['Upgrade', 'h2c'],
      ],
      [['Upgrade', 'websocket']],
      [['Accept', 'text/event-stream']],
      [['Content-Encoding', 'gzip']],
      [['Expect', '100-continue']],
      [['X-Forwarded-For', '1.2.3.4']],
      [['Host', 'evil.example']],
      [['Transfer-Encoding', 'chunked']],
    ),
    weight: 2,
  },
);

function head(method: string, target: string, headers: Array<[string, string]>): string {
  const lines = [`${method} ${target} HTTP/1.1`];
  if (!headers.some(([k]) => k.toLowerCase() === 'host')) lines.push('Host: 127.0.0.1');
  for (const [k, v] of headers) lines.push(`${k}: ${v}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

function httpArb(ids: Identities, routes: Route[]) {
  return fc
    .tuple(
      fc.constantFrom(...routes),
      fc.oneof(
        { arbitrary: fc.constant<string | null>(null), weight: 8 },
        {
          arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'TRACE'),
          weight: 2,
        },
      ),
      tokenArb(),
    )
    .chain(([route, methodOverride, token]) =>
      fc
        .record({
          target: targetArb(ids, route),
          auth: authHeader(ids, token),
          contentType: fc.constantFrom(...CONTENT_TYPES),
          body: bodyArb(ids),
          extra: extraHeaders,
        })
        .map(({ target, auth, contentType, body, extra }): FuzzRequest => {
          const method = methodOverride ?? route.method;
          const withBody = !['GET', 'HEAD', 'OPTIONS', 'TRACE'].includes(method) || body.length < 50;
          const payload = withBody ? Buffer.from(body, 'latin1') : Buffer.alloc(0);
          const chunked = extra.some(([k]) => k === 'Transfer-Encoding');
          const headers: Array<[string, string]> = [['Connection', 'close'], ...extra];
          if (auth !== null) headers.push(['Authorization', auth]);
          if (contentType && payload.length) headers.push(['Content-Type', contentType]);
          let bytes: Buffer;
          if (chunked) {
            // A chunked body whose chunk size lies about half the time.
            const size = (payload.length + (payload.length % 2)).toString(16);
            bytes = Buffer.concat([
              Buffer.from(head(method, target, headers)),
              Buffer.from(`${size}\r\n`),
              payload,
              Buffer.from('\r\n0\r\n\r\n'),
            ]);
          } else {
            if (payload.length || method !== 'GET') headers.push(['Content-Length', String(payload.length)]);
            bytes = Buffer.concat([Buffer.from(head(method, target, headers)), payload]);
          }
          return {
            kind: 'http',
            label: `${method} ${route.path}`,
            token,
            chunks: [bytes],
            text: bytes.toString('latin1'),
            timeoutMs: chunked || route.path.endsWith('/events') ? 1500 : 5000,
          };
        }),
    );
}

const frameArb = fc.oneof(
  fc
    .record({
      opcode: fc.constantFrom(0, 1, 2, 3, 7, 8, 9, 10, 11, 15),
      payload: fc.oneof(
        fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
        fc
          .constantFrom(
            '{"type":"resize","cols":0,"rows":-1}',
            '{"type":"resize","cols":1e9,"rows":"x"}',
            '{"type":"resize"}',
            'not json',
            '\u0000',
            '{"type":"exec"}',
          )
          .map((s) => Buffer.from(s)),
      ),
      masked: fc.oneof(
        { arbitrary: fc.constant(true), weight: 4 },
        { arbitrary: fc.constant(false), weight: 1 },
      ),
      fin: fc.boolean(),
      rsv: fc.constantFrom(0, 0, 0, 1, 4, 7),
    })
    .map((f) => wsFrame(f)),
  // A declared length far beyond what follows (and beyond maxPayload).
  fc.constant(Buffer.from([0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4])),
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((a) => Buffer.from(a)),
);

function wsArb(ids: Identities) {
  return fc
    .record({
      id: idArb(ids),
      token: tokenArb(),
      via: fc.constantFrom('header', 'query', 'both'),
      query: queryArb(ids),
      headers: fc.constantFrom<Array<[string, string]>>(
        [
          ['Connection', 'Upgrade'],
          ['Upgrade', 'websocket'],
          ['Sec-WebSocket-Version', '13'],
          ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
        ],
        [
          ['Connection', 'Upgrade'],
          ['Upgrade', 'websocket'],
          ['Sec-WebSocket-Version', '8'],
          ['Sec-WebSocket-Key', 'short'],
        ],
        [
          ['Connection', 'Upgrade'],
          ['Upgrade', 'websocket'],
        ],
        [
          ['Connection', 'Upgrade'],
          ['Upgrade', 'websocket'],
          ['Sec-WebSocket-Version', '13'],
          ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
          ['Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits=99'],
        ],
      ),
      frames: fc.array(frameArb, { maxLength: 4 }),
    })
    .chain((r) =>
      authHeader(ids, r.token).map((auth): FuzzRequest => {
        const headers = [...r.headers];
        const tokenValue = auth?.replace(/^bearer\s+/i, '') ?? '';
        let query = r.query;
        if (auth !== null && r.via !== 'header')
          query = `${query ? `${query}&` : '?'}token=${encodeURIComponent(tokenValue)}`;
        if (auth !== null && r.via !== 'query') headers.push(['Authorization', auth]);
        const h = Buffer.from(head('GET', `/v1/workspaces/${r.id}/terminal${query}`, headers));
        return {
          kind: 'ws',
          label: 'WS /v1/workspaces/:id/terminal',
          token: r.token,
          chunks: [h, ...r.frames],
          text: h.toString('latin1'),
          timeoutMs: 1500,
        };
      }),
    );
}

/** Requests that are not HTTP at all, or barely: the server must answer 400 or close, and live on. */
const junkArb = fc
  .oneof(
    fc.constantFrom(
      'GET\r\n\r\n',
      'GET / HTTP/9.9\r\n\r\n',
      'GET /\u0000 HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET // HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      'GET http://[::1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
      'POST /v1/orgs HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
      'POST /v1/orgs HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      `GET /${'a'.repeat(20000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
      'GET / HTTP/1.1\r\nHost: x\r\nX: \u00ff\u0001\r\n\r\n',
      '\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003',
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
    ),
    fc.string({ unit: 'binary', maxLength: 300 }),
  )
  .map((s): FuzzRequest => ({
    kind: 'http',
    label: 'junk',
    token: 'none',
    chunks: [Buffer.from(s, 'latin1')],
    text: s,
    timeoutMs: 1500,
  }));

export function requestArb(ids: Identities, routes: Route[]): fc.Arbitrary<FuzzRequest> {
  return fc.oneof(
    { arbitrary: httpArb(ids, routes), weight: 16 },
    { arbitrary: wsArb(ids), weight: 3 },
    { arbitrary: junkArb, weight: 1 },
  );
}
