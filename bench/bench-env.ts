/**
 * Shared set-up of bench/a2a.ts and bench/files.ts: one PostgreSQL + Temporal dev server
 * (test/setup/services.ts), dockerd + the runtime image, optionally moto + ec2-sim, the real service
 * (API + worker in this process, or each in a child process: `Placement`), one org, and online workspaces on demand. Everything started is
 * registered for `stop()`, which tears it down in reverse order (workspaces deleted first).
 * bench/provision.ts uses the same pieces (`startInfra`, `startBenchService`, `machineFacts`,
 * `writeReport`, the option parsers) with a service per backend.
 */
import { agentCredential } from '../src/security/agent-credential.js';
import { SecretBox } from '../src/security/secrets.js';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import Dockerode from 'dockerode';
import pino from 'pino';
import type { BackendKind } from '../src/backends/backend.js';
import { DockerBackend } from '../src/backends/docker/docker-backend.js';
import { createEc2Client } from '../src/backends/ec2/client.js';
import { MANAGED_BY, TAG } from '../src/backends/ec2/tags.js';
import { ensureRuntimeImage } from '../src/cli/build-images.js';
import { loadConfig } from '../src/config.js';
import { startService, type RunningService, type ServiceOptions } from '../src/service.js';
import { startEc2Sim, type Ec2Sim } from '../test/ec2-sim/sim.js';
import { MOTO_CREDENTIALS, simServiceEnv } from '../test/ec2-sim/service-env.js';
import { ensureVmImage } from '../test/ec2-sim/vm-image.js';
import { createFreshDatabase } from '../test/setup/databases.js';
import {
  REPO_ROOT,
  ensureDockerDaemon,
  startMoto,
  startPostgres,
  startTemporal,
  type RunningMoto,
  type RunningPostgres,
  type RunningTemporal,
} from '../test/setup/services.js';
import { terminateInstances } from './provision-baselines.js';
import { forkChild } from './child.js';
import { FatalError, HEARTBEAT_INTERVAL_MS, errorText, guard, poll, progress } from './provision-util.js';

export const ALL_BACKENDS: readonly BackendKind[] = ['docker', 'ec2'];

export function parseBackends(text: string): BackendKind[] {
  const wanted = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = wanted.filter((b) => !ALL_BACKENDS.includes(b as BackendKind));
  if (unknown.length > 0 || wanted.length === 0)
    throw new Error(`--backends must be a comma list of ${ALL_BACKENDS.join(', ')}; got ${text}`);
  return ALL_BACKENDS.filter((b) => wanted.includes(b));
}

