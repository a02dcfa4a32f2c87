/**
 * The baselines of bench/provision.ts: what starting an agent costs without the orchestrator.
 *
 * - docker: raw dockerode create + start of the runtime image, env WO_PLATFORM_URL /
 *   WO_BOOTSTRAP_TOKEN; ends when the agent answers GET /health on its published port.
 * - ec2: raw RunInstances through the ec2-sim endpoint (moto behind it), with the product's own
 *   user-data (renderUserData) and instance tags; ends when the agent answers
 *   GET http://<PrivateIpAddress>:8080/health; terminated afterwards.
 *
 * - backend-direct (docker): the product's own DockerBackend.start(spec), called directly (no API,
 *   no Temporal, no database): the same container spec as the orchestrated workspaces (two named
 *   volumes, the org's own bridge network with ICC off, dropped capabilities, limits), ending when
 *   the agent answers GET /health on the endpoint start() reports. It separates the cost of that
 *   spec (against the raw baseline) from the cost of orchestrating it (orchestrated against it).
 *
 * All bootstrap from the fake registry (test/support/fake-registry.ts): containers reach it as
 * host.docker.internal, instances at the sim's gateway (sim.platformHost).
 */
import { performance } from 'node:perf_hooks';
import {
  DescribeInstancesCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type EC2Client,
  type Filter,
} from '@aws-sdk/client-ec2';
import type Dockerode from 'dockerode';
import { DockerBackend } from '../src/backends/docker/docker-backend.js';
import { orgNetworkName } from '../src/backends/docker/network.js';
import { generateParsableKeyPair } from '../src/backends/ec2/ec2-backend.js';
import { instanceTags, launchTagSpecifications } from '../src/backends/ec2/tags.js';
import { renderUserData } from '../src/backends/ec2/user-data.js';
import type { Ec2Sim } from '../test/ec2-sim/sim.js';
import { fakeBundle, type FakeRegistry } from '../test/support/fake-registry.js';
import {
  AGENT_PORT,
  BOOT_PHASES,
  HEARTBEAT_INTERVAL_MS,
  allOrFail,
  errorText,
  guard,
  healthOk,
  poll,
  pollCount,
  progress,
  type BootPhase,
  type PollLoad,
  type StartWatcher,
} from './provision-util.js';

export interface BaselineSample {
  id: string;
  /** Wall clock just before create / RunInstances (boot event timestamps are wall clock). */
  t0Wall: number;
  totalMs: number;
  /** docker: start() returned; ec2: RunInstances answered. Since t0. */
  startedMs: number;
  /**
   * dockerd's `start` event of the container, since t0: ec2, the sim's VM container; backend-direct,
   * the workspace container (both carry `wo.workspace-id`). The raw docker baseline has none.
   */
  startEventMs?: number;
  phasesMs: Partial<Record<BootPhase, number>>;
}

export interface BaselineResult {
  samples: BaselineSample[];
  load: PollLoad;
  /**
   * backend-direct: the Docker daemon calls DockerBackend made while the timed starts ran (call →
   * durations in ms), e.g. `createNetwork`, `container.start`.
   */
  daemonCalls?: Map<string, number[]>;
}

/** One kind of raw provision: `one` launches and waits for /health; `cleanup` removes a label's. */
interface BaselineKind {
  name: string;
  /** Marks this kind's ids (`<run>-<idLetter><i>`), so no two kinds of one run share an id. */
  idLetter: string;
  one(label: string, id: string): Promise<BaselineSample>;
  cleanup(label: string): Promise<void>;
}

/** Fills in each sample's boot phases (agent `ts` minus t0) from what the fake registry received. */
function fillPhases(registry: FakeRegistry, samples: BaselineSample[]): void {
  for (const sample of samples) {
    for (const e of registry.bootEvents) {
      if (e.workspaceId !== sample.id) continue;
      const phase = BOOT_PHASES.find((p) => p === e.body.phase);
      if (phase && sample.phasesMs[phase] === undefined)
        sample.phasesMs[phase] = Date.parse(String(e.body.ts)) - sample.t0Wall;
    }
  }
}

