/**
 * Sweep cost at fleet size: does one health sweep and one orphan sweep over 10,000 workspaces stay
 * within one interval (HEALTH_SWEEP_INTERVAL_MS, ORPHAN_SWEEP_INTERVAL_MS)?
 *
 *   npx tsx bench/sweep.ts [--rows 10000] [--baseline-rows 100] [--orgs 20] [--runs 3]
 *                          [--docker-containers 200]
 *
 * It starts its own PostgreSQL and Temporal dev server (test/setup/services.ts) and runs the real
 * sweep workflows and activities on a worker in this process, over two fresh databases: `rows`
 * synthetic workspace rows (inserted straight into PostgreSQL, spread over `orgs` orgs, statuses
 * mixed) and `baseline-rows` rows of the same mix (the baseline, measured in the same run).
 *
 * The backend is a synthetic one behind the backend contract (`listManaged`, `remove`): its
 * listing holds a resource per row that should have one, plus leftovers (a superseded generation,
 * containers of deleted workspaces, unknown ids, young ones, a foreign org), so the orphan sweep
 * has ~3 % of the rows to remove. dockerd cannot hold 10,000 containers on this machine; what a
 * real listing costs is measured separately: `--docker-containers` labelled, created-but-stopped
 * containers (an org no DB knows: every sweep leaves them alone), listed with DockerBackend and
 * removed at the end. Signals go to `workspace:<id>` ids with no workflow (answered not found by
 * the server): a real round trip each, cheaper than a signal that lands in a history.
 *
 * Per sweep it reports the run time (start → result, through Temporal) over the interval, the
 * history of the run (events, bytes, largest payload: Temporal refuses payloads over 2 MB), the
 * DB queries and backend listings per run, and the signals sent against the rows designed to
 * change. Also one "outage" health run where every online row changes at once (all 10,000
 * signalled). Progress goes to stderr; the Markdown report to stdout and .data/bench-sweep.md;
 * the last line of stdout is one JSON object.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import Dockerode from 'dockerode';
import { createActivities } from '../src/activities/index.js';
import { createSweepActivities } from '../src/activities/sweeps.js';
import type {
  ManagedResource,
  ManagedVolume,
  RemoveOptions,
  WorkspaceBackend,
} from '../src/backends/backend.js';
import { DockerBackend } from '../src/backends/docker/docker-backend.js';
import { workspaceLabels } from '../src/backends/docker/names.js';
import { UnconfiguredBackend } from '../src/backends/unconfigured.js';
import { ensureRuntimeImage } from '../src/cli/build-images.js';
import { openDatabase, type Database } from '../src/db/database.js';
import type { Queryable, Transactable } from '../src/db/queryable.js';
import { sweepLookup, sweepStats, workspacesToCheck } from '../src/db/sweeps.js';
import type { OrphanSweepResult } from '../src/domain/orphans.js';
import { SecretBox } from '../src/security/secrets.js';
import { createWorker } from '../src/worker/index.js';
import type { HealthSweepResult } from '../src/workflows/sweeps.js';
import { createFreshDatabase } from '../test/setup/databases.js';
import { ensureDockerDaemon, startPostgres, startTemporal } from '../test/setup/services.js';
import { loadAvg, machineFacts, machineLines, parseInt, writeReport, type Stops } from './bench-env.js';
import { errorText, fmt, guard, ms, progress, row, runMain } from './provision-util.js';

// The service's defaults (src/config.ts): the sweeps must finish well inside these.
const HEALTH_INTERVAL_MS = 30_000;
const ORPHAN_INTERVAL_MS = 300_000;
const HEARTBEAT_STALE_MS = 3 * 15_000;
const ORPHAN_GRACE_MS = 600_000;

/**
 * The mix, per row index modulo 100: [kind, status, heartbeat, resource]. `change` rows are the
 * ones the health sweep must signal (2 %); the rest are unchanged or not checked at all.
 */
