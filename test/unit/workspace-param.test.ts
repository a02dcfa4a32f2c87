/**
 * The `:id` workspace loader and its access rules, over a fake store: which principal sees which
 * workspace, and the exact status and message of every refusal, through a real Express router.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { Router } from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/api/auth.js';
import type { ProxyView } from '../../src/db/proxy-view.js';
import type { WorkspaceRow } from '../../src/db/workspaces.js';
import { errorHandler } from '../../src/api/errors.js';
import {
  BUDGET_WRITE,
  MANAGE,
  MANAGE_LIVE,
  PROXY,
  lookupProxyWorkspace,
  lookupWorkspace,
  readOwn,
  workspaceOf,
  workspaceParam,
  writeOwn,
  type Access,
  type FindWorkspace,
} from '../../src/api/workspace-param.js';

const ORG_A = 'a000000000000001';
const ORG_B = 'b000000000000001';
const LIVE = '1000000000000001'; // org A
const PEER = '1000000000000002'; // org A
const GONE = '1000000000000003'; // org A, deleted
const OTHER = '2000000000000001'; // org B
const UNKNOWN = '3000000000000001';

function row(id: string, orgId: string, status: WorkspaceRow['status']): WorkspaceRow {
  // Only the fields the loader and rules read matter; the rest are there for the type.
  return { id, orgId, status, name: `ws-${id}` } as WorkspaceRow;
}

const store = new Map<string, WorkspaceRow>([
  [LIVE, row(LIVE, ORG_A, 'online')],
  [PEER, row(PEER, ORG_A, 'online')],
  [GONE, row(GONE, ORG_A, 'deleted')],
  [OTHER, row(OTHER, ORG_B, 'online')],
]);

const queries: Array<[string, string | null]> = [];
const find: FindWorkspace = (id, orgId) => {
  queries.push([id, orgId]);
  const w = store.get(id);
  return Promise.resolve(w && (orgId === null || w.orgId === orgId) ? w : null);
};

const admin: Principal = { kind: 'admin' };
const orgA: Principal = { kind: 'org', orgId: ORG_A };
const orgB: Principal = { kind: 'org', orgId: ORG_B };
const wsLive: Principal = { kind: 'workspace', workspaceId: LIVE, generation: 1 };
const wsGone: Principal = { kind: 'workspace', workspaceId: GONE, generation: 1 };
const boot: Principal = { kind: 'bootstrap', token: 't', workspaceId: LIVE, generation: 1 };

const READ = readOwn('this token cannot read activity');
const WRITE = writeOwn('this token cannot use memories');
const rules: Record<string, Access> = { MANAGE, MANAGE_LIVE, READ, WRITE, BUDGET_WRITE, PROXY };
const principals: Record<string, Principal> = { admin, orgA, orgB, wsLive, wsGone, boot };

let server: Server;
let base: string;
/** Store reads by the loader (one per request for an org key). */
let loads = 0;

