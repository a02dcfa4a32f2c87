/**
 * The sweeps' activities at fleet size, with fakes: one DB query and one listing per backend per
 * run, a signal only to the workspaces that changed, and a result that stays small (far under
 * Temporal's 2 MB payload limit) however many of 10,000 workspaces change at once; and the org
 * cascades the orphan sweep starts for deleted orgs whose own start never landed.
 */
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowStartOptions,
} from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import {
  ACTIVITY_PRUNE_ROWS_PER_RUN,
  createSweepActivities,
  HISTORY_PRUNE_ROWS_PER_RUN,
  HEALTH_RESULT_LIST_MAX,
  ORG_DELETE_LOST_AFTER_MS,
  ORPHAN_REMOVALS_PER_RUN,
} from '../../src/activities/sweeps.js';
import {
  BackendError,
  type ManagedResource,
  type ManagedVolume,
  type WorkspaceBackend,
} from '../../src/backends/backend.js';
import { UnconfiguredBackend } from '../../src/backends/unconfigured.js';
import type { Queryable } from '../../src/db/queryable.js';
import { HISTORY_TABLES, PRUNE_HISTORY_SQL, type HistoryTable } from '../../src/db/history.js';
import type { ActivityPruned, HistoryPruned } from '../../src/domain/orphans.js';

const ROWS = 10_000;
const NOW = Date.now();
const id = (i: number) => `ws-${String(i).padStart(5, '0')}`;

/** A backend that lists `resources` and counts its listings (everything else: not configured). */
function listingBackend(resources: ManagedResource[]): WorkspaceBackend & { listings: number } {
  const backend = {
    // UnconfiguredBackend's members are own arrow-function properties, so the spread keeps them.
    ...new UnconfiguredBackend('docker'),
    listings: 0,
    listManaged: async (): Promise<ManagedResource[]> => {
      backend.listings++;
      return resources;
    },
    listManagedVolumes: async (): Promise<ManagedVolume[]> => [],
    listManagedNetworks: async () => [],
  };
  return backend;
}

/** A DB that answers every query with `rows` and records the SQL it was sent. */
function fakeDb(rows: unknown[]): Queryable & { sql: string[]; params: unknown[][] } {
  const sql: string[] = [];
  const params: unknown[][] = [];
  const db = {
    sql,
    params,
    query: async (text: string, values: unknown[] = []) => {
      sql.push(text);
      params.push(values);
      return { rows, rowCount: rows.length };
    },
  };
  return db as unknown as Queryable & { sql: string[]; params: unknown[][] };
}

/** A Temporal client whose signals are recorded; `gone` entities answer not-found, `broken` fail. */
function fakeTemporal(opts: { gone?: Set<string>; broken?: Set<string> } = {}) {
  const signalled: string[] = [];
  const client = {
    workflow: {
      getHandle: (workflowId: string) => ({
        signal: async () => {
          const workspaceId = workflowId.replace(/^workspace:/, '');
          if (opts.gone?.has(workspaceId)) throw new WorkflowNotFoundError('gone', workflowId, undefined);
          if (opts.broken?.has(workspaceId)) throw new Error('temporal says no');
          signalled.push(workspaceId);
        },
      }),
    },
  };
  return { signalled, client: client as unknown as Client };
}

function backends(docker: WorkspaceBackend): Record<'docker' | 'ec2', WorkspaceBackend> {
  return { docker, ec2: new UnconfiguredBackend('ec2') };
}

/** 10,000 online rows at generation 1 with a stale heartbeat, `stopped` of them stopped. */
function fleet(stopped: number) {
  const rows = Array.from({ length: ROWS }, (_, i) => ({
    id: id(i),
    backend: 'docker',
    generation: 1,
    status: i < stopped ? 'online' : 'degraded',
    last_heartbeat_at: new Date(NOW - 60_000),
    runtime_state: 'ok',
  }));
  const resources: ManagedResource[] = rows.map((r, i) => ({
    instanceId: `c-${r.id}`,
    workspaceId: r.id,
    orgId: 'org',
    generation: 1,
    status: i < stopped ? 'stopped' : 'running',
    createdAt: new Date(NOW - 3_600_000),
  }));
  return { rows, resources };
}