async function runBaseline(
  kind: BaselineKind,
  registry: FakeRegistry,
  run: string,
  n: number,
): Promise<BaselineResult> {
  const label = `${run}-${kind.name}-baseline`;
  const prefix = `${run}-${kind.idLetter}`;
  try {
    progress(`${kind.name} baseline: warm-up provision (untimed)`);
    await guard(kind.one(label, `${prefix}w`));
    await kind.cleanup(label);
    progress(`${kind.name} baseline: ${n} concurrent launches → GET /health`);
    const polls0 = pollCount.health;
    const window0 = performance.now();
    const samples = await guard(
      allOrFail(
        `${kind.name} baseline provisions`,
        Array.from({ length: n }, (_, i) => kind.one(label, `${prefix}${i}`)),
      ),
    );
    const load = { requests: pollCount.health - polls0, windowMs: performance.now() - window0 };
    // /health answers before the agent has necessarily reported platform-health-ok: let the
    // remaining boot events arrive (outside the timed window) so the phase table is complete.
    await guard(
      poll(
        `every ${kind.name} baseline agent to report platform-health-ok`,
        async () => samples.every((x) => registry.phases(x.id).includes('platform-health-ok')),
        15_000,
      ),
    ).catch((err: unknown) => progress(`${kind.name} baseline phases incomplete: ${errorText(err)}`));
    fillPhases(registry, samples);
    return { samples, load };
  } finally {
    await kind
      .cleanup(label)
      .catch((err: unknown) => progress(`${kind.name} baseline cleanup failed: ${errorText(err)}`));
  }
}

// ---------------------------------------------------------------------------------------------
// docker

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

export function runDockerBaseline(opts: {
  docker: Dockerode;
  registry: FakeRegistry;
  image: string;
  run: string;
  n: number;
}): Promise<BaselineResult> {
  const { docker, registry, image } = opts;
  const port = `${AGENT_PORT}/tcp`;
  const one = async (label: string, id: string): Promise<BaselineSample> => {
    const entry = registry.add(fakeBundle(id, { heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS }));
    const t0Wall = Date.now();
    const t0 = performance.now();
    const container = await docker.createContainer({
      name: `wo-bench-${id}`,
      Image: image,
      Env: [`WO_PLATFORM_URL=${registry.containerUrl}`, `WO_BOOTSTRAP_TOKEN=${entry.bootstrapToken}`],
      Labels: { 'wo.bench': label },
      ExposedPorts: { [port]: {} },
      HostConfig: {
        PortBindings: { [port]: [{ HostIp: '127.0.0.1', HostPort: '' }] },
        ExtraHosts: ['host.docker.internal:host-gateway'],
      },
    });
    await container.start();
    const startedMs = performance.now() - t0;
    const info = await container.inspect();
    const hostPort = info.NetworkSettings.Ports[port]?.[0]?.HostPort;
    if (!hostPort) throw new Error(`container for ${id} has no published port for ${port}`);
    const endpoint = `http://127.0.0.1:${hostPort}`;
    await poll(`agent ${id} to answer GET /health on ${endpoint}`, (signal) => healthOk(endpoint, signal));
    return { id, t0Wall, totalMs: performance.now() - t0, startedMs, phasesMs: {} };
  };
  return runBaseline(
    { name: 'docker', idLetter: 'b', one, cleanup: (label) => removeBaselineContainers(docker, label) },
    registry,
    opts.run,
    opts.n,
  );
}

// ---------------------------------------------------------------------------------------------
// docker, backend-direct: the product's container spec without the orchestration

/** Daemon calls that are timed (container calls as `container.<method>`). */
const TIMED_CALLS = new Set([
  'createVolume',
  'createNetwork',
  'listNetworks',
  'createContainer',
  'listContainers',
]);
const TIMED_CONTAINER_CALLS = new Set(['inspect', 'start', 'remove']);

/**
 * `docker` with its promise-returning calls above timed into `calls` (DockerBackend uses only the
 * promise forms). The backend under test is not changed: it is handed this client.
 */