beforeAll(async () => {
  const app = express();
  app.use((req, res, next) => {
    res.locals.principal = principals[req.get('x-principal') ?? ''];
    next();
  });
  // The real loader over the fake store; each lookup counted, to see it runs once per request.
  const counted = workspaceParam((id, orgId) => {
    loads++;
    return find(id, orgId);
  });
  const first = Router();
  first.param('id', counted);
  // A router whose route names `:id` but passes the request on, as the mounted routers can.
  first.get('/:id/pass/:rule', (_req, _res, next) => next());
  const second = Router();
  second.param('id', counted);
  second.get('/:id/:verb/:rule', (req, res) => {
    const w = workspaceOf(res, rules[req.params.rule]!);
    res.json({ id: w.id });
  });
  app.use('/w', first, second);
  app.use(errorHandler({ error: () => undefined, warn: () => undefined }));
  server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function call(principal: string, id: string, rule: string, verb = 'get') {
  const res = await fetch(`${base}/w/${id}/${verb}/${rule}`, { headers: { 'x-principal': principal } });
  const body = (await res.json()) as { id?: string; error?: { code: string; message: string } };
  return body.error ? `${res.status} ${body.error.message}` : `${res.status} ${body.id}`;
}

const ok = (id: string) => `200 ${id}`;
const NF = '404 workspace not found';
const MANAGE_403 = '403 this token cannot manage workspaces';

// [principal, id, rule, expected]
const matrix: Array<[string, string, string, string]> = [
  // Management routes: org keys in their own org, the admin anywhere; tokens refused before the id.
  ['orgA', LIVE, 'MANAGE', ok(LIVE)],
  ['orgA', GONE, 'MANAGE', ok(GONE)],
  ['orgA', GONE, 'MANAGE_LIVE', NF],
  ['orgA', OTHER, 'MANAGE', NF],
  ['orgB', LIVE, 'MANAGE', NF],
  ['orgA', UNKNOWN, 'MANAGE', NF],
  ['orgA', 'not-an-id', 'MANAGE', NF],
  ['admin', OTHER, 'MANAGE', ok(OTHER)],
  ['admin', GONE, 'MANAGE', ok(GONE)],
  ['admin', GONE, 'MANAGE_LIVE', NF],
  ['wsLive', LIVE, 'MANAGE', MANAGE_403],
  ['wsLive', 'not-an-id', 'MANAGE', MANAGE_403],
  ['boot', 'not-an-id', 'MANAGE_LIVE', MANAGE_403],
  // A workspace token's own workspace only, the id checked before the token's kind.
  ['wsLive', LIVE, 'READ', ok(LIVE)],
  ['wsLive', PEER, 'READ', NF],
  ['wsLive', OTHER, 'READ', NF],
  ['wsLive', 'not-an-id', 'READ', NF],
  ['wsGone', GONE, 'READ', ok(GONE)],
  ['wsGone', GONE, 'WRITE', NF],
  ['wsLive', LIVE, 'WRITE', ok(LIVE)],
  ['orgA', GONE, 'READ', ok(GONE)],
  ['orgB', LIVE, 'READ', NF],
  ['admin', OTHER, 'WRITE', ok(OTHER)],
  ['boot', LIVE, 'READ', '403 this token cannot read activity'],
  ['boot', LIVE, 'WRITE', '403 this token cannot use memories'],
  ['boot', 'not-an-id', 'READ', NF],
  // A budget change: never by a workspace token, even its own; the id first.
  ['wsLive', LIVE, 'BUDGET_WRITE', '403 a workspace cannot change its own budget'],
  ['wsLive', OTHER, 'BUDGET_WRITE', '403 a workspace cannot change its own budget'],
  ['wsLive', 'not-an-id', 'BUDGET_WRITE', NF],
  ['boot', LIVE, 'BUDGET_WRITE', MANAGE_403],
  ['orgA', LIVE, 'BUDGET_WRITE', ok(LIVE)],
  ['orgA', GONE, 'BUDGET_WRITE', NF],
  // The A2A proxy: a workspace token reaches its org's workspaces, not another org's.
  ['wsLive', PEER, 'PROXY', ok(PEER)],
  ['wsLive', LIVE, 'PROXY', ok(LIVE)],
  ['wsLive', GONE, 'PROXY', ok(GONE)],
  ['wsLive', OTHER, 'PROXY', NF],
  ['wsLive', UNKNOWN, 'PROXY', NF],
  ['orgB', PEER, 'PROXY', NF],
  ['boot', 'not-an-id', 'PROXY', '403 this token cannot call agents'],
];

describe('workspace :id access', () => {
  it.each(matrix)('%s → %s under %s', async (principal, id, rule, expected) => {
    expect(await call(principal, id, rule)).toBe(expected);
  });

  it('loads the workspace once per request, however many routers name :id', async () => {
    const before = loads;
    expect(await call('orgA', LIVE, 'MANAGE', 'pass')).toBe(ok(LIVE));
    expect(loads - before).toBe(1);
  });
});

describe('lookupWorkspace', () => {
  it('reads a malformed id nowhere', async () => {
    queries.length = 0;
    expect(await lookupWorkspace(find, orgA, "1' OR '1'='1")).toEqual({
      id: "1' OR '1'='1",
      valid: false,
      row: null,
    });
    expect(queries).toEqual([]);
  });

  it("scopes an org key's lookup to its org in the store's query", async () => {
    queries.length = 0;
    expect((await lookupWorkspace(find, orgB, LIVE)).row).toBeNull();
    expect(queries).toEqual([[LIVE, ORG_B]]);
  });

  it("scopes a workspace token's peer lookup to its own workspace's org", async () => {
    queries.length = 0;
    expect((await lookupWorkspace(find, wsLive, OTHER)).row).toBeNull();
    expect(queries).toEqual([
      [LIVE, null],
      [OTHER, ORG_A],
    ]);
  });

  it('finds nothing for a bootstrap token, without a query', async () => {
    queries.length = 0;
    expect((await lookupWorkspace(find, boot, LIVE)).row).toBeNull();
    expect(queries).toEqual([]);
  });
});

describe("lookupProxyWorkspace (the A2A proxy's loader over views)", () => {
  /** Reads of the views store, one list of ids per call. */
  const reads: string[][] = [];
  const views = (ids: readonly string[]) => {
    reads.push([...ids]);
    const out = new Map<string, ProxyView>();
    for (const id of ids) {
      const w = store.get(id);
      if (w) out.set(id, w as unknown as ProxyView);
    }
    return Promise.resolve(out);
  };

  it('sees exactly what lookupWorkspace sees, for every principal and id', async () => {
    for (const [name, p] of Object.entries(principals)) {
      for (const id of [LIVE, PEER, GONE, OTHER, UNKNOWN, "1' OR '1'='1"]) {
        const full = await lookupWorkspace(find, p, id);
        const proxy = await lookupProxyWorkspace(views, p, id);
        expect({ valid: proxy.valid, row: proxy.row?.id ?? null }, `${name} → ${id}`).toEqual({
          valid: full.valid,
          row: full.row?.id ?? null,
        });
      }
    }
  });

  it("reads a workspace token's own row with the peer, so the proxy checks its caller without reading it again", async () => {
    reads.length = 0;
    const peer = await lookupProxyWorkspace(views, wsLive, PEER);
    expect(peer.row?.id).toBe(PEER);
    expect(peer.own?.id).toBe(LIVE);
    const self = await lookupProxyWorkspace(views, wsLive, LIVE);
    expect(self.row?.id).toBe(LIVE);
    expect(self.own).toBe(self.row);
    expect(reads).toEqual([[LIVE, PEER], [LIVE]]);
    // An own workspace that is gone is recorded as such (the proxy answers 401 from it).
    expect((await lookupProxyWorkspace(views, { ...wsLive, workspaceId: UNKNOWN }, PEER)).own).toBeNull();
  });
});