describe('sweepHealth over 10,000 workspaces', () => {
  it('reads the DB once, lists the backend once and signals only the changed ones', async () => {
    // 300 online workspaces whose container stopped: offline. The rest stay degraded (unchanged).
    const { rows, resources } = fleet(300);
    const db = fakeDb(rows);
    const docker = listingBackend(resources);
    const temporal = fakeTemporal();
    const activities = createSweepActivities({ db, backends: backends(docker), temporal: temporal.client });

    const out = await activities.sweepHealth({ staleMs: 3000 });

    expect(db.sql).toHaveLength(1);
    expect(docker.listings).toBe(1);
    expect(temporal.signalled.sort()).toEqual(rows.slice(0, 300).map((r) => r.id));
    expect(out.counts).toEqual({
      checked: ROWS,
      online: 0,
      degraded: ROWS - 300,
      offline: 300,
      unchanged: ROWS - 300,
      signalled: 300,
      failed: 0,
    });
    expect(out.signalled).toHaveLength(HEALTH_RESULT_LIST_MAX);
    expect(out.signalled[0]).toEqual(
      expect.objectContaining({ workspaceId: id(0), from: 'online', to: 'offline' }),
    );
    expect(out.truncated).toBe(true);
  });

  it('after an outage that changes all 10,000, the result stays a small payload', async () => {
    const { rows, resources } = fleet(ROWS);
    const gone = new Set([id(5)]);
    const broken = new Set([id(7), id(9)]);
    const temporal = fakeTemporal({ gone, broken });
    const activities = createSweepActivities({
      db: fakeDb(rows),
      backends: backends(listingBackend(resources)),
      temporal: temporal.client,
    });

    const out = await activities.sweepHealth({ staleMs: 3000 });

    expect(temporal.signalled).toHaveLength(ROWS - 3);
    expect(out.counts.signalled).toBe(ROWS - 3);
    expect(out.failed).toEqual([
      { workspaceId: id(7), error: 'temporal says no' },
      { workspaceId: id(9), error: 'temporal says no' },
    ]);
    // Temporal refuses payloads over 2 MB; the findings themselves (~205 bytes each) would be ~2 MB here.
    const bytes = Buffer.byteLength(JSON.stringify(out));
    expect(bytes).toBeLessThan(64 * 1024);
  });
});

