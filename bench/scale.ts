/**
 * Fleet figures: what a fleet of idle workspaces costs the worker and Temporal, and whether a
 * second worker raises the provision rate.
 *
 *   npx tsx bench/scale.ts [--workspaces 1000] [--idle-seconds 60] [--rate-n 100] [--concurrency 25]
 *
 * It starts its own PostgreSQL and Temporal dev server (test/setup/services.ts) and the real service
 * (API + worker in this process) with a light fake docker backend behind the backend contract: its
 * start answers at once and, like the registry does for a real agent, signals the entity the
 * agent's proof (generation + the snapshot's config hash), so each workspace really goes `online`
 * through the entity workflow; no container runs.
 *
 * - fleet: `--workspaces` POST /v1/workspaces (`--concurrency` at a time) until all are `online`;
 * - at rest: for `--idle-seconds`, this process's RSS and CPU (the worker, the API and the bench;
 *   the bench itself only sleeps), and the history events the fleet's entity workflows add,
 *   extrapolated to one idle workspace per hour (heartbeats are not history: the target is 0).
 *   The fake has no agents, so no heartbeats reach the API, and the sweep schedules are off (with
 *   no heartbeats the health sweep would find every workspace stale): what is measured is what
 *   the entity itself adds while nothing happens (timers, continue-as-new, polling);
 * - provision rate: `--rate-n` more workspaces with the one in-process worker, then as many with a
 *   second worker on the same task queue (same process, same 2 CPUs).
 *
 * The 10,000-row health sweep is bench/sweep.ts (its report: docs/benchmarks.md). Progress goes to
 * stderr; the Markdown report to stdout and .data/bench-scale.md; the last line of stdout is one JSON
 * object.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import {
  BackendError,
  type ResourceInfo,
  type StartSpec,
  type WorkspaceBackend,
} from '../src/backends/backend.js';
import { UnconfiguredBackend } from '../src/backends/unconfigured.js';
import { createActivities } from '../src/activities/index.js';
import type { Queryable } from '../src/db/queryable.js';
import { createWorker } from '../src/worker/index.js';
import { agentReadySignal } from '../src/workflows/messages.js';
import {
  apiCall,
  loadAvg,
  parseInt,
  startBenchService,
  startDbAndTemporal,
  writeReport,
  type Stops,
} from './bench-env.js';
import { errorText, fmt, guard, ms, poll, progress, row, runMain } from './provision-util.js';

/** Docker in name only: resources are map entries, and a start proves the agent at once. */
class FakeBackend implements WorkspaceBackend {
  readonly kind = 'docker' as const;
  private readonly running = new Map<string, number>();
  db: Queryable | null = null;
  temporal: Client | null = null;
  // What a fleet at rest never calls: answered `not_configured`.
  private readonly none = new UnconfiguredBackend('docker');
  bootLog = this.none.bootLog;
  openFile = this.none.openFile;
  readFile = this.none.readFile;
  listFiles = this.none.listFiles;
  writeFile = this.none.writeFile;
  deleteFile = this.none.deleteFile;
  writeFiles = this.none.writeFiles;
  deleteFiles = this.none.deleteFiles;
  removeTree = this.none.removeTree;
  openTerminal = this.none.openTerminal;
  killTerminalSession = this.none.killTerminalSession;

