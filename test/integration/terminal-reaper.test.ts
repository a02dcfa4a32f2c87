/**
 * Terminal sessions outlive a dead API process on docker (dockerd keeps an exec running when its
 * client goes): the session registry and its reaper (src/api/terminal.ts) kill them. The claim
 * query and the reaper loop are shown on the run's PostgreSQL with a recording backend; then, on
 * the real stack, an API process is SIGKILLed with a shell open and another API kills that shell
 * (and what it started), while its own live session is left alone across several stale periods.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ApiDeps } from '../../src/api/deps.js';
import { attachTerminal } from '../../src/api/terminal.js';
import { BackendError, type WorkspaceBackend } from '../../src/backends/backend.js';
import { openDatabase, type Database } from '../../src/db/database.js';
import { createOrg as insertOrg } from '../../src/db/orgs.js';
import { claimStaleTerminalSessions, touchTerminalSessions } from '../../src/db/terminal-sessions.js';
import { freePort } from '../setup/free-port.js';
import { waitFor } from '../setup/wait-for.js';
import { spawnApi, type ApiProcess } from '../support/api-process.js';
import { insertWorkspaceRow, testEnv, useStack, waitForStatus } from '../support/stack.js';
import { markedProcesses, openTerm } from '../support/terminal-client.js';
import { tempDir } from '../support/temp-dirs.js';

/** A row as a dead API process leaves it: last marked alive an hour ago. */
async function plantStale(db: pg.Pool, workspaceId: string, staleAfterMs = 1000): Promise<string> {
  const id = randomUUID();
  await db.query(
    `INSERT INTO terminal_sessions (id, workspace_id, generation, backend, stale_after_ms, opened_at, last_seen)
     VALUES ($1, $2, 1, 'docker', $3, now() - interval '1 hour', now() - interval '1 hour')`,
    [id, workspaceId, staleAfterMs],
  );
  return id;
}

const rowExists = async (db: pg.Pool, id: string): Promise<boolean> =>
  (await db.query('SELECT 1 FROM terminal_sessions WHERE id = $1', [id])).rowCount === 1;

describe('the session registry and the reaper loop (PostgreSQL, a recording backend)', () => {
  let database: Database;
  let db: pg.Pool;
  let workspaceId = '';

  beforeAll(async () => {
    // Opened as the service opens it: the migrations applied.
    database = await openDatabase({
      databaseUrl: inject('DATABASE_URL'),
      dataDir: tempDir('wo-reaper-'),
    });
    db = database.pool;
    const { org } = await insertOrg(db, 'reaper-registry');
    workspaceId = await insertWorkspaceRow(db, org.id);
  });
  afterAll(async () => {
    await db.query('DELETE FROM terminal_sessions WHERE workspace_id = $1', [workspaceId]);
    // A bare row of the run's shared database: not left for a later orphan sweep to take for a lost create.
    await db.query(`UPDATE workspaces SET status = 'deleted' WHERE id = $1`, [workspaceId]);
    await database.close();
  });

  it('concurrent claims never hand one session to two reapers; fresh or refreshed rows are not claimed', async () => {
    const stale = await Promise.all(Array.from({ length: 20 }, () => plantStale(db, workspaceId)));
    const fresh = randomUUID();
    await db.query(
      `INSERT INTO terminal_sessions (id, workspace_id, generation, backend, stale_after_ms)
       VALUES ($1, $2, 1, 'docker', 1000)`,
      [fresh, workspaceId],
    );
    // Marked alive by its owner: no longer stale.
    const refreshed = await plantStale(db, workspaceId);
    expect(await touchTerminalSessions(db, [refreshed])).toBe(1);

    const claims = await Promise.all(Array.from({ length: 4 }, () => claimStaleTerminalSessions(db, 8)));
    const ids = claims.flat().map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(ids)).toEqual(new Set(stale));
    expect(claims.flat()[0]).toMatchObject({ workspaceId, generation: 1, backend: 'docker' });
    // A claim is a lease: claimed rows stay (the reaper deletes them once killed), not stale again.
    expect(await claimStaleTerminalSessions(db)).toEqual([]);
    expect(await rowExists(db, stale[0]!)).toBe(true);
  });

  /** attachTerminal on a server nobody connects to, its backend recording kills. */
  async function reaperWith(
    kill: WorkspaceBackend['killTerminalSession'],
    reapIntervalMs: number,
  ): Promise<{ close(): Promise<void> }> {
    const server: Server = createServer();
    const backend = { killTerminalSession: kill } as unknown as WorkspaceBackend;
    const deps = {
      db,
      backends: { docker: backend, ec2: backend },
      settings: {
        adminToken: 'x'.repeat(32),
        rateLimitPerMinute: 600,
        terminalSessions: { refreshMs: 100, staleMs: 300, reapIntervalMs },
      },
      log: pino({ level: 'silent' }),
    } as unknown as ApiDeps;
    const terminals = attachTerminal(server, deps);
    return {
      async close() {
        await terminals.close();
        server.close();
      },
    };
  }

  it('reaps once shortly after the start (a restarted API cleans up after its own crash)', async () => {
    const id = await plantStale(db, workspaceId);
    const killed: string[] = [];
    // A reaping interval of ten minutes: only the round at the start can reap within the deadline.
    const reaper = await reaperWith(async (ws, generation, sessionId) => {
      expect([ws, generation]).toEqual([workspaceId, 1]);
      killed.push(sessionId);
    }, 600_000);
    try {
      await waitFor(async () => !(await rowExists(db, id)), {
        timeoutMs: 15_000,
        describe: 'the stale row to be reaped by the first round',
      });
      expect(killed).toContain(id);
    } finally {
      await reaper.close();
    }
  });

  it('a backend failure leaves the row; a later round kills and deletes it', async () => {
    await db.query('DELETE FROM terminal_sessions WHERE workspace_id = $1', [workspaceId]);
    const id = await plantStale(db, workspaceId, 300);
    const calls: string[] = [];
    const reaper = await reaperWith(async (_ws, _g, sessionId) => {
      calls.push(sessionId);
      if (calls.length === 1) throw new BackendError('transient', 'dockerd hiccup');
    }, 100);
    try {
      await waitFor(() => calls.length >= 1, { timeoutMs: 15_000, describe: 'a first kill attempt' });
      expect(await rowExists(db, id)).toBe(true);
      await waitFor(async () => !(await rowExists(db, id)), {
        timeoutMs: 15_000,
        describe: 'the row to be reaped once the backend answers',
      });
      expect(calls).toEqual([id, id]);
    } finally {
      await reaper.close();
    }
  });
});

