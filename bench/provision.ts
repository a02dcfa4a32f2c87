/**
 * Provision latency: what the orchestrator adds on top of starting the agent by hand, per backend.
 *
 *   npx tsx bench/provision.ts [--n 20 | --n 1,10,20] [--n-ec2 N[,N…]] [--backends docker,ec2]
 *   (npm run bench:provision -- --n 20)
 *
 * One run starts its own PostgreSQL and Temporal dev server (test/setup/services.ts), makes sure
 * dockerd answers and the runtime image exists; for ec2 also moto (startMoto), the ec2-sim VM image
 * (ensureVmImage) and the simulator (startEc2Sim: moto's instances booted as containers at their
 * private IPs). Then, per backend (docker first), N at a time:
 *
 * - baseline (bench/provision-baselines.ts): docker — raw dockerode create + start until the agent
 *   answers GET /health on its published port; ec2 — raw RunInstances through the sim's endpoint
 *   with the product's user-data (renderUserData) until the agent answers
 *   GET http://<PrivateIpAddress>:8080/health. Both agents bootstrap from the fake registry
 *   (test/support/fake-registry.ts);
 * - docker only, backend-direct (same file): the product's DockerBackend.start(spec) called
 *   directly, so the same container spec as orchestrated (volumes, network placement, caps, limits)
 *   without API, Temporal or database, until GET /health on the endpoint start() reports. The
 *   ratio orchestrated / backend-direct is the orchestration's share; backend-direct / raw, the spec's;
 * - orchestrated: the real service (API + worker in this process; for ec2 configured as the parity
 *   suite does, test/parity/backends.ts), N concurrent POST /v1/workspaces {name, backend}, each
 *   timed from just before the POST until its `/events` stream shows "online"; per-phase timestamps come
 *   from the database (workspace_transitions, boot_events) and from dockerd's `start` events; on
 *   docker the service is handed its DockerBackend built over a client that times each daemon call
 *   (timedDocker), so the orchestrated and backend-direct starts' daemon calls compare directly.
 *
 * Each kind gets one untimed warm-up provision first. The report (Markdown) goes to stdout and to
 * .data/bench-provision.md, followed on stdout by one JSON line per backend and N
 * (`{"bench":"provision","backend":"docker","n":10,"ratioP50":…,"ratioP95":…,…}`); progress goes to
 * stderr. Several Ns run one after the other, each with a fresh service. Everything started is removed in `finally`:
 * containers, instances (terminated), the simulator, moto, Temporal, PostgreSQL.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { EC2Client } from '@aws-sdk/client-ec2';
import Dockerode from 'dockerode';
import type { BackendKind } from '../src/backends/backend.js';
import { DockerBackend } from '../src/backends/docker/docker-backend.js';
import { iccIsOff } from '../src/backends/docker/network.js';
import { createEc2Client } from '../src/backends/ec2/client.js';
import { MANAGED_BY, TAG } from '../src/backends/ec2/tags.js';
import type { RunningService, ServiceOptions } from '../src/service.js';
import { startEc2Sim, type Ec2Sim } from '../test/ec2-sim/sim.js';
import { MOTO_CREDENTIALS, simServiceEnv } from '../test/ec2-sim/service-env.js';
import {
  motoBinary,
  type RunningMoto,
  type RunningPostgres,
  type RunningTemporal,
} from '../test/setup/services.js';
import { startFakeRegistry, type FakeRegistry } from '../test/support/fake-registry.js';
import {
  runDockerBackendDirect,
  runDockerBaseline,
  runEc2Baseline,
  terminateInstances,
  timedDocker,
  type BaselineResult,
  type BaselineSample,
} from './provision-baselines.js';
import {
  ALL_BACKENDS,
  apiCall,
  machineFacts as baseMachineFacts,
  parseBackends,
  parseInt,
  startBenchService,
  startInfra,
  writeReport,
  type Machine as BaseMachine,
  type Stops,
} from './bench-env.js';
import { readSse } from '../src/cli/wsctl/sse.js';
import {
  ATTEMPT_TIMEOUT_MS,
  BOOT_PHASES,
  FatalError,
  POLL_INTERVAL_MS,
  PROVISION_TIMEOUT_MS,
  allOrFail,
  errorText,
  guard,
  interrupt,
  ms,
  poll,
  pollCount,
  progress,
  row,
  runMain,
  summarize,
  times as ratio,
  watchStarts,
  type PollLoad,
  type StartWatcher,
  type Summary,
} from './provision-util.js';

/** A report row of one kind's durations: p50, p95, max, min. */
const msRow = (label: string, s: Summary): string => row([label, ms(s.p50), ms(s.p95), ms(s.max), ms(s.min)]);

/** A report row of one kind's durations over another's: p50, p95, max (no min). */
const ratioRow = (label: string, x: Summary, y: Summary): string =>
  row([label, ratio(x.p50, y.p50), ratio(x.p95, y.p95), ratio(x.max, y.max), '']);

/** The label both DockerBackend's containers and ec2-sim's VM containers carry. */
const WORKSPACE_LABEL = 'wo.workspace-id';