describe('findOrphans over 10,000 leaked resources', () => {
  it('lists once, looks up once, and hands one page of removals to the run', async () => {
    const resources: ManagedResource[] = Array.from({ length: ROWS }, (_, i) => ({
      instanceId: `c-${id(i)}`,
      workspaceId: id(i),
      orgId: 'org',
      generation: 1,
      status: 'stopped',
      createdAt: new Date(NOW - 3_600_000),
    }));
    // The lookup knows the org and no workspace: every resource is an orphan of an unknown id.
    const db = fakeDb([{ kind: 'o', id: 'org', backend: null, generation: null, status: null }]);
    const docker = listingBackend(resources);
    const activities = createSweepActivities({ db, backends: backends(docker) });

    const found = await activities.findOrphans({ graceMs: 600_000 });

    expect(db.sql).toHaveLength(1);
    expect(docker.listings).toBe(1);
    expect(found.orphans).toBe(ROWS);
    expect(found.removals).toHaveLength(ORPHAN_REMOVALS_PER_RUN);
    expect(new Set(found.removals.map((r) => r.workspaceId)).size).toBe(ORPHAN_REMOVALS_PER_RUN);
    expect(found.removals.every((r) => r.reason === 'unknown')).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(found))).toBeLessThan(128 * 1024);

    // The page does not always start at the front: a first page that keeps failing would otherwise
    // leave the rest untried for good. Three runs almost surely (1 - 1e-8) hand over different pages.
    const seen = new Set(found.removals.map((r) => r.workspaceId));
    for (let run = 0; run < 2; run++) {
      for (const r of (await activities.findOrphans({ graceMs: 600_000 })).removals) seen.add(r.workspaceId);
    }
    expect(seen.size).toBeGreaterThan(ORPHAN_REMOVALS_PER_RUN);
  });

  it('judges an EC2 root volume left behind with its generation, a docker volume with its workspace', async () => {
    const old = new Date(NOW - 3_600_000);
    const volume = (workspaceId: string, name: string, generation?: number): ManagedVolume => ({
      name,
      workspaceId,
      orgId: 'org',
      createdAt: old,
      ...(generation === undefined ? {} : { generation }),
    });
    const listing = (kind: 'docker' | 'ec2', volumes: ManagedVolume[]): WorkspaceBackend => ({
      ...new UnconfiguredBackend(kind),
      listManaged: async () => [],
      listManagedVolumes: async () => volumes,
      listManagedNetworks: async () => [],
    });
    const row = (id: string, backend: string, generation: number, status: string) => ({
      kind: 'w',
      id,
      backend,
      generation,
      status,
      discarded_generation: null,
    });
    const db = fakeDb([
      { kind: 'o', id: 'org', backend: null, generation: null, status: null },
      row('w', 'ec2', 3, 'online'),
      row('gone', 'ec2', 1, 'deleted'),
      row('d', 'docker', 3, 'online'),
    ]);
    const activities = createSweepActivities({
      db,
      backends: {
        docker: listing('docker', [volume('d', 'ws-d-configs')]),
        ec2: listing('ec2', [
          volume('w', 'vol-w2', 2),
          volume('w', 'vol-w3', 3),
          volume('gone', 'vol-gone1', 1),
        ]),
      },
    });

    const found = await activities.findOrphans({ graceMs: 600_000 });

    // The superseded generation's volume goes (its generation alone); the live generation's and
    // the live docker workspace's volume stay; the deleted workspace goes whole.
    expect(
      found.removals.map((r) => [
        r.backend,
        r.workspaceId,
        r.generation,
        r.instanceIds,
        r.volumeIds,
        r.reason,
      ]),
    ).toEqual([
      ['ec2', 'gone', null, [], ['vol-gone1'], 'deleted'],
      ['ec2', 'w', 2, [], ['vol-w2'], 'superseded'],
    ]);
    expect(found.counts).toEqual({ listed: 4, live: 2, young: 0, foreign: 0 });
  });

  it('a backend read in part (its networks unreadable) is skipped whole: nothing of it is removed', async () => {
    const resources: ManagedResource[] = [
      {
        instanceId: 'c-x',
        workspaceId: 'x',
        orgId: 'org',
        generation: 1,
        status: 'stopped',
        createdAt: new Date(NOW - 3_600_000),
      },
    ];
    const db = fakeDb([{ kind: 'o', id: 'org', backend: null, generation: null, status: null }]);
    const docker = {
      ...listingBackend(resources),
      listManagedNetworks: async (): Promise<never> => {
        throw new BackendError('transient', 'daemon timed out listing networks');
      },
    };
    const activities = createSweepActivities({ db, backends: backends(docker) });

    const found = await activities.findOrphans({ graceMs: 600_000 });

    expect(found.removals).toEqual([]);
    expect(found.networks?.removals).toEqual([]);
    expect(found.listErrors).toEqual([{ backend: 'docker', error: 'daemon timed out listing networks' }]);
  });
});

