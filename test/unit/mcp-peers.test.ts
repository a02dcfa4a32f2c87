/**
 * MCP over a real (embedded) PostgreSQL. `list_peers`: an org's deleted workspaces stay as rows, and
 * a busy org deletes many; the peers an agent is told of must be its live ones however many deleted
 * rows are newer than them. A deleted org: its workspaces' tokens stop at once, before the cascade
 * reaches each workspace (which may take long, or wait for Temporal).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiDeps } from '../../src/api/deps.js';
import { authenticate } from '../../src/api/auth.js';
import { errorHandler } from '../../src/api/errors.js';
import { mcpRouter } from '../../src/api/routes/mcp.js';
import { openDatabase, type Database } from '../../src/db/database.js';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import { newId } from '../../src/security/tokens.js';
import { insertBareWorkspace } from '../support/db-rows.js';

let dataDir: string;
let db: Database;
let server: Server;
let url: string;
const ORG = newId();
const CALLER = newId();
const PEER = newId();

async function addWorkspace(id: string, name: string, status: string): Promise<void> {
  await insertBareWorkspace(db.pool, { id, orgId: ORG, name });
  await db.pool.query('UPDATE workspaces SET status = $2 WHERE id = $1', [id, status]);
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'wo-mcp-peers-'));
  db = await openDatabase({ dataDir });
  await db.pool.query('INSERT INTO orgs (id, name) VALUES ($1, $2)', [ORG, 'acme']);
  await addWorkspace(PEER, 'peer', 'online');
  await addWorkspace(CALLER, 'caller', 'online');
  // More deleted workspaces, all newer than the live ones, than list_peers names at most (500).
  await db.pool.query(
    `INSERT INTO workspaces (id, org_id, name, backend, runtime, config, config_hash, status, workflow_id, created_at)
     SELECT 'gone' || g, $1, 'gone-' || g, 'docker', 'echo', '{}', 'h', 'deleted', 'ws-gone' || g,
            now() + g * interval '1 second'
     FROM generate_series(1, 600) g`,
    [ORG],
  );
  const app = express();
  // The real authentication: a deleted org's tokens are refused there, for every route.
  const token = await mintWorkspaceToken(db.pool, CALLER, 0);
  app.use((req, _res, next) => {
    req.headers.authorization = `Bearer ${token}`;
    next();
  });
  app.use(authenticate(db.pool, 'admin-token-not-used-here'));
  app.use(express.json());
  app.use('/v1/mcp', mcpRouter({ db: db.pool, log: { error: () => {} } } as unknown as ApiDeps));
  app.use(errorHandler({ error: () => {}, warn: () => {} }));
  server = app.listen(0, '127.0.0.1');
  await new Promise((ok) => server.once('listening', ok));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/mcp`;
}, 120_000);

afterAll(async () => {
  await new Promise<void>((ok) => (server ? server.close(() => ok()) : ok()));
  await db?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const listPeers = () =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'list_peers', arguments: {} },
    }),
  });

describe('MCP tools', () => {
  it('names the live peers even behind more than 500 newer deleted workspaces', async () => {
    const res = await listPeers();
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      result: { structuredContent: { peers: Array<{ id: string; name: string; status: string }> } };
    };
    expect(body.result.structuredContent.peers).toEqual([
      { id: PEER, name: 'peer', role: 'echo', status: 'online' },
    ]);
  });

  // Last: it deletes the org.
  it('refuses a workspace token of a deleted org at once, while its workspaces are still online', async () => {
    await db.pool.query('UPDATE orgs SET deleted_at = now() WHERE id = $1', [ORG]);
    const res = await listPeers();
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: { code: 'unauthorized', message: 'invalid token' } });
  });
});
