/**
 * Provision latency: what the orchestrator adds on top of starting the runtime container by hand.
 *
 *   npx tsx bench/provision.ts [--n 20]      (npm run bench:provision -- --n 20)
 *
 * One run starts its own PostgreSQL and Temporal dev server (test/setup/services.ts), makes sure
 * dockerd answers and the runtime image exists, then measures, N at a time:
 *
 * - baseline: raw dockerode create + start of the runtime image; the agent bootstraps from the fake
 *   registry (test/support/fake-registry.ts); timed from just before create until the agent
 *   answers GET /health on its published port;
 * - orchestrated: the real service (API + worker in this process), N concurrent
 *   POST /v1/workspaces, each timed from just before the POST until GET shows status "online";
 *   per-phase timestamps come from the database (workspace_transitions, boot_events).
 *
 * Both kinds get one untimed warm-up provision first. The report (Markdown) goes to stdout and to
 * .data/bench-provision.md; progress goes to stderr. Everything started is removed in `finally`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import Dockerode from 'dockerode';
import pino from 'pino';
import { DockerBackend } from '../src/backends/docker/docker-backend.js';
import { ensureRuntimeImage } from '../src/cli/build-images.js';
import { loadConfig } from '../src/config.js';
import { startService, type RunningService } from '../src/service.js';
import { createFreshDatabase, type FreshDatabase } from '../test/setup/databases.js';
import {
  REPO_ROOT,
  ensureDockerDaemon,
  startPostgres,
  startTemporal,
  type RunningPostgres,
  type RunningTemporal,
} from '../test/setup/services.js';
import { fakeBundle, startFakeRegistry, type FakeRegistry } from '../test/support/fake-registry.js';

const AGENT_PORT = '8080/tcp';
const HEARTBEAT_INTERVAL_MS = 5_000;
const POLL_INTERVAL_MS = 50;
/** Per-attempt cap of a /health or GET poll: a request through docker-proxy can hang otherwise. */
const ATTEMPT_TIMEOUT_MS = 1_000;
const PROVISION_TIMEOUT_MS = 120_000;
const BOOT_PHASES = [
  'boot',
  'config-materialized',
  'plugins-installed',
  'agent-started',
  'platform-health-ok',
] as const;

const progress = (message: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
};

// ---------------------------------------------------------------------------------------------
// Interruption: Ctrl-C rejects whatever phase is awaited, so the finally blocks still clean up.

const interrupt = new AbortController();
const interrupted = new Promise<never>((_, reject) => {
  interrupt.signal.addEventListener('abort', () => reject(interrupt.signal.reason as Error));
});
interrupted.catch(() => undefined);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    progress(`${signal}: cleaning up (send it again to exit at once)`);
    process.once(signal, () => process.exit(130));
    interrupt.abort(new Error(`interrupted by ${signal}`));
  });
}

function guard<T>(p: Promise<T>): Promise<T> {
  return Promise.race([p, interrupted]);
}

// ---------------------------------------------------------------------------------------------
// Statistics

interface Summary {
  n: number;
  min: number;
  p50: number;
  p95: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? Number.NaN;
}

function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    min: sorted[0] ?? Number.NaN,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

const ms = (v: number): string => (Number.isFinite(v) ? String(Math.round(v)) : '–');

/** Settles every promise first (so nothing is left running unobserved), then fails on the first error. */
async function allOrFail<T>(what: string, promises: Array<Promise<T>>): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) {
    const reason = failed[0]?.reason;
    throw new Error(
      `${what}: ${failed.length} of ${results.length} failed; first: ${reason instanceof Error ? reason.message : String(reason)}`,
      { cause: reason },
    );
  }
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/** Client requests the timed waits issued, to show how much load the pollers themselves add. */
const pollCount = { health: 0, get: 0 };

interface PollLoad {
  requests: number;
  windowMs: number;
}

/** Thrown by a probe to end a poll at once instead of retrying. */
class FatalError extends Error {}

/**
 * Calls `probe` every POLL_INTERVAL_MS until it returns a truthy value. Each attempt gets its own
 * AbortSignal.timeout (a request through docker-proxy can hang); a throw counts as "not yet"
 * unless it is a FatalError; Ctrl-C ends the wait.
 */