export function timedDocker(docker: Dockerode, calls: Map<string, number[]>): Dockerode {
  const timed =
    <A extends unknown[]>(name: string, fn: (...args: A) => unknown) =>
    async (...args: A): Promise<unknown> => {
      const t0 = performance.now();
      try {
        return await fn(...args);
      } finally {
        const ms = performance.now() - t0;
        const list = calls.get(name);
        if (list) list.push(ms);
        else calls.set(name, [ms]);
      }
    };
  return new Proxy(docker, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof prop !== 'string' || typeof value !== 'function') return value;
      const fn = (value as (...args: unknown[]) => unknown).bind(target);
      if (TIMED_CALLS.has(prop)) return timed(prop, fn);
      if (prop !== 'getContainer') return fn;
      return (id: string) => {
        const container = target.getContainer(id);
        return new Proxy(container, {
          get(c, cprop, creceiver) {
            const cvalue: unknown = Reflect.get(c, cprop, creceiver);
            if (typeof cprop !== 'string' || typeof cvalue !== 'function') return cvalue;
            const cfn = (cvalue as (...args: unknown[]) => unknown).bind(c);
            return TIMED_CONTAINER_CALLS.has(cprop) ? timed(`container.${cprop}`, cfn) : cfn;
          },
        });
      };
    },
  });
}

export async function runDockerBackendDirect(opts: {
  docker: Dockerode;
  registry: FakeRegistry;
  image: string;
  /** Distinct per N: the ids, and so the fake registry's boot events, and the org. */
  run: string;
  n: number;
  /** dockerd `start` events by `wo.workspace-id` (DockerBackend labels its containers so). */
  starts: StartWatcher;
}): Promise<BaselineResult> {
  const { docker, registry, starts } = opts;
  const calls = new Map<string, number[]>();
  /** The calls of the last stretch between two cleanups: after the final one, the timed starts'. */
  let timedCalls = new Map<string, number[]>();
  // Configured as the service configures it (src/service.ts createBackends): the default org
  // network pool, the default limits, host.docker.internal through the host gateway.
  const backend = new DockerBackend({ docker: timedDocker(docker, calls), image: opts.image });
  // All of one N in one org, as the orchestrated side's workspaces are in the bench's one org.
  const orgId = `${opts.run}-org`;
  const started = new Set<string>();
  const one = async (_label: string, id: string): Promise<BaselineSample> => {
    const entry = registry.add(fakeBundle(id, { orgId, heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS }));
    started.add(id);
    const t0Wall = Date.now();
    const t0 = performance.now();
    const info = await backend.start({
      workspaceId: id,
      orgId,
      generation: 1,
      runtime: 'echo',
      platformUrl: registry.containerUrl,
      // The product mints a row in PostgreSQL here (inside start, beside the container look); the
      // fake registry's token is already in memory.
      mintBootstrapToken: () => Promise.resolve(entry.bootstrapToken),
    });
    const startedMs = performance.now() - t0;
    const endpoint = info.endpoint;
    if (!endpoint) throw new Error(`start() of ${id} reported no endpoint (status ${info.status})`);
    await poll(`agent ${id} to answer GET /health on ${endpoint}`, (signal) => healthOk(endpoint, signal));
    const totalMs = performance.now() - t0;
    const at = starts.starts.get(id);
    return {
      id,
      t0Wall,
      totalMs,
      startedMs,
      startEventMs: at === undefined ? undefined : at - t0Wall,
      phasesMs: {},
    };
  };
  // As the orchestrated delete does (remove with volumes; the org's network goes with its last
  // workspace), then removeOrg for anything a failure left. Either way the org network is gone
  // afterwards, so the timed starts create it again, as the orchestrated ones do after their
  // warm-up's delete: checked, not assumed.
  const cleanup = async (): Promise<void> => {
    // The calls since the end of the previous cleanup: the warm-up's, then the timed starts'.
    timedCalls = new Map([...calls].map(([name, list]) => [name, [...list]]));
    const ids = [...started];
    await allOrFail(
      'backend-direct removes',
      ids.map((id) => backend.remove(id, { volumes: true })),
    );
    await backend.removeOrg(orgId);
    started.clear();
    const left = (await docker.listNetworks({ filters: { name: [orgNetworkName(orgId)] } })).filter(
      (net) => net.Name === orgNetworkName(orgId),
    );
    if (left.length > 0) throw new Error(`network ${orgNetworkName(orgId)} is still there after cleanup`);
    calls.clear();
  };
  const result = await runBaseline(
    { name: 'backend-direct', idLetter: 'd', one, cleanup },
    registry,
    opts.run,
    opts.n,
  );
  return { ...result, daemonCalls: timedCalls };
}