type Kind = 'steady' | 'change' | 'other';
const MIX: Array<{
  upTo: number;
  kind: Kind;
  status: string;
  fresh: boolean;
  resource: 'running' | 'stopped' | null;
}> = [
  { upTo: 50, kind: 'steady', status: 'online', fresh: true, resource: 'running' },
  { upTo: 60, kind: 'steady', status: 'degraded', fresh: false, resource: 'running' },
  { upTo: 65, kind: 'steady', status: 'offline', fresh: false, resource: 'stopped' },
  { upTo: 66, kind: 'change', status: 'online', fresh: false, resource: 'stopped' }, // → offline
  { upTo: 67, kind: 'change', status: 'online', fresh: false, resource: 'running' }, // → degraded
  { upTo: 77, kind: 'other', status: 'stopped', fresh: false, resource: 'stopped' },
  { upTo: 87, kind: 'other', status: 'deleted', fresh: false, resource: null },
  { upTo: 92, kind: 'other', status: 'failed', fresh: false, resource: null },
  { upTo: 97, kind: 'other', status: 'provisioning', fresh: false, resource: 'running' },
  { upTo: 100, kind: 'other', status: 'restarting', fresh: false, resource: 'running' },
];
const mixOf = (i: number) => MIX.find((m) => i % 100 < m.upTo)!;

interface Fleet {
  db: Database;
  /** Counts the queries the activities send. */
  counted: Queryable & { queries: number };
  backend: SyntheticBackend;
  rows: number;
  /** Rows the health sweep must signal (normal run). */
  changing: number;
  /** Orphans in the listing (a page of them is removed per run). */
  orphans: number;
  taskQueue: string;
}

/** The backend contract over an in-memory listing; `remove` takes resources out of it. */
type SyntheticBackend = WorkspaceBackend & {
  listings: number;
  /** Puts every resource back (each measured run sees the same leak). */
  reset(): void;
  /** Every listed resource stopped: a dockerd restart, as the outage run plays it. */
  stopAll(): void;
};

function syntheticBackend(full: ManagedResource[]): SyntheticBackend {
  let listing = full.map((r) => ({ ...r }));
  const backend: SyntheticBackend = {
    // Everything the sweeps do not call answers not_configured (own arrow properties: spread keeps them).
    ...new UnconfiguredBackend('docker'),
    listings: 0,
    reset: () => {
      listing = full.map((r) => ({ ...r }));
    },
    stopAll: () => {
      listing = full.map((r) => ({ ...r, status: 'stopped' }));
    },
    listManaged: async () => {
      backend.listings++;
      return listing.map((r) => ({ ...r }));
    },
    listManagedVolumes: async (): Promise<ManagedVolume[]> => [],
    listManagedNetworks: async () => [],
    remove: async (workspaceId: string, opts: RemoveOptions = {}) => {
      listing = listing.filter(
        (r) =>
          r.workspaceId !== workspaceId ||
          (opts.generation !== undefined && r.generation !== opts.generation),
      );
    },
  };
  return backend;
}

/** A Queryable that counts what goes through it (the sweeps' one-query-per-run claim). */
function countingQueryable(pool: Transactable): Transactable & { queries: number } {
  const wrapped = {
    queries: 0,
    query: ((...args: Parameters<Queryable['query']>) => {
      wrapped.queries++;
      return pool.query(...args);
    }) as Queryable['query'],
    // Transactions (a schedule's delete) are not counted: the sweeps measured here run none.
    connect: pool.connect.bind(pool) as Transactable['connect'],
  };
  return wrapped;
}