// ---------------------------------------------------------------------------------------------
// Orchestrated: the real service

interface Api {
  call(
    method: string,
    pathName: string,
    opts?: { token?: string; body?: unknown; signal?: AbortSignal },
  ): Promise<{ status: number; body: Record<string, unknown> }>;
}

function apiClient(url: string): Api & { url: string } {
  return { url, call: (method, pathName, opts) => apiCall(url, method, pathName, opts) };
}

/**
 * Follows GET /v1/workspaces/:id/events (the live stream a UI or `wsctl` follows) until a
 * transition to `status`; `failed` ends the wait at once. The service runs with its default
 * EVENTS_POLL_MS: a transition reaches the stream at its commit (PostgreSQL NOTIFY wakes the one
 * shared transitions poll), so this end is at least as prompt as the baseline's /health polls,
 * without N clients each asking the API 20 times a second (at N=20 that was ~250 GETs/s, each an
 * authenticated DB read, on the same 2 CPUs as the provisions measured).
 */
async function followStatus(api: { url: string }, token: string, id: string, status: string): Promise<void> {
  const ac = new AbortController();
  const timer = setTimeout(
    () =>
      ac.abort(new Error(`timed out after ${PROVISION_TIMEOUT_MS} ms waiting for ${id} to reach ${status}`)),
    PROVISION_TIMEOUT_MS,
  );
  const onInterrupt = () => ac.abort(interrupt.signal.reason);
  interrupt.signal.addEventListener('abort', onInterrupt);
  try {
    pollCount.get++;
    const res = await fetch(`${api.url}/v1/workspaces/${id}/events`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      signal: ac.signal,
    });
    if (res.status !== 200 || !res.body)
      throw new FatalError(`GET ${id}/events: ${res.status} ${await res.text()}`);
    for await (const ev of readSse(res.body)) {
      const t = JSON.parse(ev.data) as { status?: string; message?: string };
      if (t.status === status) return;
      if (t.status === 'failed') throw new FatalError(`workspace ${id} failed: ${String(t.message)}`);
    }
    throw new Error(`the event stream of ${id} ended before ${status}`);
  } finally {
    clearTimeout(timer);
    interrupt.signal.removeEventListener('abort', onInterrupt);
    ac.abort();
  }
}

/** Polls GET /v1/workspaces/:id every 50 ms until `status`; a `failed` workspace ends the wait at once. */
async function waitStatus(api: Api, token: string, id: string, status: string): Promise<void> {
  await poll(`workspace ${id} to reach ${status}`, async (signal) => {
    pollCount.get++;
    const res = await api.call('GET', `/v1/workspaces/${id}`, { token, signal });
    // Rate limited: every further poll would be refused too, measuring the limiter's window.
    if (res.status === 429) throw new FatalError(`GET ${id}: 429 ${JSON.stringify(res.body)}`);
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
  /** Just before the POST → the event stream shows online. */
  totalMs: number;
  /** Wall clock when the event stream showed online. */
  onlineSeenAt: number;
}

async function provisionOne(
  api: Api & { url: string },
  token: string,
  name: string,
  backend: BackendKind,
): Promise<OrchestratedSample> {
  const t0 = performance.now();
  const res = await api.call('POST', '/v1/workspaces', { token, body: { name, backend } });
  const postMs = performance.now() - t0;
  if (res.status !== 202) throw new Error(`POST /v1/workspaces: ${res.status} ${JSON.stringify(res.body)}`);
  const id = String(res.body.id);
  await followStatus(api, token, id, 'online');
  return { id, postMs, totalMs: performance.now() - t0, onlineSeenAt: Date.now() };
}

/** DELETEs, waits for `deleted`, then for no container (workspace's or sim VM) left. */
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
        filters: { label: [WORKSPACE_LABEL] },
        abortSignal: signal,
      });
      return all.every((c) => !wanted.has(c.Labels[WORKSPACE_LABEL] ?? ''));
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
  /** Workspace id → wall clock of dockerd's `start` event of its container / sim VM. */
  resourceStarts: Map<string, number>;
  deleteMs: number;
  load: PollLoad;
  /** startService (API + worker: migrations, connections, the workflow bundle) until it answers. */
  serviceStartMs: number;
  /** docker: the daemon calls the service's DockerBackend made while the timed provisions ran. */
  daemonCalls?: Map<string, number[]>;
}

