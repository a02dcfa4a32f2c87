/**
 * The orphan sweep's activity retention against PostgreSQL: only rows older than the cut go, at
 * most the batch asked for, across workspaces, and the DELETE finds them through the
 * (workspace_id, ts) index rather than reading the whole table (there is no index on ts alone, on
 * purpose: every proxied call's INSERT would pay for it).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PRUNE_ACTIVITY_SQL, pruneActivity } from '../../src/db/activity.js';
import { openDatabase, type Database } from '../../src/db/database.js';
import { createFreshDatabase, type FreshDatabase } from '../setup/databases.js';
import { insertWorkspaceRow } from '../support/stack.js';

describe('activity retention (PostgreSQL)', () => {
  let fresh: FreshDatabase;
  let db: Database;
  const workspaces: string[] = [];

  beforeAll(async () => {
    fresh = await createFreshDatabase(inject('DATABASE_URL'), 'retention');
    db = await openDatabase({ databaseUrl: fresh.url, dataDir: '/nonexistent-unused' });
    await db.pool.query(`INSERT INTO orgs (id, name) VALUES ('org-retention', 'retention')`);
    for (let i = 0; i < 200; i++) workspaces.push(await insertWorkspaceRow(db.pool, 'org-retention'));
    // Per workspace: 40 rows of the last hour and 10 of 10 to 19 days ago.
    await db.pool.query(
      `INSERT INTO activity (workspace_id, type, status, summary, ts)
       SELECT w, 'a2a', '200', CASE WHEN g <= 40 THEN 'new' ELSE 'old' END,
              CASE WHEN g <= 40 THEN now() - g * interval '1 minute' ELSE now() - g / 4 * interval '1 day' END
         FROM unnest($1::text[]) w, generate_series(1, 50) g`,
      [workspaces],
    );
    await db.pool.query('ANALYZE workspaces; ANALYZE activity');
  });
  afterAll(async () => {
    await db?.close();
    await fresh?.drop();
  });

  const count = async (summary: string) =>
    Number(
      (await db.pool.query(`SELECT count(*) AS n FROM activity WHERE summary = $1`, [summary])).rows[0].n,
    );

  it('reads through the (workspace_id, ts) index, never the whole table', async () => {
    const { rows } = await db.pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${PRUNE_ACTIVITY_SQL}`, [
      new Date(Date.now() - 7 * 86_400_000),
      5000,
    ]);
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).toMatch(
      /Index (Only )?Scan (using|on) activity_ws_ts on activity a|Index Scan on activity_ws_ts/,
    );
    expect(plan).toMatch(/Index Scan (using|on) activity_pkey/);
    expect(plan).not.toMatch(/Seq Scan on activity/);
  });

  it('deletes only rows before the cut, at most the limit, across workspaces', async () => {
    const before = new Date(Date.now() - 7 * 86_400_000);
    expect(await pruneActivity(db.pool, before, 1500)).toBe(1500);
    expect(await count('old')).toBe(2000 - 1500);
    expect(await pruneActivity(db.pool, before, 5000)).toBe(500);
    expect(await pruneActivity(db.pool, before, 5000)).toBe(0);
    expect(await count('old')).toBe(0);
    expect(await count('new')).toBe(200 * 40);
  });
});
