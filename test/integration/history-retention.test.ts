/**
 * The orphan sweep's history retention against PostgreSQL: past generations' boot events and kept
 * consoles and old transitions go, a deleted workspace's all, while what a workspace runs now (its
 * current generation's rows) and its newest transition stay whatever their age; each statement
 * takes at most its limit and finds rows through the index on their time, never a whole-table scan.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/database.js';
import { HISTORY_TABLES, PRUNE_HISTORY_SQL, pruneHistory } from '../../src/db/history.js';
import { createFreshDatabase, type FreshDatabase } from '../setup/databases.js';
import { insertWorkspaceRow } from '../support/stack.js';

const DAY = 86_400_000;

describe('history retention (PostgreSQL)', () => {
  let fresh: FreshDatabase;
  let db: Database;
  let live: string;
  let gone: string;
  const bulk: string[] = [];

  /** Rows of one workspace: [generation, age in days, label] each. */
  async function history(ws: string, rows: Array<[number, number, string]>) {
    for (const [generation, days, label] of rows) {
      const at = new Date(Date.now() - days * DAY);
      await db.pool.query(
        `INSERT INTO boot_events (workspace_id, generation, phase, message, ts, received_at)
         VALUES ($1, $2, 'boot', $3, now(), $4)`,
        [ws, generation, label, at],
      );
      await db.pool.query(
        `INSERT INTO workspace_transitions (workspace_id, status, message, generation, ts)
         VALUES ($1, 'online', $3, $2, $4)`,
        [ws, generation, label, at],
      );
      await db.pool.query(
        `INSERT INTO console_logs (workspace_id, generation, text, captured_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING`,
        [ws, generation, label, at],
      );
    }
  }

  const left = async (ws: string) => {
    const q = (table: string, column: string) =>
      db.pool
        .query<{ label: string }>(
          `SELECT ${column} AS label FROM ${table} WHERE workspace_id = $1 ORDER BY 1`,
          [ws],
        )
        .then((r) => r.rows.map((x) => x.label));
    return {
      bootEvents: await q('boot_events', 'message'),
      transitions: await q('workspace_transitions', 'message'),
      consoleLogs: await q('console_logs', 'text'),
    };
  };

  beforeAll(async () => {
    fresh = await createFreshDatabase(inject('DATABASE_URL'), 'history');
    db = await openDatabase({ databaseUrl: fresh.url, dataDir: '/nonexistent-unused' });
    await db.pool.query(`INSERT INTO orgs (id, name) VALUES ('org-history', 'history')`);
    live = await insertWorkspaceRow(db.pool, 'org-history');
    gone = await insertWorkspaceRow(db.pool, 'org-history');
    await db.pool.query(`UPDATE workspaces SET generation = 3, status = 'online' WHERE id = $1`, [live]);
    await db.pool.query(`UPDATE workspaces SET generation = 2, status = 'deleted' WHERE id = $1`, [gone]);
    // A live workspace at generation 3: generation 1 ended 20 days ago, 2 an hour ago; 3 has run
    // for 10 days.
    await history(live, [
      [1, 20, 'g1 old'],
      [2, 1 / 24, 'g2 recent'],
      [3, 10, 'g3 running'],
    ]);
    // A workspace deleted at generation 2, 9 days ago: all of it is past.
    await history(gone, [
      [1, 30, 'g1 old'],
      [2, 9, 'g2 deleted'],
    ]);
    // For the plans: 200 workspaces at generation 60, 50 boot events, transitions and consoles of
    // past generations each, an hour apart (10 of each past the plans' cut).
    for (let i = 0; i < 200; i++) bulk.push(await insertWorkspaceRow(db.pool, 'org-history'));
    await db.pool.query(`UPDATE workspaces SET generation = 60, status = 'online' WHERE id = ANY($1)`, [
      bulk,
    ]);
    await db.pool.query(
      `INSERT INTO boot_events (workspace_id, generation, phase, message, ts, received_at)
       SELECT w, 1 + g / 11, 'boot', 'bulk', now(), now() - (50 - g) * interval '1 hour'
         FROM unnest($1::text[]) w, generate_series(1, 50) g`,
      [bulk],
    );
    await db.pool.query(
      `INSERT INTO workspace_transitions (workspace_id, status, message, generation, ts)
       SELECT w, 'online', 'bulk', 1 + g / 11, now() - (50 - g) * interval '1 hour'
         FROM unnest($1::text[]) w, generate_series(1, 50) g`,
      [bulk],
    );
    await db.pool.query(
      `INSERT INTO console_logs (workspace_id, generation, text, captured_at)
       SELECT w, g, repeat('bulk ', 20), now() - (50 - g) * interval '1 hour'
         FROM unnest($1::text[]) w, generate_series(1, 50) g`,
      [bulk],
    );
    await db.pool.query(
      'ANALYZE workspaces; ANALYZE boot_events; ANALYZE workspace_transitions; ANALYZE console_logs',
    );
  });
  afterAll(async () => {
    await db?.close();
    await fresh?.drop();
  });

  const index = {
    consoleLogs: /Index Scan (using|on) console_logs_captured_at on console_logs x/,
    bootEvents: /Index Scan (using|on) boot_events_received_at on boot_events x/,
    transitions: /Index Scan (using|on) workspace_transitions_ts on workspace_transitions x/,
  };
  const table = {
    consoleLogs: 'console_logs',
    bootEvents: 'boot_events',
    transitions: 'workspace_transitions',
  };

  it.each(HISTORY_TABLES)('%s: found through the index on its time, never a whole-table scan', async (t) => {
    const { rows } = await db.pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${PRUNE_HISTORY_SQL[t]}`, [
      new Date(Date.now() - 39.5 * 3_600_000),
      5000,
    ]);
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).toMatch(index[t]);
    expect(plan).not.toMatch(new RegExp(`Seq Scan on ${table[t]}`));
  });

  it('deletes past history older than the cut and keeps what runs now and each newest transition', async () => {
    const before = new Date(Date.now() - 2 * DAY);
    for (const t of HISTORY_TABLES) await pruneHistory(db.pool, t, before, 5000);
    expect(await left(live)).toEqual({
      bootEvents: ['g2 recent', 'g3 running'],
      // g3's is the newest (by id): kept although older than the cut.
      transitions: ['g2 recent', 'g3 running'],
      consoleLogs: ['g2 recent', 'g3 running'],
    });
    // Deleted: nothing past the cut is kept but its newest transition (the one saying so).
    expect(await left(gone)).toEqual({ bootEvents: [], transitions: ['g2 deleted'], consoleLogs: [] });
    // A cut earlier than all of it removes nothing more.
    for (const t of HISTORY_TABLES)
      expect(await pruneHistory(db.pool, t, new Date(Date.now() - 40 * DAY), 5000)).toBe(0);
  });

  it('takes at most the limit a statement (bulk: all of past generations)', async () => {
    const before = new Date(Date.now() - 39.5 * 3_600_000);
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM boot_events WHERE received_at < $1 AND message = 'bulk'`,
      [before],
    );
    const old = rows[0]!.n;
    expect(old).toBeGreaterThan(1500);
    expect(await pruneHistory(db.pool, 'bootEvents', before, 1500)).toBe(1500);
    expect(await pruneHistory(db.pool, 'bootEvents', before, 5000)).toBe(old - 1500);
    expect(await pruneHistory(db.pool, 'bootEvents', before, 5000)).toBe(0);
    // The live workspace's running generation's, 10 days old, is still there.
    expect((await left(live)).bootEvents).toEqual(['g2 recent', 'g3 running']);
  });
});