/** Inserts the orgs and `rows` workspaces in two statements, and builds the matching listing. */
async function seed(
  db: Database,
  rows: number,
  orgs: number,
): Promise<{ listing: ManagedResource[]; changing: number; orphans: number }> {
  const orgIds = Array.from({ length: orgs }, (_, i) => `org-bench-${i}`);
  await db.pool.query(`INSERT INTO orgs (id, name) SELECT x, x FROM unnest($1::text[]) AS t(x)`, [orgIds]);
  const ids: string[] = [];
  const orgOf: string[] = [];
  const names: string[] = [];
  const statuses: string[] = [];
  const listing: ManagedResource[] = [];
  const old = new Date(Date.now() - 3_600_000);
  let changing = 0;
  let orphans = 0;
  for (let i = 0; i < rows; i++) {
    const id = `ws-bench-${String(i).padStart(6, '0')}`;
    const orgId = orgIds[i % orgs]!;
    const m = mixOf(i);
    ids.push(id);
    orgOf.push(orgId);
    names.push(`w${i}-${m.fresh ? 'fresh' : 'stale'}`);
    statuses.push(m.status);
    if (m.kind === 'change') changing++;
    if (m.resource) {
      listing.push({
        instanceId: `c-${id}-g2`,
        workspaceId: id,
        orgId,
        generation: 2,
        status: m.resource,
        createdAt: old,
      });
    }
    // Leftovers: a superseded generation (1 %), a deleted workspace's container (1 %), one of a
    // deleted workspace still young (1 %, kept), an unknown id (1 %), a foreign org's (0.5 %).
    const r = i % 100;
    const leftover = (workspaceId: string, gen: number, org: string, createdAt: Date) =>
      listing.push({
        instanceId: `c-${workspaceId}-g${gen}`,
        workspaceId,
        orgId: org,
        generation: gen,
        status: 'stopped',
        createdAt,
      });
    if (r === 1) leftover(id, 1, orgId, old);
    if (r === 80) leftover(id, 2, orgId, old);
    if (r === 81) leftover(id, 2, orgId, new Date());
    if (r === 2) leftover(`ws-unknown-${i}`, 1, orgId, old);
    if (r === 1 || r === 80 || r === 2) orphans++;
    if (r === 3 && i % 200 === 3) leftover(`ws-foreign-${i}`, 1, 'org-not-ours', old);
  }
  await db.pool.query(
    `INSERT INTO workspaces (id, org_id, name, backend, runtime, config_hash, generation, status,
                             last_heartbeat_at, runtime_state, workflow_id)
     SELECT id, org, name, 'docker', 'node', 'h', 2, status,
            CASE WHEN name LIKE '%-fresh' THEN now() ELSE now() - interval '1 hour' END, 'ok',
            'workspace:' || id
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(id, org, name, status)`,
    [ids, orgOf, names, statuses],
  );
  await db.pool.query('ANALYZE workspaces');
  return { listing, changing, orphans };
}

/** Fresh heartbeats stay fresh across the bench (they are `now()` again before every run). */
const refreshHeartbeats = (db: Database) =>
  db.pool.query(`UPDATE workspaces SET last_heartbeat_at = now() WHERE name LIKE '%-fresh'`);

interface HistoryFacts {
  events: number;
  bytes: number;
  /** The largest single payload in the history (an activity's input/result, the workflow's result). */
  maxPayloadBytes: number;
  activities: number;
}

async function historyFacts(handle: WorkflowHandle): Promise<HistoryFacts> {
  const history = await handle.fetchHistory();
  let maxPayloadBytes = 0;
  let bytes = 0;
  const walk = (v: unknown): void => {
    if (v instanceof Uint8Array) {
      bytes += v.byteLength;
      return;
    }
    if (!v || typeof v !== 'object') return;
    const payloads = (v as { payloads?: Array<{ data?: Uint8Array }> }).payloads;
    if (Array.isArray(payloads))
      for (const p of payloads) maxPayloadBytes = Math.max(maxPayloadBytes, p.data?.byteLength ?? 0);
    for (const x of Object.values(v)) walk(x);
  };
  const events = history.events ?? [];
  for (const e of events) walk(e);
  const activities = events.filter((e) => e.activityTaskScheduledEventAttributes).length;
  return { events: events.length, bytes, maxPayloadBytes, activities };
}