  start = async (spec: StartSpec): Promise<ResourceInfo> => {
    this.running.set(spec.workspaceId, spec.generation);
    const { db, temporal } = this;
    if (!db || !temporal) throw new BackendError('transient', 'fake backend not bound yet');
    const { rows } = await db.query('SELECT boot_config_hash FROM workspaces WHERE id = $1', [
      spec.workspaceId,
    ]);
    const configHash = String(rows[0]?.boot_config_hash ?? '');
    // What the registry sends when the agent registers (after the start returns, as a real boot).
    setImmediate(() => {
      void temporal.workflow
        .getHandle(`workspace:${spec.workspaceId}`)
        .signal(agentReadySignal, { generation: spec.generation, configHash })
        .catch((err: unknown) => progress(`ready signal for ${spec.workspaceId} failed: ${errorText(err)}`));
    });
    return { instanceId: `fake-${spec.workspaceId}-g${spec.generation}`, endpoint: null, status: 'running' };
  };
  stop = async (): Promise<void> => undefined;
  remove = async (workspaceId: string): Promise<void> => {
    this.running.delete(workspaceId);
  };
  status = async (workspaceId: string, generation: number) =>
    this.running.get(workspaceId) === generation ? ('running' as const) : ('missing' as const);
  describe = async () => null;
  listManaged = async () => [];
  listManagedVolumes = async () => [];
  listManagedNetworks = async () => [];
  removeUnusedOrgNetwork = async () => false;
  removeOrg = async () => [];
  ping = async (): Promise<void> => undefined;
}

async function provisionMany(
  url: string,
  token: string,
  n: number,
  concurrency: number,
  label: string,
): Promise<{ ids: string[]; wallMs: number }> {
  const ids: string[] = [];
  let next = 0;
  const t0 = performance.now();
  const one = async (i: number) => {
    const res = await apiCall(url, 'POST', '/v1/workspaces', {
      token,
      body: { name: `${label}-${i}`, backend: 'docker' },
    });
    if (res.status !== 202) throw new Error(`POST: ${res.status} ${JSON.stringify(res.body)}`);
    const id = String(res.body.id);
    await poll(`${id} online`, async (signal) => {
      const got = await apiCall(url, 'GET', `/v1/workspaces/${id}`, { token, signal });
      if (got.body.status === 'failed') throw new Error(`${id} failed: ${String(got.body.error)}`);
      return got.body.status === 'online';
    });
    ids.push(id);
  };
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) await one(next++);
    }),
  );
  return { ids, wallMs: performance.now() - t0 };
}