async function poll<T>(
  what: string,
  probe: (signal: AbortSignal) => Promise<T | false | null | undefined>,
  timeoutMs = PROVISION_TIMEOUT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (interrupt.signal.aborted) throw interrupt.signal.reason as Error;
    try {
      const value = await probe(AbortSignal.timeout(ATTEMPT_TIMEOUT_MS));
      if (value) return value;
    } catch (err) {
      if (err instanceof FatalError) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`, { cause: lastError });
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

// ---------------------------------------------------------------------------------------------
// Baseline: raw dockerode create + start

interface BaselineSample {
  id: string;
  /** Wall clock just before create (boot event timestamps are wall clock). */
  t0Wall: number;
  totalMs: number;
  /** Since just before create. */
  startedMs: number;
  phasesMs: Partial<Record<(typeof BOOT_PHASES)[number], number>>;
}

async function healthOk(endpoint: string, signal: AbortSignal): Promise<boolean> {
  pollCount.health++;
  const res = await fetch(`${endpoint}/health`, { signal });
  await res.arrayBuffer();
  return res.status === 200;
}

async function baselineOne(
  docker: Dockerode,
  registry: FakeRegistry,
  image: string,
  label: string,
  id: string,
): Promise<BaselineSample> {
  const entry = registry.add(fakeBundle(id, { heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS }));
  const t0Wall = Date.now();
  const t0 = performance.now();
  const container = await docker.createContainer({
    name: `wo-bench-${id}`,
    Image: image,
    Env: [`WO_PLATFORM_URL=${registry.containerUrl}`, `WO_BOOTSTRAP_TOKEN=${entry.bootstrapToken}`],
    Labels: { 'wo.bench': label },
    ExposedPorts: { [AGENT_PORT]: {} },
    HostConfig: {
      PortBindings: { [AGENT_PORT]: [{ HostIp: '127.0.0.1', HostPort: '' }] },
      ExtraHosts: ['host.docker.internal:host-gateway'],
    },
  });
  await container.start();
  const startedMs = performance.now() - t0;
  const info = await container.inspect();
  const port = info.NetworkSettings.Ports[AGENT_PORT]?.[0]?.HostPort;
  if (!port) throw new Error(`container for ${id} has no published port for ${AGENT_PORT}`);
  const endpoint = `http://127.0.0.1:${port}`;
  await poll(`agent ${id} to answer GET /health on ${endpoint}`, (signal) => healthOk(endpoint, signal));
  return { id, t0Wall, totalMs: performance.now() - t0, startedMs, phasesMs: {} };
}

/** Fills in each sample's boot phases (agent `ts` minus t0) from what the fake registry received. */
function baselinePhases(registry: FakeRegistry, samples: BaselineSample[]): void {
  for (const sample of samples) {
    for (const e of registry.bootEvents) {
      if (e.workspaceId !== sample.id) continue;
      const phase = BOOT_PHASES.find((p) => p === e.body.phase);
      if (phase && sample.phasesMs[phase] === undefined)
        sample.phasesMs[phase] = Date.parse(String(e.body.ts)) - sample.t0Wall;
    }
  }
}

async function removeBaselineContainers(docker: Dockerode, label: string): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`wo.bench=${label}`] } });
  await Promise.all(
    containers.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch((err: unknown) => {
          if ((err as { statusCode?: number }).statusCode !== 404) throw err;
        }),
    ),
  );
}