describe('resumeOrgDeletes', () => {
  it("starts the API's own cascade of each deleted org still holding workspaces, leaving running ones be", async () => {
    // o1: its cascade never started; o2: its cascade is running (the start is refused); o3: Temporal fails.
    const db = fakeDb([
      { id: 'o1', workspaces: '2' },
      { id: 'o2', workspaces: '1' },
      { id: 'o3', workspaces: '1' },
    ]);
    const starts: Array<[string, WorkflowStartOptions]> = [];
    const client = {
      workflow: {
        start: async (type: string, options: WorkflowStartOptions) => {
          starts.push([type, options]);
          if (options.workflowId === 'org:o2:delete')
            throw new WorkflowExecutionAlreadyStartedError('running', options.workflowId, type);
          if (options.workflowId === 'org:o3:delete') throw new Error('temporal unavailable');
        },
      },
    } as unknown as Client;
    const activities = createSweepActivities({
      db,
      backends: backends(new UnconfiguredBackend('docker')),
      temporal: client,
      orgDeleteWaitMs: 5000,
    });

    const out = await new MockActivityEnvironment({ taskQueue: 'q' }).run(activities.resumeOrgDeletes);

    expect(out).toEqual({
      resumed: [{ orgId: 'o1', workspaces: 2 }],
      failed: [{ orgId: 'o3', workspaces: 1, error: 'temporal unavailable' }],
    });
    // One query, bounded, for orgs deleted at least a minute ago.
    expect(db.params).toEqual([[ORG_DELETE_LOST_AFTER_MS, ORPHAN_REMOVALS_PER_RUN]]);
    expect(starts.map(([type]) => type)).toEqual(Array(3).fill('orgDeleteWorkflow'));
    expect(starts[0]![1]).toEqual(
      expect.objectContaining({
        workflowId: 'org:o1:delete',
        taskQueue: 'q',
        args: [{ orgId: 'o1', waitMs: 5000 }],
      }),
    );
  });

  it('without a Temporal client or the wait, fails for good (the sweep reports it and goes on)', async () => {
    const activities = createSweepActivities({
      db: fakeDb([]),
      backends: backends(new UnconfiguredBackend('docker')),
    });
    await expect(new MockActivityEnvironment().run(activities.resumeOrgDeletes)).rejects.toThrow(
      /no Temporal client/,
    );
  });
});

describe('pruneOldActivity', () => {
  /** A table of `rows` old activity rows: each DELETE takes up to its limit and says how many. */
  function oldRows(rows: number): Queryable & { limits: number[]; befores: Date[] } {
    let left = rows;
    const limits: number[] = [];
    const befores: Date[] = [];
    return {
      limits,
      befores,
      query: (async (_text: string, params: [Date, number]) => {
        befores.push(params[0]);
        limits.push(params[1]);
        const gone = Math.min(left, params[1]);
        left -= gone;
        return { rows: [], rowCount: gone };
      }) as unknown as Queryable['query'],
    };
  }
  const prune = (db: Queryable, activityRetentionMs?: number): Promise<ActivityPruned | null> =>
    new MockActivityEnvironment().run(
      createSweepActivities({
        db,
        backends: backends(new UnconfiguredBackend('docker')),
        activityRetentionMs,
      }).pruneOldActivity,
    );

  it('deletes rows past the retention in batches of 5,000 until none is left', async () => {
    const db = oldRows(12_345);
    const t0 = Date.now();
    const out = await prune(db, 86_400_000);
    expect(out).toEqual({ before: expect.any(String), removed: 12_345, more: false });
    expect(db.limits).toEqual([5000, 5000, 5000]);
    const before = Date.parse(out!.before);
    expect(before).toBeGreaterThanOrEqual(t0 - 86_400_000);
    expect(before).toBeLessThanOrEqual(Date.now() - 86_400_000);
    expect(new Set(db.befores.map((d) => d.getTime()))).toEqual(new Set([before]));
  });

  it('takes at most ACTIVITY_PRUNE_ROWS_PER_RUN a run and says more are left', async () => {
    const db = oldRows(ACTIVITY_PRUNE_ROWS_PER_RUN + 1);
    const out = await prune(db, 1000);
    expect(out).toEqual({ before: expect.any(String), removed: ACTIVITY_PRUNE_ROWS_PER_RUN, more: true });
    expect(db.limits.reduce((a, b) => a + b, 0)).toBe(ACTIVITY_PRUNE_ROWS_PER_RUN);
  });

  it('with retention off, touches nothing', async () => {
    const db = oldRows(10);
    expect(await prune(db)).toBeNull();
    expect(db.limits).toEqual([]);
  });
});