/** History length of each workflow, read from the server (a describe per workflow). */
async function historyLengths(temporal: Client, ids: string[]): Promise<number> {
  let total = 0;
  for (const id of ids)
    total += (await temporal.workflow.getHandle(`workspace:${id}`).describe()).historyLength;
  return total;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      workspaces: { type: 'string', default: '1000' },
      'idle-seconds': { type: 'string', default: '60' },
      'rate-n': { type: 'string', default: '100' },
      concurrency: { type: 'string', default: '25' },
    },
    strict: true,
  });
  const fleetN = parseInt('workspaces', values.workspaces, 1, 100_000);
  const idleS = parseInt('idle-seconds', values['idle-seconds'], 5, 86_400);
  const rateN = parseInt('rate-n', values['rate-n'], 1, 100_000);
  const concurrency = parseInt('concurrency', values.concurrency, 1, 1000);
  const command = ['npx tsx bench/scale.ts', ...process.argv.slice(2)].join(' ');
  const run = `sc${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const loadBefore = loadAvg();
  const stops: Stops = [];
  try {
    const { postgres, temporal } = await startDbAndTemporal(stops);
    const fake = new FakeBackend();
    const taskQueue = `bench-${run}`;
    const { service, url, token, secrets } = await startBenchService({
      infra: { postgres, temporal, image: 'none' },
      database: 'bench_scale',
      taskQueue,
      env: { SWEEP_SCHEDULES: 'off', ORG_WORKSPACE_QUOTA: '1000000' },
      label: '',
      stops,
      backends: { docker: fake },
    });
    fake.db = service.db.pool;
    fake.temporal = service.temporal;

    progress(`fleet: provisioning ${fleetN} workspaces, ${concurrency} at a time`);
    const fleet = await guard(provisionMany(url, token, fleetN, concurrency, 'fleet'));
    progress(`fleet online in ${(fleet.wallMs / 1000).toFixed(1)} s`);

    // At rest: let the last tasks settle, then measure.
    await new Promise((r) => setTimeout(r, 2000));
    const sample = fleet.ids;
    const events0 = await historyLengths(service.temporal, sample);
    const rss0 = process.memoryUsage().rss;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    progress(`at rest for ${idleS} s`);
    await new Promise((r) => setTimeout(r, idleS * 1000));
    const cpu = process.cpuUsage(cpu0);
    const restMs = performance.now() - t0;
    const rss1 = process.memoryUsage().rss;
    const events1 = await historyLengths(service.temporal, sample);
    const cpuPct = ((cpu.user + cpu.system) / 1000 / restMs) * 100;
    const eventsPerWsHour = ((events1 - events0) / sample.length) * (3_600_000 / restMs);

    progress(`provision rate: ${rateN} with 1 worker`);
    const one = await guard(provisionMany(url, token, rateN, concurrency, 'rate1'));
    const second = await createWorker({
      address: temporal.address,
      namespace: temporal.namespace,
      taskQueue,
      activities: createActivities({
        db: service.db.pool,
        backends: service.backends,
        platformUrls: { docker: url, ec2: url },
        bootstrapTokenTtlMs: 600_000,
        secrets,
      }),
    });
    const secondRun = second.worker.run();
    stops.push([
      'second worker',
      async () => {
        second.worker.shutdown();
        await secondRun;
        await second.connection.close();
      },
    ]);
    progress(`provision rate: ${rateN} with 2 workers`);
    const two = await guard(provisionMany(url, token, rateN, concurrency, 'rate2'));
    const rate1 = rateN / (one.wallMs / 1000);
    const rate2 = rateN / (two.wallMs / 1000);

    const markdown = [
      `# Fleet figures (${fleetN} idle workspaces, fake backend)`,
      '',
      `- Command: \`${command}\``,
      `- Date: ${new Date().toISOString()}; ${os.cpus().length} CPUs; load average ${loadBefore} before, ${loadAvg()} after`,
      '',
      '| figure | value |',
      '|---|---:|',
      row([
        `fleet: ${fleetN} workspaces provisioned to \`online\` (${concurrency} at a time)`,
        `${fmt(fleet.wallMs / 1000, 1)} s`,
      ]),
      row([
        'process RSS at rest (worker + API + bench, one process)',
        `${ms(rss1 / 2 ** 20)} MiB (${ms(rss0 / 2 ** 20)} at the start of the rest)`,
      ]),
      row([`process CPU at rest (over ${fmt(restMs / 1000, 0)} s)`, `${fmt(cpuPct, 1)} % of one CPU`]),
      row(['history events the fleet added at rest', String(events1 - events0)]),
      row(['history events per idle workspace per hour (extrapolated)', fmt(eventsPerWsHour, 2)]),
      row([`provision rate, 1 worker (${rateN} workspaces)`, `${fmt(rate1, 1)} /s`]),
      row([`provision rate, 2 workers (${rateN} workspaces)`, `${fmt(rate2, 1)} /s`]),
      row(['2 workers / 1', `${fmt(rate2 / rate1, 2)}×`]),
      '',
    ].join('\n');
    await writeReport('bench-scale.md', markdown);
    console.log(
      JSON.stringify({
        bench: 'scale',
        backend: 'fake',
        workspaces: fleetN,
        idleSeconds: Math.round(restMs / 1000),
        rssMiB: Math.round(rss1 / 2 ** 20),
        cpuPercentAtRest: Number(cpuPct.toFixed(2)),
        eventsPerIdleWorkspaceHour: Number(eventsPerWsHour.toFixed(3)),
        provisionRate1: Number(rate1.toFixed(2)),
        provisionRate2: Number(rate2.toFixed(2)),
        workerScaling: Number((rate2 / rate1).toFixed(3)),
      }),
    );
  } finally {
    for (const [name, stop] of stops.reverse()) {
      await stop().catch((err: unknown) => progress(`stopping ${name} failed: ${errorText(err)}`));
    }
  }
}

runMain(main);