async function runBaseline(
  docker: Dockerode,
  registry: FakeRegistry,
  image: string,
  run: string,
  n: number,
): Promise<{ samples: BaselineSample[]; load: PollLoad }> {
  const label = `${run}-baseline`;
  try {
    progress('baseline: warm-up provision (untimed)');
    await guard(baselineOne(docker, registry, image, label, `${run}-bw`));
    await removeBaselineContainers(docker, label);
    progress(`baseline: ${n} concurrent create+start → GET /health`);
    const polls0 = pollCount.health;
    const window0 = performance.now();
    const samples = await guard(
      allOrFail(
        'baseline provisions',
        Array.from({ length: n }, (_, i) => baselineOne(docker, registry, image, label, `${run}-b${i}`)),
      ),
    );
    const load = { requests: pollCount.health - polls0, windowMs: performance.now() - window0 };
    // /health answers before the agent has necessarily reported platform-health-ok: let the
    // remaining boot events arrive (outside the timed window) so the phase table is complete.
    await guard(
      poll(
        'every baseline agent to report platform-health-ok',
        async () => samples.every((x) => registry.phases(x.id).includes('platform-health-ok')),
        15_000,
      ),
    ).catch((err: unknown) => progress(`baseline phases incomplete: ${String(err)}`));
    baselinePhases(registry, samples);
    return { samples, load };
  } finally {
    await removeBaselineContainers(docker, label).catch((err: unknown) =>
      progress(`baseline cleanup failed: ${String(err)}`),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Orchestrated: the real service

interface Api {
  call(
    method: string,
    pathName: string,
    opts?: { token?: string; body?: unknown; signal?: AbortSignal },
  ): Promise<{ status: number; body: Record<string, unknown> }>;
}

function apiClient(url: string): Api {
  return {
    async call(method, pathName, opts = {}) {
      const headers: Record<string, string> = {};
      if (opts.token) headers.authorization = `Bearer ${opts.token}`;
      if (opts.body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${url}${pathName}`, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: opts.signal ?? AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      try {
        return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
      } catch {
        return { status: res.status, body: { text } };
      }
    },
  };
}

/** Polls GET /v1/workspaces/:id every 50 ms until `status`; a `failed` workspace ends the wait at once. */
async function waitStatus(api: Api, token: string, id: string, status: string): Promise<void> {
  await poll(`workspace ${id} to reach ${status}`, async (signal) => {
    pollCount.get++;
    const res = await api.call('GET', `/v1/workspaces/${id}`, { token, signal });
    if (res.status !== 200) throw new Error(`GET ${id}: ${res.status} ${JSON.stringify(res.body)}`);
    if (res.body.status === 'failed')
      throw new FatalError(`workspace ${id} failed: ${String(res.body.error)}`);
    return res.body.status === status;
  });
}

interface OrchestratedSample {
  id: string;
  /** Just before the POST → 202. */
  postMs: number;
  /** Just before the POST → GET shows online. */
  totalMs: number;
  /** Wall clock when GET first showed online. */
  onlineSeenAt: number;
}

async function provisionOne(api: Api, token: string, name: string): Promise<OrchestratedSample> {
  const t0 = performance.now();
  const res = await api.call('POST', '/v1/workspaces', { token, body: { name, backend: 'docker' } });
  const postMs = performance.now() - t0;
  if (res.status !== 202) throw new Error(`POST /v1/workspaces: ${res.status} ${JSON.stringify(res.body)}`);
  const id = String(res.body.id);
  await waitStatus(api, token, id, 'online');
  return { id, postMs, totalMs: performance.now() - t0, onlineSeenAt: Date.now() };
}

async function deleteAll(api: Api, token: string, docker: Dockerode, ids: string[]): Promise<number> {
  const t0 = performance.now();
  await allOrFail(
    'deletes',
    ids.map(async (id) => {
      const res = await api.call('DELETE', `/v1/workspaces/${id}`, { token });
      if (res.status !== 202) throw new Error(`DELETE ${id}: ${res.status} ${JSON.stringify(res.body)}`);
      await waitStatus(api, token, id, 'deleted');
    }),
  );
  const wanted = new Set(ids);
  await poll(
    `no container left of ${ids.length} deleted workspaces`,
    async (signal) => {
      const all = await docker.listContainers({
        all: true,
        filters: { label: ['wo.workspace-id'] },
        abortSignal: signal,
      });
      return all.every((c) => !wanted.has(c.Labels['wo.workspace-id'] ?? ''));
    },
    60_000,
  );
  return performance.now() - t0;
}

interface PhaseRow {
  id: string;
  source: 'transition' | 'boot_event';
  key: string;
  /** Since workspaces.created_at (the API accepted the request). */
  ms: number;
}

/** First occurrence per workspace of each transition (status/phase) and boot phase, from the DB. */
async function phaseRows(service: RunningService, ids: string[]): Promise<PhaseRow[]> {
  const { rows } = await service.db.pool.query<{
    id: string;
    source: 'transition' | 'boot_event';
    key: string;
    ms: string;
  }>(
    `SELECT id, source, key, ms FROM (
       SELECT t.workspace_id AS id, 'transition' AS source,
              t.status || COALESCE('/' || t.phase, '') AS key,
              EXTRACT(EPOCH FROM (t.ts - w.created_at)) * 1000 AS ms,
              row_number() OVER (PARTITION BY t.workspace_id, t.status, t.phase ORDER BY t.id) AS nth
         FROM workspace_transitions t JOIN workspaces w ON w.id = t.workspace_id
        WHERE t.workspace_id = ANY($1)
       UNION ALL
       SELECT b.workspace_id, 'boot_event', b.phase,
              EXTRACT(EPOCH FROM (b.ts - w.created_at)) * 1000,
              row_number() OVER (PARTITION BY b.workspace_id, b.phase ORDER BY b.id)
         FROM boot_events b JOIN workspaces w ON w.id = b.workspace_id
        WHERE b.workspace_id = ANY($1)
     ) x WHERE nth = 1`,
    [ids],
  );
  return rows.map((r) => ({ ...r, ms: Number(r.ms) }));
}

async function createdAtOf(service: RunningService, ids: string[]): Promise<Map<string, number>> {
  const { rows } = await service.db.pool.query<{ id: string; created_at: Date }>(
    'SELECT id, created_at FROM workspaces WHERE id = ANY($1)',
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.created_at.getTime()]));
}

interface OrchestratedResult {
  samples: OrchestratedSample[];
  phases: PhaseRow[];
  createdAt: Map<string, number>;
  deleteMs: number;
  load: PollLoad;
}

async function runOrchestrated(
  docker: Dockerode,
  postgres: RunningPostgres,
  temporal: RunningTemporal,
  image: string,
  run: string,
  n: number,
): Promise<OrchestratedResult> {
  const cleanup: Array<[string, () => Promise<unknown>]> = [];
  const ids = new Set<string>();
  try {
    const db: FreshDatabase = await createFreshDatabase(postgres.adminUrl, 'bench');
    cleanup.push(['database', () => db.drop()]);
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'wo-bench-data-'));
    cleanup.push(['data dir', () => rm(dataDir, { recursive: true, force: true })]);
    const config = loadConfig({
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: temporal.namespace,
      RUNTIME_IMAGE: image,
      DATA_DIR: dataDir,
      ADMIN_TOKEN: randomBytes(16).toString('hex'),
      SECRETS_KEY: randomBytes(32).toString('base64'),
      TASK_QUEUE: `bench-${run}`,
      PORT: '0',
      HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_INTERVAL_MS),
      LOG_LEVEL: 'warn',
    });
    progress('orchestrated: starting the service (API + worker in-process)');
    // Logs go to stderr: stdout carries the report.
    const service = await guard(
      startService(config, { api: true, worker: true, log: pino({ level: 'warn' }, pino.destination(2)) }),
    );
    // Last in, first out: containers are removed before the service (and its DB) goes away.
    cleanup.push(['service', () => service.close()]);
    const leftovers = new DockerBackend({ docker, image });
    cleanup.push([
      'workspace containers',
      () => Promise.all([...ids].map((id) => leftovers.remove(id, { volumes: true }))),
    ]);

    const api = apiClient(service.url!);
    const org = await api.call('POST', '/v1/orgs', { token: config.ADMIN_TOKEN, body: { name: 'bench' } });
    if (org.status !== 201) throw new Error(`create org: ${org.status} ${JSON.stringify(org.body)}`);
    const token = String(org.body.apiKey);
    const provision = async (name: string) => {
      const sample = await provisionOne(api, token, name);
      ids.add(sample.id);
      return sample;
    };

    progress('orchestrated: warm-up provision + delete (untimed)');
    const warm = await guard(provision(`${run}-warm`));
    await guard(deleteAll(api, token, docker, [warm.id]));

    progress(`orchestrated: ${n} concurrent POST /v1/workspaces → online`);
    const polls0 = pollCount.get;
    const window0 = performance.now();
    const samples = await guard(
      allOrFail(
        'orchestrated provisions',
        Array.from({ length: n }, (_, i) => provision(`${run}-w${i}`)),
      ),
    );
    const load = { requests: pollCount.get - polls0, windowMs: performance.now() - window0 };
    const sampleIds = samples.map((s) => s.id);
    const phases = await phaseRows(service, sampleIds);
    const createdAt = await createdAtOf(service, sampleIds);

    progress(`orchestrated: deleting ${n} workspaces`);
    const deleteMs = await guard(deleteAll(api, token, docker, sampleIds));
    return { samples, phases, createdAt, deleteMs, load };
  } finally {
    for (const [name, fn] of cleanup.reverse()) {
      await fn().catch((err: unknown) => progress(`cleanup of ${name} failed: ${String(err)}`));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Report

interface Machine {
  cpus: number;
  cpuModel: string;
  memGiB: string;
  kernel: string;
  docker: string;
  storageDriver: string;
  node: string;
}

async function machineFacts(docker: Dockerode): Promise<Machine> {
  const [version, info] = await Promise.all([
    docker.version(),
    docker.info() as Promise<{ Driver?: string }>,
  ]);
  return {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memGiB: (os.totalmem() / 1024 ** 3).toFixed(1),
    kernel: `${os.type()} ${os.release()}`,
    docker: version.Version,
    storageDriver: info.Driver ?? 'unknown',
    node: process.version,
  };
}

function report(opts: {
  command: string;
  date: Date;
  machine: Machine;
  image: string;
  n: number;
  baseline: { samples: BaselineSample[]; load: PollLoad };
  orchestrated: OrchestratedResult;
  wallMs: number;
  /** 1-minute load average before the run and after the timed parts. */
  load: [number, number];
}): string {
  const { machine, n, orchestrated } = opts;
  const baseline = opts.baseline.samples;
  const rate = (l: PollLoad) =>
    `${l.requests} requests in ${(l.windowMs / 1000).toFixed(1)} s (≈${Math.round(l.requests / (l.windowMs / 1000))}/s)`;
  const p95Rank = Math.max(1, Math.ceil(0.95 * n));
  const b = summarize(baseline.map((s) => s.totalMs));
  const o = summarize(orchestrated.samples.map((s) => s.totalMs));
  const post = summarize(orchestrated.samples.map((s) => s.postMs));
  const ratio = (x: number, y: number) => (y > 0 ? `${(x / y).toFixed(2)}×` : '–');
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`;

  // Per-phase, orchestrated: ms since the API accepted the request (workspaces.created_at).
  const phaseOrder: Array<{ label: string; source: PhaseRow['source'] | 'client'; key: string }> = [
    { label: 'API accepted (`workspaces.created_at`)', source: 'client', key: 'accepted' },
    { label: 'transition `provisioning/preparing`', source: 'transition', key: 'provisioning/preparing' },
    { label: 'transition `provisioning/creating`', source: 'transition', key: 'provisioning/creating' },
    { label: 'transition `provisioning/booting`', source: 'transition', key: 'provisioning/booting' },
    ...BOOT_PHASES.map((p) => ({
      label: `agent boot event \`${p}\``,
      source: 'boot_event' as const,
      key: p,
    })),
    {
      label: 'transition `online/platform-health-ok`',
      source: 'transition',
      key: 'online/platform-health-ok',
    },
    { label: 'client GET first shows `online`', source: 'client', key: 'seen' },
  ];
  const valueOf = (id: string, source: string, key: string): number | undefined => {
    if (source === 'client') {
      if (key === 'accepted') return 0;
      const sample = orchestrated.samples.find((s) => s.id === id);
      const created = orchestrated.createdAt.get(id);
      return sample && created !== undefined ? sample.onlineSeenAt - created : undefined;
    }
    return orchestrated.phases.find((r) => r.id === id && r.source === source && r.key === key)?.ms;
  };
  const ids = orchestrated.samples.map((s) => s.id);
  // Step = time since the previous row that this workspace has a value for.
  const steps = new Map<string, number[]>();
  for (const id of ids) {
    let last: number | undefined;
    for (const step of phaseOrder) {
      const v = valueOf(id, step.source, step.key);
      if (v === undefined) continue;
      if (last !== undefined) steps.set(step.key, [...(steps.get(step.key) ?? []), v - last]);
      last = v;
    }
  }
  const phaseLines = phaseOrder.map((step, i) => {
    const s = summarize(ids.map((id) => valueOf(id, step.source, step.key)).filter((v) => v !== undefined));
    const d = summarize(steps.get(step.key) ?? []);
    return row([step.label, `${s.n}/${n}`, ms(s.p50), ms(s.p95), ms(s.max), i === 0 ? '–' : ms(d.p50)]);
  });

  const baselinePhases = [
    { label: 'container started (`start()` returned)', pick: (s: BaselineSample) => s.startedMs },
    ...BOOT_PHASES.map((p) => ({
      label: `agent boot event \`${p}\``,
      pick: (s: BaselineSample) => s.phasesMs[p],
    })),
    { label: 'GET /health answered 200 (the timed end)', pick: (s: BaselineSample) => s.totalMs },
  ].map(({ label, pick }) => {
    const s = summarize(baseline.map(pick).filter((v) => v !== undefined));
    return row([label, `${s.n}/${n}`, ms(s.p50), ms(s.p95), ms(s.max)]);
  });

  return [
    `## Provision latency: raw Docker vs orchestrated (N=${n})`,
    '',
    `- Command: \`${opts.command}\``,
    `- Date: ${opts.date.toISOString()}`,
    `- Machine: ${machine.cpus} CPUs (nproc; ${machine.cpuModel}), ${machine.memGiB} GiB RAM, ${machine.kernel}`,
    `- Docker ${machine.docker} (storage driver ${machine.storageDriver}), Node ${machine.node}`,
    `- Runtime image: \`${opts.image}\``,
    `- 1-min load average: ${opts.load[0].toFixed(2)} before the run, ${opts.load[1].toFixed(2)} after it (anything else busy on the machine skews both kinds).`,
    `- N = ${n} provisions of each kind, all ${n} started at once; the whole run took ${(opts.wallMs / 1000).toFixed(1)} s.`,
    `- Warm-up: one untimed provision of each kind ran first (image and page cache, the worker’s first`,
    '  workflow tasks, connection pools; the workflow bundle is built at service start, before it).',
    '  The warm-ups are not in the numbers below.',
    '',
    '| ms | p50 | p95 | max | min |',
    '|---|---:|---:|---:|---:|',
    row([
      'baseline: dockerode create+start → agent `GET /health` 200',
      ms(b.p50),
      ms(b.p95),
      ms(b.max),
      ms(b.min),
    ]),
    row([
      'orchestrated: `POST /v1/workspaces` → `GET` shows `online`',
      ms(o.p50),
      ms(o.p95),
      ms(o.max),
      ms(o.min),
    ]),
    row(['ratio orchestrated / baseline', ratio(o.p50, b.p50), ratio(o.p95, b.p95), ratio(o.max, b.max), '']),
    row(['(orchestrated `POST` → 202 alone)', ms(post.p50), ms(post.p95), ms(post.max), ms(post.min)]),
    '',
    '### Orchestrated: time from API accepted to each phase',
    '',
    'Milliseconds since `workspaces.created_at`; transitions from `workspace_transitions.ts`, agent phases',
    'from `boot_events.ts` (the agent’s clock: same host kernel). “step p50” is the median of each',
    'workspace’s time since the previous row.',
    '',
    '| phase | n | p50 | p95 | max | step p50 |',
    '|---|---:|---:|---:|---:|---:|',
    ...phaseLines,
    '',
    '### Baseline: time from just before create to each phase',
    '',
    '| phase | n | p50 | p95 | max |',
    '|---|---:|---:|---:|---:|',
    ...baselinePhases,
    '',
    '### Notes',
    '',
    `- Percentiles are nearest-rank over the N samples (p95 of ${n} = sample #${p95Rank} in ascending order).`,
    '- The two end points differ on purpose: the baseline ends when the agent’s A2A server answers',
    '  `/health` (right after `agent-started`); orchestrated ends when the workspace is `online`, i.e.',
    '  after the agent registered, reported `platform-health-ok`, the entity workflow was signalled',
    `  and wrote the transition, and a 50 ms client poll saw it. Polls (${POLL_INTERVAL_MS} ms apart,`,
    `  ${ATTEMPT_TIMEOUT_MS} ms per-attempt timeout) run concurrently for all N in both cases.`,
    `  Poll load: baseline \`GET /health\` ${rate(opts.baseline.load)} (to ${n} different containers);`,
    `  orchestrated \`GET /v1/workspaces/:id\` ${rate(orchestrated.load)}, all served by the same`,
    '  in-process API that also serves the agents’ registry calls.',
    '- Baseline containers get no named volumes and no restart policy; orchestrated ones get two',
    '  named volumes each (`/configs`, `/workspace`) via DockerBackend. The baseline agent bootstraps',
    '  from the fake registry (test/support/fake-registry.ts), the orchestrated one from the real API.',
    `- The API, the worker (Temporal activities + workflows), PostgreSQL (pool of 10) and the Temporal`,
    `  dev server share this machine's ${machine.cpus} CPUs with the ${n} booting containers.`,
    `- Teardown (not timed as a metric): ${n} concurrent DELETEs → all \`deleted\` and no container left`,
    `  in ${(orchestrated.deleteMs / 1000).toFixed(1)} s.`,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { n: { type: 'string', default: '20' } }, strict: true });
  const n = Number(values.n);
  if (!Number.isInteger(n) || n < 1 || n > 200)
    throw new Error(`--n must be an integer 1..200, got ${values.n}`);
  const command = ['npx tsx bench/provision.ts', ...process.argv.slice(2)].join(' ');
  const date = new Date();
  const loadBefore = os.loadavg()[0] ?? 0;
  const wallStart = performance.now();
  const run = `bn${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const docker = new Dockerode();
  // The in-process worker logs through the Temporal runtime (stderr); INFO is worker state chatter.
  Runtime.install({ logger: new DefaultLogger('WARN') });

  const stops: Array<[string, () => Promise<unknown>]> = [];
  try {
    progress('starting PostgreSQL, Temporal dev server, dockerd + runtime image');
    const [postgres, temporal, image] = await guard(
      Promise.allSettled([
        startPostgres({ log: progress }).then((s) => (stops.push(['postgres', s.stop]), s)),
        startTemporal({ log: progress }).then((s) => (stops.push(['temporal', s.stop]), s)),
        ensureDockerDaemon({ log: progress }).then(() =>
          ensureRuntimeImage({ docker, log: (line) => progress(`runtime image: ${line}`) }),
        ),
      ]),
    );
    if (postgres.status === 'rejected') throw postgres.reason;
    if (temporal.status === 'rejected') throw temporal.reason;
    if (image.status === 'rejected') throw image.reason;
    const machine = await machineFacts(docker);

    const registry = await startFakeRegistry();
    stops.push(['fake registry', () => registry.stop()]);
    const baseline = await runBaseline(docker, registry, image.value, run, n);
    const orchestrated = await runOrchestrated(docker, postgres.value, temporal.value, image.value, run, n);

    const markdown = report({
      command,
      date,
      machine,
      image: image.value,
      n,
      baseline,
      orchestrated,
      wallMs: performance.now() - wallStart,
      load: [loadBefore, os.loadavg()[0] ?? 0],
    });
    const out = path.join(REPO_ROOT, '.data', 'bench-provision.md');
    await mkdir(path.dirname(out), { recursive: true });
    await writeFile(out, markdown);
    await new Promise<void>((resolve) => process.stdout.write(markdown, () => resolve()));
    progress(`report written to ${out}`);
  } finally {
    for (const [name, stop] of stops.reverse()) {
      await stop().catch((err: unknown) => progress(`stopping ${name} failed: ${String(err)}`));
    }
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    progress(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