interface RunFacts<R> {
  ms: number;
  result: R;
  history: HistoryFacts;
  queries: number;
  listings: number;
  signals: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '10000' },
      'baseline-rows': { type: 'string', default: '100' },
      orgs: { type: 'string', default: '20' },
      runs: { type: 'string', default: '3' },
      'docker-containers': { type: 'string', default: '200' },
    },
  });
  const rows = parseInt('rows', values.rows, 100, 100_000);
  const baselineRows = parseInt('baseline-rows', values['baseline-rows'], 100, 100_000);
  const orgs = parseInt('orgs', values.orgs, 1, 1000);
  const runs = parseInt('runs', values.runs, 1, 20);
  const containers = parseInt('docker-containers', values['docker-containers'], 0, 2000);
  const command = ['npx tsx bench/sweep.ts', ...process.argv.slice(2)].join(' ');
  const date = new Date();
  const loadBefore = loadAvg();
  const wallStart = performance.now();
  const run = `sw${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const stops: Stops = [];
  const docker = new Dockerode();

  Runtime.install({ logger: new DefaultLogger('WARN') });
  try {
    progress('starting PostgreSQL and the Temporal dev server');
    const [postgres, temporal] = await guard(
      Promise.all([
        startPostgres({ log: progress }).then((s) => (stops.push(['postgres', s.stop]), s)),
        startTemporal({ log: progress }).then((s) => (stops.push(['temporal', s.stop]), s)),
      ]),
    );
    const connection = await Connection.connect({ address: temporal.address });
    stops.push(['temporal client', () => connection.close()]);
    const client = new Client({ connection, namespace: temporal.namespace });
    let signals = 0;
    // The activities' client, counting the signals they send (every other call goes straight through).
    const countingClient = {
      workflow: {
        getHandle: (workflowId: string) => {
          const handle = client.workflow.getHandle(workflowId);
          return {
            signal: (...args: Parameters<typeof handle.signal>) => {
              signals++;
              return handle.signal(...args);
            },
          };
        },
      },
    } as unknown as Client; // only workflow.getHandle(id).signal is used by the health sweep

    const fleet = async (label: string, n: number): Promise<Fleet> => {
      const fresh = await createFreshDatabase(postgres.adminUrl, `bench_sweep_${label}`);
      stops.push([`database ${label}`, () => fresh.drop()]);
      const db = await openDatabase({ databaseUrl: fresh.url, dataDir: '' });
      stops.push([`pool ${label}`, () => db.close()]);
      progress(`${label}: inserting ${n} workspace rows over ${orgs} orgs`);
      const t0 = performance.now();
      const { listing, changing, orphans } = await seed(db, n, orgs);
      progress(`${label}: ${n} rows, ${listing.length} listed resources in ${ms(performance.now() - t0)} ms`);
      const counted = countingQueryable(db.pool);
      const backend = syntheticBackend(listing);
      const taskQueue = `bench-${run}-${label}`;
      const { worker, connection: wc } = await createWorker({
        address: temporal.address,
        namespace: temporal.namespace,
        taskQueue,
        activities: createActivities({
          db: counted,
          backends: { docker: backend, ec2: new UnconfiguredBackend('ec2') },
          platformUrls: { docker: 'http://127.0.0.1:1', ec2: 'http://127.0.0.1:1' },
          bootstrapTokenTtlMs: 60_000,
          secrets: new SecretBox(randomBytes(32).toString('base64')),
          temporal: countingClient,
        }),
      });
      const running = worker.run();
      stops.push([
        `worker ${label}`,
        async () => {
          worker.shutdown();
          await running;
          await wc.close();
        },
      ]);
      return { db, counted, backend, rows: n, changing, orphans, taskQueue };
    };

    const sweepOnce = async <R>(
      f: Fleet,
      workflowType: 'healthSweepWorkflow' | 'orphanSweepWorkflow',
    ): Promise<RunFacts<R>> => {
      await refreshHeartbeats(f.db);
      const before = { queries: f.counted.queries, listings: f.backend.listings, signals };
      const t0 = performance.now();
      const handle = await client.workflow.start(workflowType, {
        taskQueue: f.taskQueue,
        workflowId: `${workflowType}-${f.taskQueue}-${randomBytes(3).toString('hex')}`,
        args: [
          workflowType === 'healthSweepWorkflow'
            ? { staleMs: HEARTBEAT_STALE_MS }
            : { graceMs: ORPHAN_GRACE_MS },
        ],
      });
      const result = (await guard(handle.result())) as R;
      const elapsed = performance.now() - t0;
      return {
        ms: elapsed,
        result,
        history: await historyFacts(handle),
        // The sweep's own query count: minus the recordSweepRun insert at the end of each run.
        queries: f.counted.queries - before.queries - 1,
        listings: f.backend.listings - before.listings,
        signals: signals - before.signals,
      };
    };

    const base = await fleet('base', baselineRows);
    const big = await fleet('big', rows);

    // Warm-up (workflow bundle, connections, plans), untimed.
    progress('warm-up runs (untimed)');
    await sweepOnce(base, 'healthSweepWorkflow');
    await sweepOnce(base, 'orphanSweepWorkflow');
    base.backend.reset();

    const measure = async <R>(f: Fleet, type: 'healthSweepWorkflow' | 'orphanSweepWorkflow') => {
      const out: Array<RunFacts<R>> = [];
      for (let i = 0; i < runs; i++) {
        f.backend.reset();
        out.push(await sweepOnce<R>(f, type));
        progress(`${type} over ${f.rows} rows: run ${i + 1}/${runs} ${ms(out.at(-1)!.ms)} ms`);
      }
      return out;
    };
    const health = await measure<HealthSweepResult>(big, 'healthSweepWorkflow');
    const healthBase = await measure<HealthSweepResult>(base, 'healthSweepWorkflow');
    const orphan = await measure<OrphanSweepResult>(big, 'orphanSweepWorkflow');
    const orphanBase = await measure<OrphanSweepResult>(base, 'orphanSweepWorkflow');

    // Outage: every listed resource stopped and no fresh heartbeat: every checked row changes.
    progress('outage run: every resource stopped, every heartbeat stale');
    big.backend.stopAll();
    await big.db.pool.query(
      `UPDATE workspaces SET name = replace(name, '-fresh', '-gone'),
                             last_heartbeat_at = now() - interval '1 hour'`,
    );
    const outage = await sweepOnce<HealthSweepResult>(big, 'healthSweepWorkflow');
    // What the design before the one-activity sweep passed through history here: every finding in
    // one activity result, then one activity per finding.
    const look = await createSweepActivities({
      db: big.db.pool,
      backends: { docker: big.backend, ec2: new UnconfiguredBackend('ec2') },
    }).checkHealth({ staleMs: HEARTBEAT_STALE_MS });
    const perFindingBytes = Buffer.byteLength(JSON.stringify(look));
    big.backend.reset();

    // The bare parts, on the big DB: the health query, the orphan lookup, a synthetic listing.
    const bare = async (fn: () => Promise<unknown>) => {
      const t: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        await fn();
        t.push(performance.now() - t0);
      }
      return median(t);
    };
    const listing = await big.backend.listManaged();
    const bareQueryMs = await bare(() => workspacesToCheck(big.db.pool));
    const bareLookupMs = await bare(() =>
      sweepLookup(
        big.db.pool,
        listing.map((r) => r.workspaceId),
        listing.map((r) => r.orgId),
      ),
    );

    // A real dockerd listing: `containers` labelled containers, created but never started.
    let dockerListing: { containers: number; listed: number; ms: number } | null = null;
    if (containers > 0) dockerListing = await realDockerListing(docker, containers, run, runs, stops);

    const stats = await sweepStats(big.db.pool);
    const loadAfter = loadAvg();
    const machine = await machineFacts(docker).catch(() => null);

    const hMs = median(health.map((r) => r.ms));
    const hMax = Math.max(...health.map((r) => r.ms));
    const oMs = median(orphan.map((r) => r.ms));
    const oMax = Math.max(...orphan.map((r) => r.ms));
    const hBase = median(healthBase.map((r) => r.ms));
    const oBase = median(orphanBase.map((r) => r.ms));
    const h0 = health[0]!;
    const o0 = orphan[0]!;
    const perContainerMs = dockerListing ? dockerListing.ms / Math.max(1, dockerListing.listed) : null;

    const lines = [
      '# Sweep cost',
      '',
      `- Command: \`${command}\``,
      `- Date: ${date.toISOString()}`,
      ...(machine
        ? machineLines(machine, loadBefore, loadAfter)
        : [`- Load average: ${loadBefore} → ${loadAfter}`]),
      `- Whole run: ${((performance.now() - wallStart) / 1000).toFixed(1)} s`,
      `- Rows: ${rows} over ${orgs} orgs (baseline ${baselineRows}); ${runs} timed runs each (median, max)`,
      '',
      row([
        'sweep',
        'rows',
        'median ms',
        'max ms',
        'interval ms',
        'max / interval',
        'baseline ms (rows)',
        'ratio to baseline',
      ]),
      row(['---', '--:', '--:', '--:', '--:', '--:', '--:', '--:']),
      row([
        'health',
        String(rows),
        ms(hMs),
        ms(hMax),
        String(HEALTH_INTERVAL_MS),
        fmt(hMax / HEALTH_INTERVAL_MS, 4),
        `${ms(hBase)} (${baselineRows})`,
        fmt(hMs / hBase),
      ]),
      row([
        'orphans',
        String(rows),
        ms(oMs),
        ms(oMax),
        String(ORPHAN_INTERVAL_MS),
        fmt(oMax / ORPHAN_INTERVAL_MS, 5),
        `${ms(oBase)} (${baselineRows})`,
        fmt(oMs / oBase),
      ]),
      row([
        'health, outage (all change)',
        String(rows),
        ms(outage.ms),
        ms(outage.ms),
        String(HEALTH_INTERVAL_MS),
        fmt(outage.ms / HEALTH_INTERVAL_MS, 4),
        '',
        '',
      ]),
      '',
      row([
        'run',
        'DB queries',
        'listings',
        'signals (expected)',
        'activities',
        'history events',
        'history payload bytes',
        'largest payload bytes',
      ]),
      row(['---', '--:', '--:', '--:', '--:', '--:', '--:', '--:']),
      row([
        'health',
        String(h0.queries),
        String(h0.listings),
        `${h0.signals} (${big.changing})`,
        String(h0.history.activities),
        String(h0.history.events),
        String(h0.history.bytes),
        String(h0.history.maxPayloadBytes),
      ]),
      row([
        'orphans',
        String(o0.queries),
        String(o0.listings),
        '–',
        String(o0.history.activities),
        String(o0.history.events),
        String(o0.history.bytes),
        String(o0.history.maxPayloadBytes),
      ]),
      row([
        'health, outage',
        String(outage.queries),
        String(outage.listings),
        `${outage.signals} (${outage.result.counts.checked - outage.result.counts.unchanged})`,
        String(outage.history.activities),
        String(outage.history.events),
        String(outage.history.bytes),
        String(outage.history.maxPayloadBytes),
      ]),
      '',
      `- Outage, before this design (findings through history): the look's result alone is ${perFindingBytes} bytes (${look.changed.length} findings; Temporal's payload limit is 2 MB = 2097152), followed by ${look.changed.length} signal activities (≥ 3 history events each)`,
      `- Orphan sweep over ${rows} rows: ${o0.result.counts.listed} listed, ${o0.result.counts.orphans} orphans (${big.orphans} seeded), ${o0.result.counts.removed} removed this run (one page), ${o0.result.counts.young} young kept, ${o0.result.counts.foreign} foreign kept`,
      `- Bare parts on ${rows} rows (median): health query ${fmt(bareQueryMs, 1)} ms, orphan lookup of ${listing.length} listed ${fmt(bareLookupMs, 1)} ms`,
      dockerListing
        ? `- Real dockerd listing (DockerBackend.listManaged): ${dockerListing.listed} managed containers listed (${dockerListing.containers} created for the bench, the rest other users') in ${fmt(dockerListing.ms, 1)} ms median, ${fmt(perContainerMs!, 3)} ms per container: ~${ms(perContainerMs! * rows)} ms at ${rows} if linear`
        : '- Real dockerd listing: skipped (--docker-containers 0)',
      `- sweep_stats after the runs (what /metrics reports): ${stats.map((s) => `${s.sweep}/${s.metric}/${s.label || '-'}=${fmt(s.value, s.metric === 'last_duration_seconds' ? 3 : 0)}`).join(', ')}`,
      '',
    ];
    const json = {
      bench: 'sweep',
      rows,
      baselineRows,
      runs,
      healthMs: Math.round(hMs),
      healthMaxMs: Math.round(hMax),
      healthIntervalMs: HEALTH_INTERVAL_MS,
      healthIntervalRatio: Number((hMax / HEALTH_INTERVAL_MS).toFixed(4)),
      healthBaselineMs: Math.round(hBase),
      healthQueries: h0.queries,
      healthListings: h0.listings,
      healthSignals: h0.signals,
      healthSignalsExpected: big.changing,
      healthHistoryEvents: h0.history.events,
      healthMaxPayloadBytes: h0.history.maxPayloadBytes,
      outageHealthMs: Math.round(outage.ms),
      outageIntervalRatio: Number((outage.ms / HEALTH_INTERVAL_MS).toFixed(4)),
      outageSignals: outage.signals,
      outageSignalsExpected: outage.result.counts.checked - outage.result.counts.unchanged,
      outageHistoryEvents: outage.history.events,
      outageMaxPayloadBytes: outage.history.maxPayloadBytes,
      outagePerFindingDesignPayloadBytes: perFindingBytes,
      orphanMs: Math.round(oMs),
      orphanMaxMs: Math.round(oMax),
      orphanIntervalMs: ORPHAN_INTERVAL_MS,
      orphanIntervalRatio: Number((oMax / ORPHAN_INTERVAL_MS).toFixed(5)),
      orphanBaselineMs: Math.round(oBase),
      orphanQueries: o0.queries,
      orphanListings: o0.listings,
      orphansFound: o0.result.counts.orphans,
      orphansRemovedPerRun: o0.result.counts.removed,
      orphanHistoryEvents: o0.history.events,
      orphanMaxPayloadBytes: o0.history.maxPayloadBytes,
      bareHealthQueryMs: Number(bareQueryMs.toFixed(1)),
      bareOrphanLookupMs: Number(bareLookupMs.toFixed(1)),
      backend: 'synthetic (contract) for the rows; real dockerd listing measured apart',
      dockerListing,
      load: [loadBefore, loadAfter],
    };
    const out = await writeReport('bench-sweep.md', lines.join('\n'));
    progress(`report written to ${out}`);
    process.stdout.write(`${JSON.stringify(json)}\n`);
  } finally {
    progress('cleaning up');
    for (const [name, fn] of stops.reverse()) {
      await fn().catch((err: unknown) => progress(`stopping ${name} failed: ${errorText(err)}`));
    }
  }
}

