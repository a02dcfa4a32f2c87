/**
 * Which deleted orgs the orphan sweep starts a cascade for (deletedOrgsWithWorkspaces), on real
 * (embedded) PostgreSQL: deleted a minute ago or more, with a workspace short of `deleted`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/database.js';
import { deletedOrgsWithWorkspaces } from '../../src/db/sweeps.js';
import { newId } from '../../src/security/tokens.js';
import { insertBareWorkspace } from '../support/db-rows.js';

let dataDir: string;
let db: Database;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'wo-deleted-orgs-'));
  db = await openDatabase({ dataDir });
});

afterAll(async () => {
  await db?.close();
  await rm(dataDir, { recursive: true, force: true });
});

/** An org deleted `deletedAgo` ago (null: live) with workspaces of the given statuses. */
async function org(deletedAgo: string | null, statuses: string[]): Promise<string> {
  const id = newId();
  await db.pool.query(`INSERT INTO orgs (id, name, deleted_at) VALUES ($1, $1, now() - $2::interval)`, [
    id,
    deletedAgo,
  ]);
  for (const status of statuses) {
    const ws = newId();
    await insertBareWorkspace(db.pool, { id: ws, orgId: id, name: `w-${ws}` });
    await db.pool.query('UPDATE workspaces SET status = $2 WHERE id = $1', [ws, status]);
  }
  return id;
}

describe('deletedOrgsWithWorkspaces', () => {
  it('lists deleted orgs past the grace that still hold a workspace, counted, at most the limit', async () => {
    const lost = await org('2 minutes', ['online', 'failed', 'deleted']);
    const lostToo = await org('1 hour', ['deleting']);
    await org('5 seconds', ['online']); // its API may still be starting the cascade
    await org('2 minutes', ['deleted', 'deleted']); // nothing left to delete
    await org('2 minutes', []);
    await org(null, ['online']); // not deleted

    const found = await deletedOrgsWithWorkspaces(db.pool, 60_000, 10);
    expect(found.sort((a, b) => a.orgId.localeCompare(b.orgId))).toEqual(
      [
        { orgId: lost, workspaces: 2 },
        { orgId: lostToo, workspaces: 1 },
      ].sort((a, b) => a.orgId.localeCompare(b.orgId)),
    );
    expect(await deletedOrgsWithWorkspaces(db.pool, 60_000, 1)).toHaveLength(1);
  });
});