/** Short enough for a test: refreshed every 200 ms, dead after 1 s unrefreshed, reaped every 250 ms. */
const SHORT = {
  TERMINAL_SESSION_REFRESH_MS: '200',
  TERMINAL_SESSION_STALE_MS: '1000',
  TERMINAL_REAP_INTERVAL_MS: '250',
};
const STALE_MS = 1000;

describe('a SIGKILLed API process leaves a shell; another API reaps it (docker)', () => {
  const t = useStack({ env: SHORT });
  let id = '';
  let container = '';
  let child: ApiProcess | undefined;

  afterAll(async () => {
    await child?.stop();
  });

  const sessionRows = async (): Promise<string[]> =>
    (
      await t.stack.service.db.pool.query<{ id: string }>(
        'SELECT id FROM terminal_sessions WHERE workspace_id = $1 ORDER BY opened_at',
        [id],
      )
    ).rows.map((r) => r.id);

  it("the dead API's shell and what it started are killed and its row deleted; the live session is not", async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'reaper', backend: 'docker' },
    });
    expect(created.status).toBe(202);
    id = created.body.id;
    const online = await waitForStatus(t.stack, t.key, id, 'online');
    container = `ws-${id}-g${online.generation}`;

    // An API of its own, on the stack's database, Temporal and task queue.
    child = await spawnApi(
      testEnv({
        ...SHORT,
        PORT: String(await freePort()),
        ADMIN_TOKEN: t.stack.config.ADMIN_TOKEN,
        SECRETS_KEY: t.stack.config.SECRETS_KEY,
        TASK_QUEUE: t.stack.config.TASK_QUEUE,
      }),
    );
    const orphan = openTerm(child.url, id, { token: t.key });
    await orphan.opened;
    orphan.send('sleep 600 & echo started-$((6*7))\n');
    await orphan.expectOutput(/^started-42\r?$/m);
    const [orphanId] = await sessionRows();
    expect(orphanId).toBeDefined();
    // The shell and the sleep it started carry the session's marker.
    expect((await markedProcesses(t.stack, container, orphanId!)).length).toBeGreaterThanOrEqual(2);

    // A live session on the surviving API (the in-process stack).
    const live = openTerm(t.stack.url, id, { token: t.key });
    await live.opened;
    live.send('echo live-$((2*3))\n');
    await live.expectOutput(/^live-6\r?$/m);
    const liveId = (await sessionRows()).find((s) => s !== orphanId);
    expect(liveId).toBeDefined();

    child.child.kill('SIGKILL');
    await child.stop();
    expect(child.child.signalCode).toBe('SIGKILL');

    await waitFor(async () => (await markedProcesses(t.stack, container, orphanId!)).length === 0, {
      timeoutMs: 30_000,
      describe: "the dead API's shell and its sleep to be killed",
    });
    await waitFor(async () => !(await sessionRows()).includes(orphanId!), {
      timeoutMs: 10_000,
      describe: "the dead API's session row to be deleted",
    });

    // Several stale periods of reaping, each round shown by a planted orphan row being reaped
    // (killing nothing): the live session keeps its row, its processes and its answers.
    const until = Date.now() + 4 * STALE_MS;
    let rounds = 0;
    while (Date.now() < until || rounds < 4) {
      const decoy = await plantStale(t.stack.service.db.pool, id);
      await waitFor(async () => !(await sessionRows()).includes(decoy), {
        timeoutMs: 10_000,
        describe: 'a planted orphan row to be reaped',
      });
      rounds++;
    }
    expect(await sessionRows()).toEqual([liveId]);
    expect((await markedProcesses(t.stack, container, liveId!)).length).toBeGreaterThanOrEqual(1);
    const mark = live.size();
    live.send('echo still-$((3+4))\n');
    await live.expectOutput(/^still-7\r?$/m, mark);

    // Closed normally: its row goes with it.
    live.ws.close();
    await live.closed;
    await waitFor(async () => (await sessionRows()).length === 0, {
      timeoutMs: 10_000,
      describe: 'the closed session row to be deleted',
    });
    expect(await markedProcesses(t.stack, container, liveId!)).toEqual([]);
  });
});