export function parseInt(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be an integer ${min}..${max}, got ${text}`);
  return n;
}

// Statistics and table helpers live in provision-util.ts; re-exported for a2a.ts and files.ts.
export { fmt, pct, row, times } from './provision-util.js';

// ---------------------------------------------------------------------------------------------
// API client

export interface ApiResponse {
  status: number;
  body: Record<string, unknown>;
}

export async function apiCall(
  base: string,
  method: string,
  pathName: string,
  opts: { token?: string; body?: unknown; signal?: AbortSignal } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${pathName}`, {
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
}

// ---------------------------------------------------------------------------------------------
// Machine facts

export interface Machine {
  nproc: number;
  cpuModel: string;
  memGiB: string;
  kernel: string;
  docker: string;
  node: string;
}

export async function machineFacts(docker: Dockerode): Promise<Machine> {
  const version = await docker.version();
  return {
    nproc: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memGiB: (os.totalmem() / 1024 ** 3).toFixed(1),
    kernel: `${os.type()} ${os.release()}`,
    docker: version.Version,
    node: process.version,
  };
}

export const loadAvg = (): string =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');

export function machineLines(m: Machine, loadBefore: string, loadAfter: string): string[] {
  return [
    `- Machine: nproc ${m.nproc} (${m.cpuModel}), ${m.memGiB} GiB RAM, ${m.kernel}`,
    `- Docker ${m.docker}, Node ${m.node}`,
    `- Load average (1 / 5 / 15 min): ${loadBefore} at start, ${loadAfter} at the end`,
  ];
}

/** The report's title and first bullets: command, date, machine, load average, whole-run time. */
export function reportHead(title: string, meta: BenchMeta): string[] {
  return [
    `# ${title}`,
    '',
    `- Command: \`${meta.command}\``,
    `- Date: ${meta.date.toISOString()}`,
    ...machineLines(meta.env.machine, meta.load[0], meta.load[1]),
    `- Whole run: ${(meta.wallMs / 1000).toFixed(1)} s (service start-up and provisioning included)`,
    meta.durablePg
      ? '- PostgreSQL: its default durability (fsync, synchronous_commit on: every commit flushed, as in production)'
      : "- PostgreSQL: fsync and synchronous_commit off (the test suite's throwaway settings; `--durable-pg` for production's)",
  ];
}

export async function writeReport(name: string, markdown: string): Promise<string> {
  const out = path.join(REPO_ROOT, '.data', name);
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, markdown);
  await new Promise<void>((resolve) => process.stdout.write(markdown, () => resolve()));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Environment

export interface Workspace {
  id: string;
  backend: BackendKind;
  generation: number;
  endpoint: string;
}

/**
 * Where the service runs: `in-process` (API + worker in the bench's own process, as bench/files.ts
 * needs for its raw backend calls) or `processes` (the API and the worker each in a child process,
 * as production deploys them; bench/a2a.ts).
 */
export type Placement = 'in-process' | 'processes';

export interface BenchEnv {
  docker: Dockerode;
  /** The in-process service (placement `in-process`), else null. */
  service: RunningService | null;
  /** The service's processes (placement `processes`), else empty. */
  processes: ServiceProcess[];
  databaseUrl: string;
  /** The PostgreSQL server's port (its postmaster is found by it). */
  postgresPort: number;
  url: string;
  token: string;
  machine: Machine;
  /** POST /v1/workspaces and wait until GET shows `online`; deleted again in stop(). */
  provision(backend: BackendKind, name: string): Promise<Workspace>;
  /** What the A2A proxy presents to a generation's agent (a direct call needs it too). */
  agentCredential(workspaceId: string, generation: number): string;
  stop(): Promise<void>;
}

async function waitStatus(url: string, token: string, id: string, status: string, timeoutMs: number) {
  return poll(
    `workspace ${id} to reach ${status}`,
    async () => {
      const res = await apiCall(url, 'GET', `/v1/workspaces/${id}`, { token });
      if (res.status !== 200) throw new Error(`GET ${id}: ${res.status} ${JSON.stringify(res.body)}`);
      if (res.body.status === 'failed')
        throw new FatalError(`workspace ${id} failed: ${String(res.body.error)}`);
      return res.body.status === status ? res.body : null;
    },
    timeoutMs,
  );
}

export type Stops = Array<[string, () => Promise<unknown>]>;

export interface Infra {
  postgres: RunningPostgres;
  temporal: RunningTemporal;
  image: string;
  moto: RunningMoto | null;
  vmImage: string | null;
}

/** PostgreSQL and the Temporal dev server (no dockerd), each pushed onto `stops` as it comes up. */
export async function startDbAndTemporal(
  stops: Stops,
): Promise<{ postgres: RunningPostgres; temporal: RunningTemporal }> {
  // The in-process worker logs through the Temporal runtime (stderr); INFO is worker state chatter.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  progress('starting PostgreSQL and the Temporal dev server');
  const [postgres, temporal] = await guard(
    Promise.all([
      startPostgres({ log: progress }).then((s) => (stops.push(['postgres', s.stop]), s)),
      startTemporal({ log: progress }).then((s) => (stops.push(['temporal', s.stop]), s)),
    ]),
  );
  return { postgres, temporal };
}

/**
 * Starts, concurrently, PostgreSQL, the Temporal dev server, dockerd + the runtime image and, with
 * ec2, moto + the ec2-sim VM image. Every service started is pushed onto `stops` (also when another
 * one fails); the first failure is thrown once all have settled.
 */
export async function startInfra(
  docker: Dockerode,
  withEc2: boolean,
  stops: Stops,
  opts: { durablePg?: boolean } = {},
): Promise<Infra> {
  // The in-process worker logs through the Temporal runtime (stderr); INFO is worker state chatter.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  progress(
    `starting PostgreSQL, Temporal dev server, dockerd + runtime image${withEc2 ? ', moto + ec2-sim VM image' : ''}`,
  );
  const imageReady = ensureDockerDaemon({ log: progress }).then(() =>
    ensureRuntimeImage({ docker, log: (line) => progress(`runtime image: ${line}`) }),
  );
  const settled = await guard(
    Promise.allSettled([
      startPostgres({ log: progress, durable: opts.durablePg }).then(
        (s) => (stops.push(['postgres', s.stop]), s),
      ),
      startTemporal({ log: progress }).then((s) => (stops.push(['temporal', s.stop]), s)),
      imageReady,
      withEc2
        ? startMoto({ log: progress }).then((s) => (stops.push(['moto', s.stop]), s))
        : Promise.resolve(null),
      withEc2
        ? imageReady.then((runtimeImage) =>
            ensureVmImage({ docker, runtimeImage, log: (line) => progress(`vm image: ${line}`) }),
          )
        : Promise.resolve(null),
    ] as const),
  );
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  const [postgres, temporal, image, moto, vmImage] = settled.map(
    (s) => (s as PromiseFulfilledResult<unknown>).value,
  ) as [RunningPostgres, RunningTemporal, string, RunningMoto | null, string | null];
  return { postgres, temporal, image, moto, vmImage };
}

