/**
 * Lists and feeds order by the table's columns, not by the text aliases of the same names that
 * their SELECTs return (PostgreSQL resolves `ORDER BY id` to an output column first): as text,
 * id "99" sorts after "100", and a sort on `to_char(ts)` cannot use the (workspace_id, ts, id)
 * index, so every page sorted all of a workspace's rows. Ids here are made to cross 99 → 100.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TransitionFeed } from '../../src/api/transition-feed.js';
import { listActivity } from '../../src/db/activity.js';
import { openDatabase, type Database } from '../../src/db/database.js';
import type { TransitionEvent } from '../../src/db/events.js';
import type { Queryable } from '../../src/db/queryable.js';
import { recordTransition } from '../../src/db/workspaces.js';
import { createFreshDatabase, type FreshDatabase } from '../setup/databases.js';
import { waitFor } from '../setup/wait-for.js';
import { insertWorkspaceRow } from '../support/stack.js';

describe('ordering by columns, not by their text aliases (PostgreSQL)', () => {
  let fresh: FreshDatabase;
  let db: Database;
  let orgId: string;

  beforeAll(async () => {
    fresh = await createFreshDatabase(inject('DATABASE_URL'), 'listorder');
    db = await openDatabase({ databaseUrl: fresh.url, dataDir: '/nonexistent-unused' });
    orgId = 'org-listorder';
    await db.pool.query(`INSERT INTO orgs (id, name) VALUES ($1, 'list order')`, [orgId]);
  });
  afterAll(async () => {
    await db?.close();
    await fresh?.drop();
  });

  it('an activity page: rows of one instant newest id first, numerically, read through the index', async () => {
    const ws = await insertWorkspaceRow(db.pool, orgId);
    // Background rows so the planner has a real choice, all older than the tied group.
    await db.pool.query(
      `INSERT INTO activity (workspace_id, type, status, summary, ts)
       SELECT $1, 'a2a', '200', 'old', now() - interval '1 day' - g * interval '1 ms' FROM generate_series(1, 5000) g`,
      [ws],
    );
    await db.pool.query(`SELECT setval('activity_id_seq', 10000 - 5)`);
    // Ten rows in one microsecond, ids 9996..10005 (crossing 9999 → 10000). The instant is the
    // statement's now(), one value for all ten: a fixed date would fall behind the background
    // rows a day after it was written.
    await db.pool.query(
      `INSERT INTO activity (workspace_id, type, status, summary, ts)
       SELECT $1, 'a2a', '200', 'tied ' || g, now() FROM generate_series(1, 10) g`,
      [ws],
    );
    await db.pool.query('ANALYZE activity');

    const page = await listActivity(db.pool, { workspaceId: ws, limit: 10 });
    expect(page.items.map((r) => Number(r.id))).toEqual(Array.from({ length: 10 }, (_, i) => 10005 - i));

    // The page query's plan: the index gives the order, nothing is sorted.
    const plans: string[] = [];
    const explaining: Queryable = {
      query: async (text: unknown, params?: unknown) => {
        const sql = typeof text === 'string' ? text : (text as { text: string }).text;
        const values = typeof text === 'string' ? params : (text as { values: unknown[] }).values;
        const r = await db.pool.query(`EXPLAIN ${sql}`, values as unknown[]);
        plans.push(r.rows.map((row: Record<string, string>) => row['QUERY PLAN']).join('\n'));
        return { rows: [], rowCount: 0 };
      },
    } as unknown as Queryable;
    await listActivity(explaining, { workspaceId: ws, limit: 50 });
    expect(plans[0]).toMatch(/Index Scan using activity_ws_ts/);
    expect(plans[0]).not.toMatch(/Sort/);
  });

  it('the /events poller delivers one poll’s rows in id order', async () => {
    const ws = await insertWorkspaceRow(db.pool, orgId);
    // No change feed and a 10-minute tick: the test wakes the poll itself, once, after all inserts.
    const feed = new TransitionFeed(db.pool, { intervalMs: 600_000 });
    const got: TransitionEvent[] = [];
    const off = await feed.subscribe(ws, (e) => got.push(e));
    try {
      await db.pool.query(`SELECT setval('workspace_transitions_id_seq', 100 - 5)`);
      for (let i = 0; i < 10; i++) {
        await recordTransition(db.pool, { workspaceId: ws, generation: 1, status: 'online', phase: `p${i}` });
      }
      feed.wake(ws);
      await waitFor(() => got.length === 10, { timeoutMs: 10_000, describe: 'the ten transitions' });
      expect(feed.polls).toBe(1);
      expect(got.map((e) => e.phase)).toEqual(Array.from({ length: 10 }, (_, i) => `p${i}`));
      expect(got.map((e) => Number(e.id))).toEqual(Array.from({ length: 10 }, (_, i) => 96 + i));
    } finally {
      off();
      feed.close();
    }
  });
});