// ---------------------------------------------------------------------------------------------
// ec2

/** Instance tag marking what a baseline launched (cleanup selects by it). */
const BENCH_TAG = 'WoBench';

/**
 * Terminates every instance matching `filters` that is not terminated yet (through the sim's
 * endpoint, which removes the VM containers before TerminateInstances answers). Returns how many.
 */
export async function terminateInstances(ec2: EC2Client, filters: Filter[]): Promise<number> {
  const ids: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          ...filters,
          { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
        ],
        NextToken: nextToken,
      }),
    );
    for (const r of page.Reservations ?? [])
      for (const i of r.Instances ?? []) if (i.InstanceId) ids.push(i.InstanceId);
    nextToken = page.NextToken;
  } while (nextToken);
  for (let i = 0; i < ids.length; i += 500) {
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: ids.slice(i, i + 500) }));
  }
  return ids.length;
}

export function runEc2Baseline(opts: {
  ec2: EC2Client;
  sim: Ec2Sim;
  /** Docker `start` events of the sim's VM containers, by `wo.workspace-id`. */
  vmStarts: StartWatcher;
  registry: FakeRegistry;
  run: string;
  n: number;
}): Promise<BaselineResult> {
  const { ec2, sim, vmStarts, registry } = opts;
  const platformUrl = `http://${sim.platformHost}:${registry.port}`;
  // One key pair for all: the user-data installs it for root (the baseline never logs in).
  const sshPublicKey = generateParsableKeyPair('wo-bench').publicKey;
  const one = async (label: string, id: string): Promise<BaselineSample> => {
    const entry = registry.add(fakeBundle(id, { heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS }));
    const userData = renderUserData({ platformUrl, bootstrapToken: entry.bootstrapToken, sshPublicKey });
    // The product's tags (ManagedBy makes the sim boot it) plus the bench's own.
    const tags = [
      ...instanceTags({ workspaceId: id, orgId: 'org-bench', generation: 1, runtime: 'echo' }),
      { Key: BENCH_TAG, Value: label },
    ];
    const t0Wall = Date.now();
    const t0 = performance.now();
    const res = await ec2.send(
      new RunInstancesCommand({
        ImageId: sim.amiId,
        InstanceType: 't3.small',
        MinCount: 1,
        MaxCount: 1,
        SubnetId: sim.subnetId,
        UserData: Buffer.from(userData, 'utf8').toString('base64'),
        TagSpecifications: launchTagSpecifications(tags),
      }),
    );
    const startedMs = performance.now() - t0;
    const instance = res.Instances?.[0];
    const ip = instance?.PrivateIpAddress;
    if (!instance?.InstanceId || !ip) throw new Error(`RunInstances for ${id} returned no instance/IP`);
    // Before the sim created the VM container, a connect to its IP waits for ARP: poll /health
    // only once it runs (dockerd's `start` event), as the docker baseline does after start().
    await poll(`ec2-sim to boot ${instance.InstanceId} (${id})`, async () => vmStarts.starts.has(id));
    const endpoint = `http://${ip}:${AGENT_PORT}`;
    await poll(`agent ${id} to answer GET /health on ${endpoint}`, (signal) => healthOk(endpoint, signal));
    const totalMs = performance.now() - t0;
    const vmAt = vmStarts.starts.get(id);
    return {
      id,
      t0Wall,
      totalMs,
      startedMs,
      startEventMs: vmAt === undefined ? undefined : vmAt - t0Wall,
      phasesMs: {},
    };
  };
  return runBaseline(
    {
      name: 'ec2',
      idLetter: 'e',
      one,
      cleanup: async (label) => {
        await terminateInstances(ec2, [{ Name: `tag:${BENCH_TAG}`, Values: [label] }]);
      },
    },
    registry,
    opts.run,
    opts.n,
  );
}
