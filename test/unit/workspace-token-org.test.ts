/**
 * A workspace token stops with its org: the org-delete cascade reaches each workspace later (and
 * may wait on Temporal), but from the moment the org is deleted its agents can no longer call the
 * A2A proxy, MCP, the registry or the files API as that workspace. Real (embedded) PostgreSQL.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/database.js';
import { lookupWorkspaceToken, mintWorkspaceToken } from '../../src/db/tokens.js';
import { newId } from '../../src/security/tokens.js';
import { insertBareWorkspace } from '../support/db-rows.js';

let dataDir: string;
let db: Database;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'wo-token-org-'));
  db = await openDatabase({ dataDir });
});

afterAll(async () => {
  await db?.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function workspaceWithToken(): Promise<{ orgId: string; id: string; token: string }> {
  const orgId = newId();
  const id = newId();
  await db.pool.query('INSERT INTO orgs (id, name) VALUES ($1, $2)', [orgId, `org-${orgId}`]);
  await insertBareWorkspace(db.pool, { id, orgId, name: 'alpha' });
  return { orgId, id, token: await mintWorkspaceToken(db.pool, id, 1) };
}

describe('workspace token of a deleted org', () => {
  it('is refused as soon as the org is deleted, before its workspace is', async () => {
    const a = await workspaceWithToken();
    const b = await workspaceWithToken();
    expect(await lookupWorkspaceToken(db.pool, a.token)).toEqual({ workspaceId: a.id, generation: 1 });

    await db.pool.query('UPDATE orgs SET deleted_at = now() WHERE id = $1', [a.orgId]);
    expect(await lookupWorkspaceToken(db.pool, a.token)).toBeNull();
    // Another org's workspace is untouched.
    expect(await lookupWorkspaceToken(db.pool, b.token)).toEqual({ workspaceId: b.id, generation: 1 });
  });
});