async function runOrchestrated(opts: {
  backend: BackendKind;
  docker: Dockerode;
  postgres: RunningPostgres;
  temporal: RunningTemporal;
  image: string;
  run: string;
  n: number;
  /** Settings that enable the backend (ec2: the simulator's endpoint, AMI, subnet, …). */
  env: Record<string, string>;
  starts: StartWatcher;
  /** Removes whatever of these workspaces is left (containers / instances) after a failure. */
  leftovers: (ids: string[]) => Promise<unknown>;
  /** docker: the service's backend, built over a timed client whose calls go to `daemonCalls`. */
  timed?: { backends: ServiceOptions['backends']; daemonCalls: Map<string, number[]> };
}): Promise<OrchestratedResult> {
  const { backend, docker, run, n } = opts;
  const cleanup: Stops = [];
  const ids = new Set<string>();
  try {
    const started = performance.now();
    const { service, url, token } = await startBenchService({
      infra: opts,
      database: `bench_${backend}`,
      taskQueue: `bench-${run}-${backend}`,
      // One `/events` stream per workspace in flight, all with the bench's one key (default cap 20).
      env: {
        EVENT_STREAMS_PER_PRINCIPAL: String(Math.max(20, n + 1)),
        ...opts.env,
      },
      label: `${backend} orchestrated: `,
      stops: cleanup,
      ...(opts.timed ? { backends: opts.timed.backends } : {}),
    });
    const serviceStartMs = performance.now() - started;
    // Last in, first out: resources are removed before the service (and its DB) goes away.
    cleanup.push([`${backend} workspace resources`, () => opts.leftovers([...ids])]);

    const api = apiClient(url);
    const provision = async (name: string) => {
      const sample = await provisionOne(api, token, name, backend);
      ids.add(sample.id);
      return sample;
    };

    progress(`${backend} orchestrated: warm-up provision + delete (untimed)`);
    const warm = await guard(provision(`${run}-${backend}-warm`));
    await guard(deleteAll(api, token, docker, [warm.id]));

    progress(`${backend} orchestrated: ${n} concurrent POST /v1/workspaces → online`);
    const polls0 = pollCount.get;
    const window0 = performance.now();
    opts.timed?.daemonCalls.clear();
    const samples = await guard(
      allOrFail(
        `${backend} orchestrated provisions`,
        Array.from({ length: n }, (_, i) => provision(`${run}-${backend}-w${i}`)),
      ),
    );
    const load = { requests: pollCount.get - polls0, windowMs: performance.now() - window0 };
    // A copy: the timed client goes on recording (the deletes below).
    const daemonCalls = opts.timed
      ? new Map([...opts.timed.daemonCalls].map(([name, list]) => [name, [...list]]))
      : undefined;
    const sampleIds = samples.map((s) => s.id);
    const phases = await phaseRows(service, sampleIds);
    const createdAt = await createdAtOf(service, sampleIds);
    const resourceStarts = new Map(
      sampleIds.flatMap((id) => {
        const at = opts.starts.starts.get(id);
        return at === undefined ? [] : [[id, at] as const];
      }),
    );

    progress(`${backend} orchestrated: deleting ${n} workspaces`);
    const deleteMs = await guard(deleteAll(api, token, docker, sampleIds));
    return { samples, phases, createdAt, resourceStarts, deleteMs, load, serviceStartMs, daemonCalls };
  } finally {
    for (const [name, fn] of cleanup.reverse()) {
      await fn().catch((err: unknown) => progress(`cleanup of ${name} failed: ${errorText(err)}`));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One backend: baseline, then orchestrated

interface BackendResult {
  backend: BackendKind;
  n: number;
  baseline: BaselineResult;
  /** docker only: DockerBackend.start(spec) directly, the product's container spec (see above). */
  spec?: BaselineResult;
  orchestrated: OrchestratedResult;
  /** 1-minute load average when this backend's part began and when its timed parts were over. */
  load: [number, number];
  wallMs: number;
}

interface Shared {
  docker: Dockerode;
  postgres: RunningPostgres;
  temporal: RunningTemporal;
  image: string;
  registry: FakeRegistry;
  starts: StartWatcher;
  run: string;
}

async function benchDocker(shared: Shared, n: number): Promise<BackendResult> {
  const t0 = performance.now();
  const loadBefore = os.loadavg()[0] ?? 0;
  const { docker, image } = shared;
  // Ids (and the fake registry's boot events kept by id) distinct per N of one run.
  const baseline = await runDockerBaseline({
    docker,
    registry: shared.registry,
    image,
    run: `${shared.run}-n${n}`,
    n,
  });
  const spec = await runDockerBackendDirect({
    docker,
    registry: shared.registry,
    image,
    run: `${shared.run}-n${n}`,
    n,
    starts: shared.starts,
  });
  const leftovers = new DockerBackend({ docker, image });
  // The service's docker backend as createBackends builds it (default pool, limits, socket), over
  // a client that times its daemon calls: the same table as backend-direct's.
  const daemonCalls = new Map<string, number[]>();
  const timedBackend = new DockerBackend({ docker: timedDocker(new Dockerode(), daemonCalls), image });
  const orchestrated = await runOrchestrated({
    ...shared,
    backend: 'docker',
    n,
    env: {},
    timed: { backends: { docker: timedBackend }, daemonCalls },
    leftovers: (ids) => Promise.all(ids.map((id) => leftovers.remove(id, { volumes: true }))),
  });
  const loadAfter = os.loadavg()[0] ?? 0;
  return {
    backend: 'docker',
    n,
    baseline,
    spec,
    orchestrated,
    load: [loadBefore, loadAfter],
    wallMs: performance.now() - t0,
  };
}

async function benchEc2(
  shared: Shared,
  moto: RunningMoto,
  vmImage: string,
  n: number,
): Promise<BackendResult> {
  const t0 = performance.now();
  const loadBefore = os.loadavg()[0] ?? 0;
  let sim: Ec2Sim | undefined;
  let ec2: EC2Client | undefined;
  try {
    progress('ec2: starting the simulator');
    sim = await guard(
      startEc2Sim({
        motoEndpoint: moto.endpoint,
        vmImage,
        docker: shared.docker,
        // Boots, stops and removals are routine: only trouble goes to stderr.
        log: (line) => {
          if (/fail|cannot|error|refus/i.test(line)) progress(`ec2-sim: ${line}`);
        },
      }),
    );
    if (!sim.subnetId) throw new Error('ec2-sim has no subnet to launch into');
    ec2 = createEc2Client({ region: sim.region, endpoint: sim.endpoint, credentials: MOTO_CREDENTIALS });
    const client = ec2;
    const baseline = await runEc2Baseline({
      ec2: client,
      sim,
      vmStarts: shared.starts,
      registry: shared.registry,
      run: `${shared.run}-n${n}`,
      n,
    });
    const orchestrated = await runOrchestrated({
      ...shared,
      backend: 'ec2',
      n,
      env: simServiceEnv(sim),
      leftovers: async (ids) => {
        if (ids.length > 0)
          await terminateInstances(client, [{ Name: `tag:${TAG.workspaceId}`, Values: ids }]);
      },
    });
    const loadAfter = os.loadavg()[0] ?? 0;
    return {
      backend: 'ec2',
      n,
      baseline,
      orchestrated,
      load: [loadBefore, loadAfter],
      wallMs: performance.now() - t0,
    };
  } finally {
    // Anything of ours still alive in moto (a failure mid-way) is terminated, then the sim removes
    // its VM containers on stop.
    if (ec2) {
      const left = await terminateInstances(ec2, [
        { Name: `tag:${TAG.managedBy}`, Values: [MANAGED_BY] },
      ]).catch((err: unknown) => {
        progress(`ec2: terminating leftover instances failed: ${errorText(err)}`);
        return 0;
      });
      if (left > 0) progress(`ec2: terminated ${left} leftover instance(s)`);
      ec2.destroy();
    }
    await sim?.stop().catch((err: unknown) => progress(`stopping ec2-sim failed: ${errorText(err)}`));
  }
}

// ---------------------------------------------------------------------------------------------
// Report

interface Machine extends BaseMachine {
  storageDriver: string;
  moto: string;
  /** Whether the daemon's default bridge has ICC off, i.e. where `auto` places workspaces. */
  defaultBridgeIccOff: boolean;
}

/** moto's version from its dist-info folder next to moto_server (the venv); 'unknown' otherwise. */
function motoVersion(): string {
  try {
    const lib = path.join(path.dirname(motoBinary()), '..', 'lib');
    for (const py of readdirSync(lib)) {
      const site = path.join(lib, py, 'site-packages');
      const info = readdirSync(site).find((f) => /^moto-[\d.]+\.dist-info$/.test(f));
      if (info) return info.slice('moto-'.length, -'.dist-info'.length);
    }
  } catch {
    // fall through
  }
  return 'unknown';
}

async function machineFacts(docker: Dockerode): Promise<Machine> {
  const [base, info, iccOff] = await Promise.all([
    baseMachineFacts(docker),
    docker.info() as Promise<{ Driver?: string }>,
    iccIsOff(docker, 'bridge'),
  ]);
  return {
    ...base,
    storageDriver: info.Driver ?? 'unknown',
    moto: motoVersion(),
    defaultBridgeIccOff: iccOff === true,
  };
}

const rate = (l: PollLoad) =>
  `${l.requests} requests in ${(l.windowMs / 1000).toFixed(1)} s (≈${Math.round(l.requests / (l.windowMs / 1000))}/s)`;

interface PhaseStep {
  label: string;
  source: PhaseRow['source'] | 'client' | 'resource';
  key: string;
  /** An observation off the chain of steps: no step, and the next row's step skips it. */
  side?: boolean;
}

function orchestratedPhaseLines(r: BackendResult): string[] {
  const { orchestrated, n } = r;
  const resourceRow: PhaseStep = {
    label:
      r.backend === 'docker'
        ? 'side: container `start` event (dockerd)'
        : 'side: ec2-sim started the VM container (dockerd `start` event)',
    source: 'resource',
    key: 'resource',
    side: true,
  };
  const phaseOrder: PhaseStep[] = [
    { label: 'API accepted (`workspaces.created_at`)', source: 'client', key: 'accepted' },
    { label: 'transition `provisioning/preparing`', source: 'transition', key: 'provisioning/preparing' },
    { label: 'transition `provisioning/creating`', source: 'transition', key: 'provisioning/creating' },
    // docker: the container starts inside the start activity; ec2: the sim boots after RunInstances.
    ...(r.backend === 'docker' ? [resourceRow] : []),
    {
      label:
        r.backend === 'docker'
          ? 'transition `provisioning/booting` (container created + started)'
          : 'transition `provisioning/booting` (RunInstances answered)',
      source: 'transition',
      key: 'provisioning/booting',
    },
    ...(r.backend === 'ec2' ? [resourceRow] : []),
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
    { label: 'client’s `/events` stream shows `online`', source: 'client', key: 'seen' },
  ];
  const valueOf = (id: string, step: PhaseStep): number | undefined => {
    const created = orchestrated.createdAt.get(id);
    if (step.source === 'client') {
      if (step.key === 'accepted') return 0;
      const sample = orchestrated.samples.find((s) => s.id === id);
      return sample && created !== undefined ? sample.onlineSeenAt - created : undefined;
    }
    if (step.source === 'resource') {
      const at = orchestrated.resourceStarts.get(id);
      return at !== undefined && created !== undefined ? at - created : undefined;
    }
    return orchestrated.phases.find((p) => p.id === id && p.source === step.source && p.key === step.key)?.ms;
  };
  const ids = orchestrated.samples.map((s) => s.id);
  // Step = time since the previous (non-side) row that this workspace has a value for.
  const steps = new Map<string, number[]>();
  for (const id of ids) {
    let last: number | undefined;
    for (const step of phaseOrder) {
      if (step.side) continue;
      const v = valueOf(id, step);
      if (v === undefined) continue;
      if (last !== undefined) steps.set(step.key, [...(steps.get(step.key) ?? []), v - last]);
      last = v;
    }
  }
  return phaseOrder.map((step, i) => {
    const s = summarize(ids.map((id) => valueOf(id, step)).filter((v) => v !== undefined));
    const d = summarize(steps.get(step.key) ?? []);
    return row([
      step.label,
      `${s.n}/${n}`,
      ms(s.p50),
      ms(s.p95),
      ms(s.max),
      i === 0 || step.side ? '–' : ms(d.p50),
    ]);
  });
}

type BaselineKindName = BackendKind | 'backend-direct';

function baselinePhaseLines(kind: BaselineKindName, result: BaselineResult, n: number): string[] {
  const samples = result.samples;
  const startRows: Record<
    BaselineKindName,
    Array<{ label: string; pick: (s: BaselineSample) => number | undefined }>
  > = {
    docker: [{ label: 'container started (`start()` returned)', pick: (s) => s.startedMs }],
    'backend-direct': [
      { label: 'side: container `start` event (dockerd)', pick: (s) => s.startEventMs },
      {
        label: '`DockerBackend.start()` returned (volumes, placement, create, start, inspect)',
        pick: (s) => s.startedMs,
      },
    ],
    ec2: [
      { label: '`RunInstances` answered (moto: `running` at once)', pick: (s) => s.startedMs },
      { label: 'ec2-sim started the VM container (dockerd `start` event)', pick: (s) => s.startEventMs },
    ],
  };
  const rows: Array<{ label: string; pick: (s: BaselineSample) => number | undefined }> = [
    ...startRows[kind],
    ...BOOT_PHASES.map((p) => ({
      label: `agent boot event \`${p}\``,
      pick: (s: BaselineSample) => s.phasesMs[p],
    })),
    { label: 'GET /health answered 200 (the timed end)', pick: (s: BaselineSample) => s.totalMs },
  ];
  return rows.map(({ label, pick }) => {
    const s = summarize(samples.map(pick).filter((v) => v !== undefined));
    return row([label, `${s.n}/${n}`, ms(s.p50), ms(s.p95), ms(s.max)]);
  });
}

/** One row per daemon call kind, in the order a start makes them. */
function daemonCallLines(calls: Map<string, number[]> | undefined): string[] {
  if (!calls) return [];
  const order = [
    'container.inspect',
    'createVolume',
    'listNetworks',
    'createNetwork',
    'createContainer',
    'container.start',
  ];
  const rank = (name: string) => (order.includes(name) ? order.indexOf(name) : order.length);
  return [...calls.entries()]
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
    .map(([name, durations]) => {
      const s = summarize(durations);
      const sum = durations.reduce((acc, d) => acc + d, 0);
      return row([`\`${name}\``, String(s.n), ms(s.p50), ms(s.p95), ms(s.max), ms(sum)]);
    });
}

function backendSection(r: BackendResult, machine: Machine): string[] {
  const { n, orchestrated } = r;
  const b = summarize(r.baseline.samples.map((s) => s.totalMs));
  const sp = r.spec ? summarize(r.spec.samples.map((s) => s.totalMs)) : undefined;
  const o = summarize(orchestrated.samples.map((s) => s.totalMs));
  const post = summarize(orchestrated.samples.map((s) => s.postMs));
  const baselineLabel =
    r.backend === 'docker'
      ? 'baseline: dockerode create+start → agent `GET /health` 200'
      : 'baseline: `RunInstances` (sim endpoint) → agent `GET http://<private ip>:8080/health` 200';
  const baselineFrom =
    r.backend === 'docker'
      ? 'Milliseconds since just before `createContainer`.'
      : 'Milliseconds since just before `RunInstances` (same user-data and tags as the product’s).';
  const resource = r.backend === 'docker' ? 'container' : 'VM container';
  return [
    `## ${r.backend} (N=${n})`,
    '',
    `- ${r.backend} part of the run: ${(r.wallMs / 1000).toFixed(1)} s (warm-ups, baseline, service start, orchestrated, teardown);`,
    `  1-min load average ${r.load[0].toFixed(2)} when it began, ${r.load[1].toFixed(2)} after its timed parts.`,
    `- Poll load: baseline \`GET /health\` ${rate(r.baseline.load)} (to ${n} different ${resource}s);` +
      (r.spec ? ` backend-direct ${rate(r.spec.load)};` : ''),
    `  orchestrated: ${orchestrated.load.requests} \`GET /v1/workspaces/:id/events\` streams, fed by one`,
    '  transitions query in the in-process API, run at each transition’s NOTIFY (at most one per 20 ms)',
    '  and every 250 ms (the API also serves the agents’ registry calls).',
    `- The API, the worker, PostgreSQL and the Temporal dev server${r.backend === 'ec2' ? ', moto and the simulator' : ''}`,
    `  share this machine’s ${machine.nproc} CPUs with the ${n} booting ${resource}s.`,
    `- Service start (API + worker in-process, before the warm-up): ${(orchestrated.serviceStartMs / 1000).toFixed(1)} s.`,
    `- Teardown (not a metric): ${n} concurrent DELETEs → all \`deleted\` and no ${resource} left in`,
    `  ${(orchestrated.deleteMs / 1000).toFixed(1)} s.`,
    '',
    '| ms | p50 | p95 | max | min |',
    '|---|---:|---:|---:|---:|',
    msRow(baselineLabel, b),
    msRow(`orchestrated: \`POST /v1/workspaces {backend: ${r.backend}}\` → \`/events\` shows \`online\``, o),
    ratioRow('ratio orchestrated / baseline', o, b),
    ...(sp
      ? [
          msRow(
            'backend-direct: `DockerBackend.start(spec)` → agent `GET /health` 200 (no API, Temporal, DB)',
            sp,
          ),
          ratioRow('ratio orchestrated / backend-direct (the orchestration)', o, sp),
          ratioRow('ratio backend-direct / baseline (the container spec)', sp, b),
        ]
      : []),
    msRow('(orchestrated `POST` → 202 alone)', post),
    '',
    `### ${r.backend} orchestrated: time from API accepted to each phase`,
    '',
    '| phase | n | p50 | p95 | max | step p50 |',
    '|---|---:|---:|---:|---:|---:|',
    ...orchestratedPhaseLines(r),
    '',
    ...(orchestrated.daemonCalls
      ? [
          `Docker daemon calls the service’s \`DockerBackend\` made while the ${n} provisions ran (as`,
          'for backend-direct below; the health sweep’s status reads, if one ran, count as `container.inspect`):',
          '',
          '| call | count | p50 | p95 | max | sum |',
          '|---|---:|---:|---:|---:|---:|',
          ...daemonCallLines(orchestrated.daemonCalls),
          '',
        ]
      : []),
    `### ${r.backend} baseline: time to each phase`,
    '',
    baselineFrom,
    '',
    '| phase | n | p50 | p95 | max |',
    '|---|---:|---:|---:|---:|',
    ...baselinePhaseLines(r.backend, r.baseline, n),
    '',
    ...(r.spec
      ? [
          `### ${r.backend} backend-direct: time to each phase`,
          '',
          'Milliseconds since just before `DockerBackend.start(spec)`. The org network (per-org placement)',
          'does not exist then: the warm-up’s removal took it (checked), as the orchestrated warm-up’s delete does.',
          '',
          '| phase | n | p50 | p95 | max |',
          '|---|---:|---:|---:|---:|',
          ...baselinePhaseLines('backend-direct', r.spec, n),
          '',
          `Docker daemon calls \`DockerBackend.start()\` made for these ${n} starts (each call’s own`,
          'duration, ms; `listNetworks`/`createNetwork` are the org network’s ensure (per-org placement), shared by',
          'concurrent starts of one org in one process):',
          '',
          '| call | count | p50 | p95 | max | sum |',
          '|---|---:|---:|---:|---:|---:|',
          ...daemonCallLines(r.spec.daemonCalls),
          '',
        ]
      : []),
  ];
}

function report(opts: {
  command: string;
  date: Date;
  machine: Machine;
  image: string;
  vmImage: string | null;
  results: BackendResult[];
  wallMs: number;
  /** 1-minute load average before the run and at its end. */
  load: [number, number];
}): string {
  const { machine, results } = opts;
  const title = results.map((r) => `${r.backend} N=${r.n}`).join(', ');
  const p95Ranks = [...new Set(results.map((r) => r.n))]
    .map((n) => `p95 of ${n} = sample #${Math.max(1, Math.ceil(0.95 * n))}`)
    .join(', ');
  const summaryLines = results.map((r) => {
    const b = summarize(r.baseline.samples.map((s) => s.totalMs));
    const sp = r.spec ? summarize(r.spec.samples.map((s) => s.totalMs)) : undefined;
    const o = summarize(r.orchestrated.samples.map((s) => s.totalMs));
    return row([
      r.backend,
      String(r.n),
      ms(b.p50),
      ms(b.p95),
      sp ? ms(sp.p50) : '–',
      sp ? ms(sp.p95) : '–',
      ms(o.p50),
      ms(o.p95),
      ratio(o.p50, b.p50),
      ratio(o.p95, b.p95),
      sp ? ratio(o.p50, sp.p50) : '–',
      sp ? ratio(o.p95, sp.p95) : '–',
    ]);
  });
  const hasEc2 = results.some((r) => r.backend === 'ec2');
  return [
    `# Provision latency: raw backend vs orchestrated (${title})`,
    '',
    `- Command: \`${opts.command}\``,
    `- Date: ${opts.date.toISOString()}`,
    `- Machine: ${machine.nproc} CPUs (nproc; ${machine.cpuModel}), ${machine.memGiB} GiB RAM, ${machine.kernel}`,
    `- Docker ${machine.docker} (storage driver ${machine.storageDriver}), Node ${machine.node}` +
      (hasEc2 ? `, moto ${machine.moto}` : ''),
    `- Docker placement (\`DOCKER_WORKSPACE_NETWORK=auto\`): ` +
      (machine.defaultBridgeIccOff
        ? 'the daemon’s default bridge (its ICC is off), no org network'
        : 'a bridge per org (the default bridge’s ICC is on)'),
    `- Runtime image: \`${opts.image}\`` + (opts.vmImage ? `; ec2-sim VM image: \`${opts.vmImage}\`` : ''),
    `- 1-min load average: ${opts.load[0].toFixed(2)} before the run, ${opts.load[1].toFixed(2)} at its end`,
    '  (per backend below; anything else busy on the machine skews both kinds).',
    `- The whole run took ${(opts.wallMs / 1000).toFixed(1)} s (service start-ups included). Backends ran one after`,
    '  the other (docker first), each: baseline (docker: then backend-direct), then orchestrated; all N of a kind started at once.',
    '- Warm-up: one untimed provision of each kind ran first (image and page cache, the worker’s first',
    '  workflow tasks, connection pools; the workflow bundle, prebuilt or built at service start, is in place before it).',
    '  The warm-ups are not in the numbers below.',
    '',
    '| backend | N | baseline p50 | baseline p95 | backend-direct p50 | backend-direct p95 | orchestrated p50 | orchestrated p95 | ratio p50 | ratio p95 | ratio / backend-direct p50 | ratio / backend-direct p95 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...summaryLines,
    '',
    '“ratio” is orchestrated / baseline (the raw create + start the goal of issue 11 names);',
    '“ratio / backend-direct” is orchestrated / `DockerBackend.start(spec)` called directly: the same',
    'container spec (volumes, network placement, capabilities, limits) without API, Temporal and database',
    '(docker only; – on ec2).',
    '',
    ...results.flatMap((r) => backendSection(r, machine)),
    '## Notes',
    '',
    `- Percentiles are nearest-rank over the N samples (${p95Ranks} in ascending order).`,
    '- Orchestrated phase tables: milliseconds since `workspaces.created_at`; transitions from',
    '  `workspace_transitions.ts`, agent phases from `boot_events.ts` (the agent’s clock: same host',
    '  kernel), `side:` rows from dockerd’s `start` events. “step p50” is the median of each',
    '  workspace’s time since the previous non-side row.',
    '- The end points differ on purpose: a baseline ends when the agent’s A2A server answers',
    '  `/health` (right after `agent-started`); orchestrated ends when the workspace is `online`, i.e.',
    '  after the agent registered, reported `platform-health-ok`, the entity workflow was signalled',
    `  and wrote the transition, and the client’s \`/events\` stream delivered it. Both ends are`,
    `  about equally prompt: baseline \`/health\` polls ${POLL_INTERVAL_MS} ms apart (${ATTEMPT_TIMEOUT_MS} ms per-attempt timeout),`,
    '  concurrently for all N; the service (default `EVENTS_POLL_MS`, 250 ms, as the backstop) feeds',
    '  `/events` at each transition’s commit (NOTIFY `wo_transitions` wakes its one shared poll).',
    '- Baselines bootstrap from the fake registry (test/support/fake-registry.ts), the orchestrated',
    '  agents from the real API. Docker baseline containers get no named volumes and no restart',
    '  policy; orchestrated ones get two named volumes each (`/configs`, `/workspace`) via DockerBackend.',
    ...(results.some((r) => r.spec)
      ? [
          '- docker backend-direct: the same `DockerBackend` (as the service configures it) called in this',
          '  process, one org per N; its agents bootstrap from the fake registry too. Its bootstrap token',
          '  is the fake registry’s (in memory), where the product mints a PostgreSQL row inside `start()`.',
          '  Its warm-up is removed as the orchestrated delete removes one (`remove` with volumes, the org',
          '  network with the last container), so under per-org placement its timed starts create the org',
          '  network, as the orchestrated ones do. Order per N: raw baseline, backend-direct, orchestrated.',
          '- Daemon-call tables (docker): backend-direct’s `DockerBackend` and the service’s both talk to',
          '  dockerd through a client that times each call (bench/provision-baselines.ts `timedDocker`:',
          '  a clock read per call, nothing else changed); each table holds the calls of its timed window.',
        ]
      : []),
    ...(hasEc2
      ? [
          '- ec2 runs against moto behind ec2-sim (test/ec2-sim): each instance is a container of the VM',
          '  image at the private IP moto assigned, whose init runs the user-data like cloud-init (sshd',
          '  host key, then `/etc/wo/boot.d/agent.sh` starts the agent). moto reports an instance',
          '  `running` from RunInstances on (no `pending` period), so “instance running in moto” is the',
          '  `RunInstances` answer itself; the real boot is the sim’s VM container start (`side:` row).',
          '  The ec2 baseline waits for that `start` event before polling `/health` (a connect to an IP',
          '  no container holds yet stalls on ARP), as the docker one polls only after `start()`.',
          '  Orchestrated: the start activity ends at RunInstances (the `booting` transition); the',
          '  worker never waits for `running`, the agent’s registration proves the boot.',
        ]
      : []),
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------

/** Ns of 1..200, comma-separated (`--n 1,10,20`: one run of each, one after the other). */
const parseNs = (name: string, text: string): number[] =>
  text.split(',').map((part) => parseInt(name, part.trim(), 1, 200));

/** The machine-readable line of one result, so a script can compare runs. */
function jsonLine(r: BackendResult): string {
  const b = summarize(r.baseline.samples.map((s) => s.totalMs));
  const sp = r.spec ? summarize(r.spec.samples.map((s) => s.totalMs)) : undefined;
  const o = summarize(r.orchestrated.samples.map((s) => s.totalMs));
  const round = (x: number, digits: number) => Number(x.toFixed(digits));
  return JSON.stringify({
    bench: 'provision',
    backend: r.backend,
    n: r.n,
    ratioP50: round(o.p50 / b.p50, 3),
    ratioP95: round(o.p95 / b.p95, 3),
    baselineP50Ms: Math.round(b.p50),
    baselineP95Ms: Math.round(b.p95),
    orchestratedP50Ms: Math.round(o.p50),
    orchestratedP95Ms: Math.round(o.p95),
    serviceStartMs: Math.round(r.orchestrated.serviceStartMs),
    // docker: against DockerBackend.start(spec) called directly; null on ec2 (no such run there).
    specBaselineP50Ms: sp ? Math.round(sp.p50) : null,
    specBaselineP95Ms: sp ? Math.round(sp.p95) : null,
    ratioSpecP50: sp ? round(o.p50 / sp.p50, 3) : null,
    ratioSpecP95: sp ? round(o.p95 / sp.p95, 3) : null,
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '20' },
      'n-ec2': { type: 'string' },
      backends: { type: 'string', default: ALL_BACKENDS.join(',') },
    },
    strict: true,
  });
  const ns = parseNs('n', values.n);
  const nsEc2 = values['n-ec2'] === undefined ? ns : parseNs('n-ec2', values['n-ec2']);
  const backends = parseBackends(values.backends);
  const withEc2 = backends.includes('ec2');
  const command = ['npx tsx bench/provision.ts', ...process.argv.slice(2)].join(' ');
  const date = new Date();
  const loadBefore = os.loadavg()[0] ?? 0;
  const wallStart = performance.now();
  const run = `bn${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const docker = new Dockerode();

  // The baselines' containers, volumes and org networks carry it in their names (leak checks).
  progress(`run id ${run}`);
  const stops: Stops = [];
  try {
    const infra = await startInfra(docker, withEc2, stops);
    const machine = await machineFacts(docker);

    const registry = await startFakeRegistry();
    stops.push(['fake registry', () => registry.stop()]);
    const starts = await watchStarts(docker, WORKSPACE_LABEL);
    stops.push(['docker events', async () => starts.stop()]);
    const shared: Shared = {
      docker,
      postgres: infra.postgres,
      temporal: infra.temporal,
      image: infra.image,
      registry,
      starts,
      run,
    };

    const results: BackendResult[] = [];
    for (const backend of backends) {
      if (backend === 'docker') for (const n of ns) results.push(await benchDocker(shared, n));
      else for (const n of nsEc2) results.push(await benchEc2(shared, infra.moto!, infra.vmImage!, n));
    }

    const markdown = report({
      command,
      date,
      machine,
      image: infra.image,
      vmImage: infra.vmImage,
      results,
      wallMs: performance.now() - wallStart,
      load: [loadBefore, os.loadavg()[0] ?? 0],
    });
    const out = await writeReport('bench-provision.md', markdown);
    progress(`report written to ${out}`);
    // Last on stdout: one JSON line per backend and N.
    for (const r of results) console.log(jsonLine(r));
  } finally {
    for (const [name, stop] of stops.reverse()) {
      await stop().catch((err: unknown) => progress(`stopping ${name} failed: ${errorText(err)}`));
    }
  }
}

runMain(main);