/** A fresh database + data dir (both pushed onto `stops`) and the service's settings on them. */
async function prepareService(opts: {
  infra: Pick<Infra, 'postgres' | 'temporal' | 'image'>;
  database: string;
  taskQueue: string;
  env: Record<string, string>;
  stops: Stops;
}): Promise<{ env: Record<string, string>; databaseUrl: string }> {
  const { infra, stops } = opts;
  const db = await createFreshDatabase(infra.postgres.adminUrl, opts.database);
  stops.push(['database', () => db.drop()]);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'wo-bench-data-'));
  stops.push(['data dir', () => rm(dataDir, { recursive: true, force: true })]);
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: infra.temporal.address,
    TEMPORAL_NAMESPACE: infra.temporal.namespace,
    RUNTIME_IMAGE: infra.image,
    DATA_DIR: dataDir,
    ADMIN_TOKEN: randomBytes(16).toString('hex'),
    SECRETS_KEY: randomBytes(32).toString('base64'),
    TASK_QUEUE: opts.taskQueue,
    PORT: '0',
    HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_INTERVAL_MS),
    LOG_LEVEL: 'warn',
    // The benches send thousands of calls a minute with one key and poll every 50 ms per
    // workspace: the limiter stays in the path (its cost is measured) but never refuses.
    RATE_LIMIT_PER_MINUTE: '10000000',
    ...opts.env,
  };
  return { env, databaseUrl: db.url };
}

async function createOrg(url: string, adminToken: string): Promise<string> {
  const org = await apiCall(url, 'POST', '/v1/orgs', { token: adminToken, body: { name: 'bench' } });
  if (org.status !== 201) throw new Error(`create org: ${org.status} ${JSON.stringify(org.body)}`);
  return String(org.body.apiKey);
}

/**
 * A fresh database + data dir, the real service (API + worker in this process) on them, and one
 * org. Database, data dir and service are pushed onto `stops` as they come up.
 */
export async function startBenchService(opts: {
  infra: Pick<Infra, 'postgres' | 'temporal' | 'image'>;
  database: string;
  taskQueue: string;
  /** Settings that enable a backend (ec2: the simulator's endpoint, AMI, subnet, …). */
  env: Record<string, string>;
  /** Prefix of the progress line. */
  label: string;
  stops: Stops;
  /** In place of the configured backends (see ServiceOptions.backends). */
  backends?: ServiceOptions['backends'];
}): Promise<ServiceAccess & { service: RunningService }> {
  const { env, databaseUrl } = await prepareService(opts);
  const config = loadConfig(env);
  progress(`${opts.label}starting the service (API + worker in-process)`);
  // Logs go to stderr: stdout carries the report.
  const service = await guard(
    startService(config, {
      api: true,
      worker: true,
      log: pino({ level: 'warn' }, pino.destination(2)),
      ...(opts.backends ? { backends: opts.backends } : {}),
    }),
  );
  opts.stops.push(['service', () => service.close()]);
  const url = service.url!;
  const token = await createOrg(url, config.ADMIN_TOKEN);
  return { service, url, token, secrets: new SecretBox(config.SECRETS_KEY), databaseUrl };
}