describe('pruneOldHistory', () => {
  /** Old rows per table: each DELETE takes up to its limit of its table and says how many. */
  function oldHistory(rows: Partial<Record<HistoryTable, number>>) {
    const left = { consoleLogs: 0, bootEvents: 0, transitions: 0, ...rows };
    const calls: Array<[HistoryTable, number]> = [];
    const befores = new Set<number>();
    const query = (async (text: string, params: [Date, number]) => {
      const table = HISTORY_TABLES.find((t) => PRUNE_HISTORY_SQL[t] === text);
      if (!table) throw new Error(`unexpected query: ${text}`);
      befores.add(params[0].getTime());
      calls.push([table, params[1]]);
      const gone = Math.min(left[table], params[1]);
      left[table] -= gone;
      return { rows: [], rowCount: gone };
    }) as unknown as Queryable['query'];
    return { query, calls, befores };
  }
  const prune = (db: Queryable, historyRetentionMs?: number): Promise<HistoryPruned | null> =>
    new MockActivityEnvironment().run(
      createSweepActivities({
        db,
        backends: backends(new UnconfiguredBackend('docker')),
        historyRetentionMs,
      }).pruneOldHistory,
    );

  it('takes each table in turn, in batches of 5,000, until none is left', async () => {
    const db = oldHistory({ consoleLogs: 7, bootEvents: 12_000, transitions: 5_000 });
    const t0 = Date.now();
    const out = await prune(db, 86_400_000);
    expect(out).toEqual({
      before: expect.any(String),
      removed: { consoleLogs: 7, bootEvents: 12_000, transitions: 5_000 },
      more: false,
    });
    expect(db.calls).toEqual([
      ['consoleLogs', 5000],
      ['bootEvents', 5000],
      ['bootEvents', 5000],
      ['bootEvents', 5000],
      ['transitions', 5000],
      ['transitions', 5000],
    ]);
    // One cut for every statement, a day back.
    const before = Date.parse(out!.before);
    expect(before).toBeGreaterThanOrEqual(t0 - 86_400_000);
    expect(before).toBeLessThanOrEqual(Date.now() - 86_400_000);
    expect(db.befores).toEqual(new Set([before]));
  });

  it('takes at most HISTORY_PRUNE_ROWS_PER_RUN a run over the three tables and says more are left', async () => {
    const db = oldHistory({ consoleLogs: 60_000, bootEvents: 60_000, transitions: 10 });
    const out = await prune(db, 1000);
    expect(out).toEqual({
      before: expect.any(String),
      removed: { consoleLogs: 60_000, bootEvents: HISTORY_PRUNE_ROWS_PER_RUN - 60_000, transitions: 0 },
      more: true,
    });
    // The last statement asked for no more than the run had left; transitions were not reached.
    expect(db.calls.at(-1)).toEqual(['bootEvents', 5000]);
    expect(db.calls.filter(([t]) => t === 'bootEvents')).toHaveLength(8);
    expect(db.calls.some(([t]) => t === 'transitions')).toBe(false);
  });

  it('with retention off, touches nothing', async () => {
    const db = oldHistory({ bootEvents: 10 });
    expect(await prune(db)).toBeNull();
    expect(db.calls).toEqual([]);
  });
});
