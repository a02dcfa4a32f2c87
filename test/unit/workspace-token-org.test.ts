/**
 * A workspace token stops with its org: the org-delete cascade reaches each workspace later (and
 * may wait on Temporal), but from the moment the org is deleted its agents can no longer call the
 * A2A proxy, MCP, the registry or the files API as that workspace, and a generation still booting
 * there redeems no bootstrap token (its bundle carries the org's secrets). Real (embedded) PostgreSQL.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/database.js';
import {
  lookupBootstrapToken,
  lookupWorkspaceToken,
  mintBootstrapToken,
  mintWorkspaceToken,
  redeemBootstrapToken,
} from '../../src/db/tokens.js';
import { SecretBox } from '../../src/security/secrets.js';
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

describe('bootstrap token of a deleted org', () => {
  const box = new SecretBox(randomBytes(32).toString('base64'));

  it('is neither looked up nor redeemed once the org is deleted', async () => {
    const a = await workspaceWithToken();
    const b = await workspaceWithToken();
    const bootA = await mintBootstrapToken(db.pool, a.id, 1, 60_000);
    const bootB = await mintBootstrapToken(db.pool, b.id, 1, 60_000);
    expect(await lookupBootstrapToken(db.pool, bootA)).toEqual({ workspaceId: a.id, generation: 1 });

    await db.pool.query('UPDATE orgs SET deleted_at = now() WHERE id = $1', [a.orgId]);
    expect(await lookupBootstrapToken(db.pool, bootA)).toBeNull();
    expect(await redeemBootstrapToken(db.pool, box, bootA)).toBeNull();
    // No workspace token was minted for it.
    const minted = await db.pool.query(
      'SELECT count(*)::int AS n FROM workspace_tokens WHERE workspace_id = $1',
      [a.id],
    );
    expect(minted.rows[0].n).toBe(1);
    // Another org's bootstrap is untouched.
    expect(await redeemBootstrapToken(db.pool, box, bootB)).toMatchObject({
      workspaceId: b.id,
      generation: 1,
    });
  });

  it('is not redelivered in its re-fetch window once the org is deleted', async () => {
    const a = await workspaceWithToken();
    const boot = await mintBootstrapToken(db.pool, a.id, 1, 60_000);
    const first = await redeemBootstrapToken(db.pool, box, boot);
    expect(first).toMatchObject({ workspaceId: a.id, generation: 1 });
    // A lost answer is fetched again with the same token while the org lives.
    expect((await redeemBootstrapToken(db.pool, box, boot))?.workspaceToken).toBe(first!.workspaceToken);

    await db.pool.query('UPDATE orgs SET deleted_at = now() WHERE id = $1', [a.orgId]);
    expect(await lookupBootstrapToken(db.pool, boot)).toBeNull();
    expect(await redeemBootstrapToken(db.pool, box, boot)).toBeNull();
  });
});