/** How the bench reaches a started service: its URL, an org key, and what decrypts its rows. */
interface ServiceAccess {
  url: string;
  token: string;
  secrets: SecretBox;
  databaseUrl: string;
}

/** A service role running in its own process (bench/service-process.ts). */
export interface ServiceProcess {
  role: 'api' | 'worker';
  pid: number;
}

/**
 * Like startBenchService, but the API and the worker each in a process of their own, as production
 * runs them (bench/service-process.ts); both are pushed onto `stops` (stopped with SIGTERM).
 */
async function startServiceProcesses(opts: {
  infra: Pick<Infra, 'postgres' | 'temporal' | 'image'>;
  database: string;
  taskQueue: string;
  env: Record<string, string>;
  stops: Stops;
}): Promise<ServiceAccess & { processes: ServiceProcess[] }> {
  const { env, databaseUrl } = await prepareService(opts);
  const config = loadConfig(env);
  progress('starting the service: the API and the worker, each in its own process');
  const start = async (role: ServiceProcess['role'], roleEnv: Record<string, string>) => {
    const child = forkChild(`service ${role}`, 'bench/service-process.ts');
    opts.stops.push([`service ${role}`, () => child.stop()]);
    const { url } = await guard(child.call<{ url: string | null }>('start', { role, env: roleEnv }));
    return { process: { role, pid: child.pid }, url };
  };
  // The API first: the worker hands the agents the platform URL (the API's port), as production's
  // shared PORT setting does; PORT=0 lets the API pick a free one.
  const api = await start('api', env);
  const url = api.url;
  if (!url) throw new Error('the API process answered no URL');
  const worker = await start('worker', { ...env, PORT: new URL(url).port });
  const processes = [api.process, worker.process];
  const token = await createOrg(url, config.ADMIN_TOKEN);
  return { processes, url, token, secrets: new SecretBox(config.SECRETS_KEY), databaseUrl };
}

/**
 * Starts everything. On failure whatever was started is stopped before the error propagates; on
 * success the caller must call `stop()` (in a finally block).
 */