/** Creates `n` labelled containers (never started), times DockerBackend.listManaged, removes them. */
async function realDockerListing(docker: Dockerode, n: number, run: string, runs: number, stops: Stops) {
  await ensureDockerDaemon({ log: progress });
  const image = await ensureRuntimeImage({ docker, log: (line) => progress(`runtime image: ${line}`) });
  // An org no database has: every orphan sweep on this daemon counts these foreign and leaves them.
  const orgId = `org-bench-${run}`;
  const created: string[] = [];
  stops.push([
    'bench containers',
    async () => {
      for (const id of created)
        await docker
          .getContainer(id)
          .remove({ force: true })
          .catch(() => undefined);
    },
  ]);
  progress(`dockerd: creating ${n} labelled containers (not started)`);
  for (let i = 0; i < n; i++) {
    const c = await guard(
      docker.createContainer({
        name: `wo-bench-${run}-${i}`,
        Image: image,
        Labels: workspaceLabels({ workspaceId: `ws-${run}-${i}`, orgId, generation: 1 }),
        HostConfig: { NetworkMode: 'none' },
      }),
    );
    created.push(c.id);
  }
  const backend = new DockerBackend({ docker, image });
  const t: number[] = [];
  let listed = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    listed = (await backend.listManaged()).length;
    t.push(performance.now() - t0);
  }
  return { containers: n, listed, ms: median(t) };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

runMain(main);
