import { randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/database.js';
import {
  CONSOLE_LOGS_KEPT_PER_WORKSPACE,
  keptConsoleLog,
  listBootEvents,
  listTransitions,
  recordBootEvent,
  saveConsoleLog,
} from '../../src/db/events.js';
import { getWorkspace, recordHeartbeat, recordTransition, saveConfig } from '../../src/db/workspaces.js';
import { workspacesToCheck } from '../../src/db/sweeps.js';
import { selectHealthChanges } from '../../src/domain/health.js';
import { MIGRATIONS_DIR, migrate } from '../../src/db/migrate.js';
import { createFreshDatabase, type FreshDatabase } from '../setup/databases.js';

// The tables this suite touches; later migrations may add more.
const CORE_TABLES = ['api_keys', 'orgs', 'pgmigrations', 'workspaces', 'workspace_tokens', 'secrets'];

const migrationNames = async (): Promise<string[]> =>
  (await readdir(MIGRATIONS_DIR))
    .filter((f) => /\.(sql|js|ts)$/.test(f) && !f.endsWith('.d.ts'))
    .map((f) => f.replace(/\.[^.]+$/, ''))
    .sort();

const id = (prefix: string): string => `${prefix}-${randomUUID()}`;

async function insertOrg(db: Database, name = 'acme'): Promise<string> {
  const orgId = id('org');
  await db.pool.query('INSERT INTO orgs (id, name) VALUES ($1, $2)', [orgId, name]);
  return orgId;
}

/** A workspace row with only what the schema requires. */
async function insertBareWorkspace(db: Database, orgId: string): Promise<string> {
  const wsId = id('ws');
  await db.pool.query(
    `INSERT INTO workspaces (id, org_id, name, backend, runtime, config_hash, status, workflow_id)
     VALUES ($1, $2, $1, 'docker', 'node', 'h', 'provisioning', 'wf')`,
    [wsId, orgId],
  );
  return wsId;
}

describe.each(['pglite', 'postgres'] as const)('data layer on %s', (mode) => {
  let dataDir: string;
  let fresh: FreshDatabase | undefined;
  let db: Database;
  const open = (): Promise<Database> => openDatabase({ databaseUrl: fresh?.url, dataDir });

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'wo-dbtest-'));
    if (mode === 'postgres') fresh = await createFreshDatabase(inject('DATABASE_URL'), 'dbtest');
    db = await open();
  });

  afterAll(async () => {
    await db?.close();
    await fresh?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('opens the expected kind of database and applies the migrations', async () => {
    expect(db.embedded).toBe(mode === 'pglite');
    expect(db.pool.options.max).toBe(mode === 'pglite' ? 1 : 10);
    const { rows } = await db.pool.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
    );
    expect(rows.map((r) => r.table_name)).toEqual(expect.arrayContaining(CORE_TABLES));
    const applied = await db.pool.query<{ name: string }>(
      'SELECT name FROM pgmigrations ORDER BY run_on, id',
    );
    expect(applied.rows.map((r) => r.name)).toEqual(await migrationNames());
  });

  it('treats re-running the migrations as a no-op', async () => {
    expect(await migrate(db.pool)).toEqual([]);
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pgmigrations');
    expect(rows[0]?.n).toBe((await migrationNames()).length);
  });

  it('answers the query after a failed one, also when failures run concurrently', async () => {
    // pg.Pool drops its client on every query error and reconnects; embedded PGlite must accept that.
    for (let i = 0; i < 5; i++) {
      await expect(db.pool.query('SELECT 1/0')).rejects.toMatchObject({ code: '22012' });
      expect((await db.pool.query('SELECT $1::int AS n', [i])).rows).toEqual([{ n: i }]);
    }
    const mixed = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        db.pool.query(i % 2 ? 'SELECT 1/0' : 'SELECT $1::int AS n', i % 2 ? [] : [i]),
      ),
    );
    mixed.forEach((r, i) => {
      if (i % 2) expect(r).toMatchObject({ status: 'rejected', reason: { code: '22012' } });
      else expect(r).toMatchObject({ status: 'fulfilled', value: { rows: [{ n: i }] } });
    });
  });

  it('round-trips an org, an api key and a workspace', async () => {
    const orgId = await insertOrg(db);
    const keyId = id('key');
    await db.pool.query('INSERT INTO api_keys (id, org_id, key_hash) VALUES ($1, $2, $3)', [
      keyId,
      orgId,
      `sha256-${keyId}`,
    ]);
    const wsId = id('ws');
    const config = { model: 'x', nested: { list: [1, 2, 3] }, unicode: 'héllo ✓' };
    await db.pool.query(
      `INSERT INTO workspaces (id, org_id, name, backend, runtime, config, config_hash, status, workflow_id)
       VALUES ($1, $2, $3, 'docker', 'node', $4, 'hash-1', 'provisioning', $5)`,
      [wsId, orgId, 'first', JSON.stringify(config), `workspace:${wsId}`],
    );

    const { rows } = await db.pool.query<{
      org_name: string;
      key_hash: string;
      config: unknown;
      generation: number;
      config_version: number;
      created_at: Date;
      endpoint: string | null;
    }>(
      `SELECT o.name AS org_name, k.key_hash, w.config, w.generation, w.config_version, w.created_at, w.endpoint
         FROM workspaces w JOIN orgs o ON o.id = w.org_id JOIN api_keys k ON k.org_id = o.id
        WHERE w.id = $1`,
      [wsId],
    );
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row.org_name).toBe('acme');
    expect(row.key_hash).toBe(`sha256-${keyId}`);
    expect(row.config).toEqual(config);
    expect(row.generation).toBe(0);
    expect(row.config_version).toBe(1);
    expect(row.endpoint).toBeNull();
    expect(row.created_at).toBeInstanceOf(Date);
    expect(Math.abs(row.created_at.getTime() - Date.now())).toBeLessThan(60_000);

    // Constraints hold: unique key hash, foreign key to orgs.
    await expect(
      db.pool.query('INSERT INTO api_keys (id, org_id, key_hash) VALUES ($1, $2, $3)', [
        id('key'),
        orgId,
        `sha256-${keyId}`,
      ]),
    ).rejects.toMatchObject({ code: '23505' });
    await expect(
      db.pool.query('INSERT INTO api_keys (id, org_id, key_hash) VALUES ($1, $2, $3)', [
        id('key'),
        'no-such-org',
        id('hash'),
      ]),
    ).rejects.toMatchObject({ code: '23503' });
    // The pool is still usable after errors (the single PGlite connection must not be poisoned).
    expect((await db.pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('commits and rolls back transactions', async () => {
    const client = await db.pool.connect();
    const rolledBack = id('org');
    const committed = id('org');
    try {
      await client.query('BEGIN');
      await client.query('INSERT INTO orgs (id, name) VALUES ($1, $2)', [rolledBack, 'gone']);
      await client.query('ROLLBACK');

      await client.query('BEGIN');
      await client.query('INSERT INTO orgs (id, name) VALUES ($1, $2)', [committed, 'kept']);
      // A failing statement aborts the transaction; it rolls back as a whole.
      await expect(
        client.query('INSERT INTO orgs (id, name) VALUES ($1, $2)', [committed, 'dup']),
      ).rejects.toThrow();
      await client.query('ROLLBACK');

      await client.query('BEGIN');
      await client.query('INSERT INTO orgs (id, name) VALUES ($1, $2)', [committed, 'kept']);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const { rows } = await db.pool.query<{ id: string }>('SELECT id FROM orgs WHERE id = ANY($1)', [
      [rolledBack, committed],
    ]);
    expect(rows.map((r) => r.id)).toEqual([committed]);
  });

  it('runs 20 concurrent queries and transactions through the pool', async () => {
    const orgId = await insertOrg(db, 'concurrent');
    const name = `conc-${randomUUID()}`;
    const plain = Array.from({ length: 20 }, (_, i) =>
      db.pool.query(
        `INSERT INTO workspaces (id, org_id, name, backend, runtime, config_hash, status, workflow_id)
         VALUES ($1, $2, $3, 'docker', 'node', 'h', 'provisioning', 'wf') RETURNING id`,
        [id(`ws${i}`), orgId, name],
      ),
    );
    // Transactions interleaved with the plain queries: each must see only its own writes.
    const transactional = Array.from({ length: 5 }, async (_, i) => {
      const client = await db.pool.connect();
      try {
        await client.query('BEGIN');
        await client.query('INSERT INTO orgs (id, name) VALUES ($1, $2)', [id('tx'), `${name}-tx${i}`]);
        const { rows } = await client.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM orgs WHERE name = $1',
          [`${name}-tx${i}`],
        );
        await client.query('COMMIT');
        return rows[0]?.n;
      } finally {
        client.release();
      }
    });
    const results = await Promise.allSettled([...plain, ...transactional]);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    const { rows } = await db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM workspaces WHERE name = $1',
      [name],
    );
    expect(rows[0]?.n).toBe(20);
    const counts = await Promise.all(transactional);
    expect(counts).toEqual([1, 1, 1, 1, 1]);
  });

  it('keeps a console log and a transition whose text holds NUL or a lone surrogate (replaced, not lost)', async () => {
    const wsId = await insertBareWorkspace(db, await insertOrg(db, 'unstorable'));
    // What a console may print, or a backend error may quote; PostgreSQL text refuses both.
    await saveConsoleLog(db.pool, wsId, 1, 'boot\u0000ing \uD800 done\n');
    expect(await keptConsoleLog(db.pool, wsId, 1, 1000)).toEqual({
      text: 'boot\uFFFDing \uFFFD done\n',
      truncated: false,
    });
    await recordTransition(db.pool, {
      workspaceId: wsId,
      generation: 1,
      status: 'failed',
      message: 'start failed: a\u0000b',
      error: 'start failed: a\u0000b',
    });
    const row = await getWorkspace(db.pool, wsId);
    expect(row).toMatchObject({ status: 'failed', error: 'start failed: a\uFFFDb' });
    const events = await listTransitions(db.pool, wsId);
    expect(events.map((e) => e.message)).toEqual(['start failed: a\uFFFDb']);
  });

  it("a transition's step is written once: a late second try changes nothing, even after the steps that followed", async () => {
    const wsId = await insertBareWorkspace(db, await insertOrg(db, 'steps'));
    const step = (n: number, status: 'restarting' | 'online', phase: string) =>
      recordTransition(db.pool, { workspaceId: wsId, generation: 2, status, phase, step: `run-1/${n}` });
    expect(await step(1, 'restarting', 'booting')).toBe(true);
    // A timed-out workflow task's try of step 1, and its retry's: one row.
    expect(await step(1, 'restarting', 'booting')).toBe(false);
    expect(await step(2, 'online', 'platform-health-ok')).toBe(true);
    // The first try's write, later still: the workspace is not set back.
    expect(await step(1, 'restarting', 'booting')).toBe(false);
    expect(await getWorkspace(db.pool, wsId)).toMatchObject({
      status: 'online',
      phase: 'platform-health-ok',
    });
    expect((await listTransitions(db.pool, wsId)).map((e) => e.status)).toEqual(['restarting', 'online']);
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM activity WHERE workspace_id = $1 AND type = 'lifecycle'`,
      [wsId],
    );
    expect(rows[0]!.n).toBe(2);
    // Without a step (older code, a hand-made row): every write counts.
    await recordTransition(db.pool, { workspaceId: wsId, generation: 2, status: 'online' });
    expect(await recordTransition(db.pool, { workspaceId: wsId, generation: 2, status: 'online' })).toBe(
      true,
    );
    expect(await listTransitions(db.pool, wsId)).toHaveLength(4);
  });

  it('a boot event shows its phase while the workspace boots, not once it is stopping or stopped', async () => {
    const wsId = await insertBareWorkspace(db, await insertOrg(db, 'late-boot'));
    await db.pool.query('UPDATE workspaces SET generation = 1 WHERE id = $1', [wsId]);
    const boot = (phase: string) => recordBootEvent(db.pool, wsId, { generation: 1, phase, ts: new Date() });
    const to = (status: 'stopping' | 'stopped' | 'restarting' | 'failed' | 'deleting') =>
      recordTransition(db.pool, { workspaceId: wsId, generation: 1, status, message: null, error: null });
    expect(await boot('boot')).toBe(true);
    expect((await getWorkspace(db.pool, wsId))!.phase).toBe('boot');
    // A VM stopped while its agent booted posts its next phases late: stored, the phase unchanged.
    for (const status of ['stopping', 'stopped', 'failed', 'deleting'] as const) {
      await to(status);
      expect(await boot('config-materialized')).toBe(true);
      expect((await getWorkspace(db.pool, wsId))!, status).toMatchObject({ status, phase: null });
    }
    // Started again: its boot shows.
    await to('restarting');
    await boot('agent-started');
    expect((await getWorkspace(db.pool, wsId))!.phase).toBe('agent-started');
    expect((await listBootEvents(db.pool, wsId)).map((e) => e.phase)).toEqual([
      'boot',
      ...Array<string>(4).fill('config-materialized'),
      'agent-started',
    ]);
  });

  it('keeps the consoles of a workspace’s newest generations only', async () => {
    const wsId = await insertBareWorkspace(db, await insertOrg(db, 'consoles'));
    const kept = CONSOLE_LOGS_KEPT_PER_WORKSPACE;
    // Failed generations are sparse: every other one.
    for (let g = 1; g <= 2 * (kept + 3); g += 2) await saveConsoleLog(db.pool, wsId, g, `gen ${g}`);
    const { rows } = await db.pool.query<{ generation: number }>(
      'SELECT generation FROM console_logs WHERE workspace_id = $1 ORDER BY generation',
      [wsId],
    );
    expect(rows.map((r) => r.generation)).toEqual(Array.from({ length: kept }, (_, i) => 7 + 2 * i));
    expect(await keptConsoleLog(db.pool, wsId, 5, 1000)).toBeNull();
    expect(await keptConsoleLog(db.pool, wsId, 7, 1000)).toEqual({ text: 'gen 7', truncated: false });
    // Saved again (a retried capture): still the same copies.
    await saveConsoleLog(db.pool, wsId, 7, 'gen 7 again');
    expect((await keptConsoleLog(db.pool, wsId, 7, 1000))?.text).toBe('gen 7 again');
  });

  it('counts a config save as a new version only when it changes the runtime or the config', async () => {
    const wsId = await insertBareWorkspace(db, await insertOrg(db, 'versions'));
    const first = await saveConfig(db.pool, wsId, { config: { model: 'large' } });
    const before = (await getWorkspace(db.pool, wsId))!;
    // The same settings again (a client re-applying them): the same version, nothing updated.
    expect(await saveConfig(db.pool, wsId, { config: { model: 'large' } })).toEqual(first);
    expect(await saveConfig(db.pool, wsId, {})).toEqual(first);
    expect((await getWorkspace(db.pool, wsId))!.updatedAt).toEqual(before.updatedAt);
    const runtime = await saveConfig(db.pool, wsId, { runtime: 'langgraph' });
    expect(runtime.configVersion).toBe(first.configVersion + 1);
    const config = await saveConfig(db.pool, wsId, { config: { model: 'small' } });
    expect(config.configVersion).toBe(first.configVersion + 2);
    // Back to an earlier config is a change too.
    const back = await saveConfig(db.pool, wsId, { runtime: before.runtime, config: { model: 'large' } });
    expect(back).toEqual({ ...first, configVersion: first.configVersion + 3 });
  });

  it('the health sweep reads a degraded verdict’s time: a heartbeat from before it is no news', async () => {
    const wsId = await insertBareWorkspace(db, await insertOrg(db, 'verdicts'));
    const mark = (status: 'online' | 'degraded') =>
      recordTransition(db.pool, { workspaceId: wsId, generation: 1, status, message: null, error: null });
    await mark('online');
    await recordHeartbeat(db.pool, wsId, 'ok');
    await mark('degraded'); // a failed forward, after the agent's last heartbeat
    const check = async () => {
      const row = (await workspacesToCheck(db.pool)).find((w) => w.id === wsId)!;
      const sel = selectHealthChanges({
        workspaces: [{ ...row, generation: 0 }],
        listings: { docker: new Map() },
        nowMs: Date.now(),
        staleMs: 60_000,
      });
      return { row, changed: sel.changed.map((c) => c.to) };
    };
    const before = await check();
    expect(before.row.statusSinceMs).toBeGreaterThanOrEqual(before.row.lastHeartbeatAtMs!);
    expect(before.changed).toEqual([]);
    // A heartbeat after the verdict is news: the sweep calls it online again.
    await recordHeartbeat(db.pool, wsId, 'ok');
    expect((await check()).changed).toEqual(['online']);
  });

  it('keeps the data across close and reopen', async () => {
    const orgId = await insertOrg(db, 'durable');
    await db.close();
    await db.close(); // idempotent
    db = await open();
    const { rows } = await db.pool.query<{ name: string }>('SELECT name FROM orgs WHERE id = $1', [orgId]);
    expect(rows).toEqual([{ name: 'durable' }]);
    expect(await migrate(db.pool)).toEqual([]);
  });
});

describe('embedded data folder lock', () => {
  it('refuses a second opener while one holds it, and takes over a dead owner’s lock', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'wo-dblock-'));
    try {
      const first = await openDatabase({ dataDir });
      await expect(openDatabase({ dataDir })).rejects.toThrow(/in use by process/);
      await first.close();
      // A lock left by a process that no longer exists does not block the next start.
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
      await writeFile(path.join(dataDir, 'pglite.lock'), dead.stdout.toString());
      const second = await openDatabase({ dataDir });
      await second.close();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('global setup', () => {
  it('hands the same services to inject() and to process.env (for spawned processes)', () => {
    for (const key of ['DATABASE_URL', 'TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'RUNTIME_IMAGE'] as const) {
      expect(process.env[key], key).toBe(inject(key));
    }
    expect(inject('DATABASE_URL')).toMatch(/^postgres:\/\/app@127\.0\.0\.1:\d+\/run_/);
  });
});