export async function startBenchEnv(opts: {
  backends: BackendKind[];
  run: string;
  placement: Placement;
  /** PostgreSQL with its default durability (every commit flushed), as production runs it. */
  durablePg?: boolean;
}): Promise<BenchEnv> {
  const withEc2 = opts.backends.includes('ec2');
  const docker = new Dockerode();
  const stops: Stops = [];
  const stop = async () => {
    for (const [name, fn] of stops.reverse()) {
      await fn().catch((err: unknown) => progress(`stopping ${name} failed: ${errorText(err)}`));
    }
    stops.length = 0;
  };
  try {
    const infra = await startInfra(docker, withEc2, stops, { durablePg: opts.durablePg });
    const { image, moto, vmImage } = infra;
    const machine = await machineFacts(docker);

    let env: Record<string, string> = {};
    let ec2: EC2Client | undefined;
    if (withEc2 && moto && vmImage) {
      progress('ec2: starting the simulator');
      const sim: Ec2Sim = await guard(
        startEc2Sim({
          motoEndpoint: moto.endpoint,
          vmImage,
          docker,
          log: (line) => {
            if (/fail|cannot|error|refus/i.test(line)) progress(`ec2-sim: ${line}`);
          },
        }),
      );
      stops.push(['ec2-sim', () => sim.stop()]);
      if (!sim.subnetId) throw new Error('ec2-sim has no subnet to launch into');
      const client = createEc2Client({
        region: sim.region,
        endpoint: sim.endpoint,
        credentials: MOTO_CREDENTIALS,
      });
      ec2 = client;
      stops.push([
        'leftover ec2 instances',
        async () => {
          const left = await terminateInstances(client, [
            { Name: `tag:${TAG.managedBy}`, Values: [MANAGED_BY] },
          ]);
          if (left > 0) progress(`ec2: terminated ${left} leftover instance(s)`);
          client.destroy();
        },
      ]);
      env = simServiceEnv(sim);
    }

    const serviceOpts = {
      infra,
      database: `bench_${opts.run}`,
      taskQueue: `bench-${opts.run}`,
      env,
      stops,
    };
    const started =
      opts.placement === 'processes'
        ? await startServiceProcesses(serviceOpts)
        : await startBenchService({ ...serviceOpts, label: '' });
    const { url, token, secrets } = started;
    const service = 'service' in started ? started.service : null;

    const dockerLeftovers = new DockerBackend({ docker, image });
    const provision = async (backend: BackendKind, name: string): Promise<Workspace> => {
      const res = await apiCall(url, 'POST', '/v1/workspaces', { token, body: { name, backend } });
      if (res.status !== 202)
        throw new Error(`POST /v1/workspaces: ${res.status} ${JSON.stringify(res.body)}`);
      const id = String(res.body.id);
      // Registered before the wait: a workspace that never comes up is still deleted.
      stops.push([
        `workspace ${id}`,
        async () => {
          try {
            const del = await apiCall(url, 'DELETE', `/v1/workspaces/${id}`, { token });
            if (del.status !== 202 && del.status !== 404) throw new Error(`DELETE ${id}: ${del.status}`);
            await waitStatus(url, token, id, 'deleted', 120_000);
          } finally {
            // Also when the API could not delete it (e.g. Ctrl-C also stopped the Temporal server).
            if (backend === 'docker') await dockerLeftovers.remove(id, { volumes: true });
            else if (ec2) await terminateInstances(ec2, [{ Name: `tag:${TAG.workspaceId}`, Values: [id] }]);
          }
        },
      ]);
      const body = await guard(waitStatus(url, token, id, 'online', 180_000));
      if (typeof body.endpoint !== 'string') throw new Error(`workspace ${id} is online without an endpoint`);
      return { id, backend, generation: Number(body.generation), endpoint: body.endpoint };
    };
    return {
      docker,
      service,
      processes: 'processes' in started ? started.processes : [],
      databaseUrl: started.databaseUrl,
      postgresPort: infra.postgres.port,
      url,
      token,
      machine,
      provision,
      agentCredential: (workspaceId, generation) => agentCredential(secrets, workspaceId, generation),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface BenchMeta {
  command: string;
  date: Date;
  env: BenchEnv;
  /** Load average at the start and when the measurements were over. */
  load: [string, string];
  wallMs: number;
  durablePg?: boolean;
}

/**
 * The frame of bench/a2a.ts and bench/files.ts: starts the environment, runs `measure`, writes the
 * report (stdout + .data/<reportName>) and always stops everything started.
 */
export async function runBench<R>(opts: {
  /** The script as typed after `npx tsx`, for the report's command line. */
  script: string;
  /** Prefix of the run id (names, database, task queue). */
  runPrefix: string;
  reportName: string;
  backends: BackendKind[];
  placement: Placement;
  durablePg?: boolean;
  measure: (env: BenchEnv, run: string) => Promise<R>;
  report: (results: R, meta: BenchMeta) => string;
}): Promise<void> {
  const command = [`npx tsx ${opts.script}`, ...process.argv.slice(2)].join(' ');
  const date = new Date();
  const loadBefore = loadAvg();
  const wallStart = performance.now();
  const run = `${opts.runPrefix}${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;

  const env = await startBenchEnv({
    backends: opts.backends,
    run,
    placement: opts.placement,
    durablePg: opts.durablePg,
  });
  try {
    const results = await opts.measure(env, run);
    const markdown = opts.report(results, {
      command,
      date,
      env,
      load: [loadBefore, loadAvg()],
      wallMs: performance.now() - wallStart,
      durablePg: opts.durablePg,
    });
    const out = await writeReport(opts.reportName, markdown);
    progress(`report written to ${out}`);
  } finally {
    progress('cleaning up: deleting workspaces, stopping the service and everything started');
    await env.stop();
  }
}
