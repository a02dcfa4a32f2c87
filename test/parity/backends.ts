/**
 * The parity suite's one seam: the same tests run against `docker` and `ec2`. This module gives a
 * test a stack with the backend enabled (for ec2: moto + ec2-sim, which boots moto's instances as
 * containers at their private IPs) and backend-neutral ways to look at what exists.
 */
import { execFileSync } from 'node:child_process';
import {
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, inject } from 'vitest';
import type { BackendKind } from '../../src/backends/backend.js';
import { isDataVolume } from '../../src/backends/ec2/data-volume.js';
import '../setup/context.js';
import { startEc2Sim, type Ec2Sim, type SimKnobs } from '../ec2-sim/sim.js';
import { MOTO_CREDENTIALS, simServiceEnv } from '../ec2-sim/service-env.js';
import { ensureVmImage } from '../ec2-sim/vm-image.js';
import { readContainerFile, type ContainerFile } from '../support/container-files.js';
import { freezeContainerAgent } from '../support/agent-death.js';
import { createFreshDatabase, type FreshDatabase } from '../setup/databases.js';
import {
  containersOf,
  createOrg,
  deleteLeftoverWorkspaces,
  startStack,
  testEnv,
  volumesOf,
  waitForStatus,
  type Stack,
  type StackFixture,
  type StackOptions,
} from '../support/stack.js';

export const PARITY_BACKENDS: readonly BackendKind[] = ['docker', 'ec2'];

/**
 * Options of a parity describe block that may run at the same time as the file's other blocks
 * marked so (its docker and ec2 halves, say): the files run one at a time, and their tests spend
 * most of their time waiting on boots and timeouts. Safe because each block has its own stack,
 * task queue and org, and ec2 blocks share the file's simulator (useParityStack). Tests inherit
 * the option: declare those that share state within the block with `it.sequential`.
 */
export const CONCURRENT_BLOCK = { concurrent: true } as const;

export interface ParityFixture extends StackFixture {
  readonly backend: BackendKind;
  /** Environment of this stack, for worker processes a test spawns. */
  readonly env: Record<string, string>;
  /** The simulator (ec2 only). */
  readonly sim: Ec2Sim | null;
  /**
   * A new org whose workspaces the simulator boots with `knobs` (ec2 only). Keyed by org because
   * the knobs must be in place before the workspace's instance is launched.
   */
  orgWithKnobs(knobs: SimKnobs): Promise<string>;
}

/** Environment of a worker process (test/support/worker-process.ts) that serves this fixture's stack. */
export function workerProcessEnv(t: ParityFixture): Record<string, string> {
  const port = t.stack.service.port!;
  return {
    ...t.env,
    DOCKER_PLATFORM_URL: `http://host.docker.internal:${port}`,
    ...(t.sim ? { EC2_PLATFORM_URL: `http://${t.sim.platformHost}:${port}` } : {}),
  };
}

export function motoClient(): EC2Client {
  return new EC2Client({
    region: 'us-east-1',
    endpoint: inject('MOTO_ENDPOINT'),
    credentials: MOTO_CREDENTIALS,
  });
}

/** Environment that enables the backend under test (ec2: against the given simulator). */
export function backendEnv(backend: BackendKind, sim: Ec2Sim | null): Record<string, string> {
  return backend === 'ec2' && sim ? simServiceEnv(sim) : {};
}

/** The sim's recent log lines (it logs per instance: `i-…: booted …`), for failed waits' reports. */
const simLog: string[] = [];
const SIM_LOG_LINES = 2_000;

export async function startSim(): Promise<Ec2Sim> {
  const vmImage = await ensureVmImage();
  return startEc2Sim({
    motoEndpoint: inject('MOTO_ENDPOINT'),
    vmImage,
    log: (line) => {
      simLog.push(`${new Date().toISOString()} ${line}`);
      if (simLog.length > SIM_LOG_LINES) simLog.splice(0, simLog.length - SIM_LOG_LINES);
    },
  });
}

/** What the sim says of a workspace's instance: its notes and its log lines. */
function simDiagnostics(sim: Ec2Sim, workspace: { instanceId?: string | null }): string {
  const id = workspace.instanceId;
  if (!id) return 'ec2-sim: the workspace names no instance';
  const lines = simLog.filter((l) => l.includes(id));
  return [
    `ec2-sim notes on ${id}: ${JSON.stringify(sim.instanceNotes(id))}`,
    `ec2-sim log on ${id} (${lines.length} lines):`,
    ...lines.slice(-30).map((l) => `  ${l}`),
  ].join('\n');
}

/**
 * The file's simulator, shared by its ec2 describe blocks that run at the same time (a file may run
 * its docker and ec2 halves, or several ec2 blocks, concurrently): two sims on one moto and network
 * would each take the other's instances for their own. Stopped when its last user is done, so
 * blocks that run one after another still get a fresh one each, as before.
 */
let sharedSim: { sim: Promise<Ec2Sim>; users: number } | null = null;

async function acquireSim(): Promise<Ec2Sim> {
  if (!sharedSim) {
    const started = startSim();
    // A failed start is every waiter's failure, and the next block's to retry.
    started.catch(() => (sharedSim = sharedSim?.sim === started ? null : sharedSim));
    sharedSim = { sim: started, users: 0 };
  }
  sharedSim.users++;
  return sharedSim.sim;
}

async function releaseSim(sim: Ec2Sim): Promise<void> {
  const s = sharedSim;
  if (!s || (await s.sim) !== sim || --s.users > 0) return;
  sharedSim = null;
  await sim.stop();
}

/**
 * A stack with `backend` enabled, started before the describe block and stopped after it.
 * `ownDatabase`: on a database of its own (dropped after), so that the sweeps it runs see only its
 * own workspaces: blocks whose sweeps would otherwise judge each other's can then run at once.
 */
export function useParityStack(
  backend: BackendKind,
  opts: StackOptions & { ownDatabase?: boolean } = {},
): ParityFixture {
  let stack: Stack | undefined;
  let sim: Ec2Sim | null = null;
  let org: { id: string; apiKey: string } | undefined;
  let env: Record<string, string> = {};
  let database: FreshDatabase | undefined;
  beforeAll(async () => {
    if (backend === 'ec2') sim = await acquireSim();
    if (opts.ownDatabase) database = await createFreshDatabase(inject('DATABASE_URL'), `parity_${backend}`);
    env = testEnv({
      ...backendEnv(backend, sim),
      ...opts.env,
      ...(database ? { DATABASE_URL: database.url } : {}),
    });
    stack = await startStack({ ...opts, env });
    const s = sim;
    if (s) stack.diagnose = async (w) => simDiagnostics(s, w);
    org = await createOrg(stack);
  });
  afterAll(async () => {
    if (stack) await deleteLeftoverWorkspaces(stack);
    await stack?.close();
    if (sim) await releaseSim(sim);
    await database?.drop();
  });
  return {
    backend,
    get stack() {
      return stack!;
    },
    get key() {
      return org!.apiKey;
    },
    get orgId() {
      return org!.id;
    },
    get env() {
      return env;
    },
    get sim() {
      return sim;
    },
    async orgWithKnobs(knobs) {
      if (!sim) throw new Error('simulator knobs exist only on ec2');
      const created = await createOrg(stack!, 'knobbed');
      sim.setKnobs({ orgId: created.id }, knobs);
      return created.apiKey;
    },
  };
}

export interface LiveResource {
  /** Container id (docker) or instance id (ec2). */
  id: string;
  name: string;
  running: boolean;
}

/** What exists on the backend for a workspace: containers, or EC2 instances not terminated. */
export async function resourcesOf(
  backend: BackendKind,
  docker: Dockerode,
  workspaceId: string,
): Promise<LiveResource[]> {
  if (backend === 'docker') {
    return (await containersOf(docker, workspaceId)).map((c) => ({
      id: c.Id,
      name: c.Names[0]!.replace(/^\//, ''),
      running: c.State === 'running',
    }));
  }
  return (await instancesOf(workspaceId))
    .filter((i) => i.State?.Name !== 'terminated')
    .map((i) => ({
      id: i.InstanceId!,
      name: i.Tags?.find((t) => t.Key === 'Name')?.Value ?? '',
      running: i.State?.Name === 'running',
    }));
}

/**
 * Everything a generation's resource was launched with, as text: the container's env (docker) or
 * the instance's user-data read back from the EC2 API (ec2).
 */
export async function launchTextOf(
  backend: BackendKind,
  docker: Dockerode,
  workspaceId: string,
  generation: number,
): Promise<string> {
  if (backend === 'docker') {
    return (await docker.getContainer(`ws-${workspaceId}-g${generation}`).inspect()).Config.Env.join('\n');
  }
  const instance = (await instancesOf(workspaceId)).find(
    (i) => i.Tags?.find((tag) => tag.Key === 'Generation')?.Value === String(generation),
  );
  if (!instance) throw new Error(`no instance for ${workspaceId} g${generation}`);
  const attr = await motoClient().send(
    new DescribeInstanceAttributeCommand({ InstanceId: instance.InstanceId!, Attribute: 'userData' }),
  );
  return Buffer.from(attr.UserData?.Value ?? '', 'base64').toString('utf8');
}

/** The bootstrap token a generation's resource was started with. */
export async function bootstrapTokenOf(
  backend: BackendKind,
  docker: Dockerode,
  workspaceId: string,
  generation: number,
): Promise<string> {
  const text = await launchTextOf(backend, docker, workspaceId, generation);
  const m = /WO_BOOTSTRAP_TOKEN=['"]?(wo_boot_[A-Za-z0-9_-]+)/.exec(text);
  if (!m) throw new Error(`no bootstrap token found for ${workspaceId} g${generation}`);
  return m[1]!;
}

export async function instancesOf(workspaceId: string) {
  const out = await motoClient().send(
    new DescribeInstancesCommand({ Filters: [{ Name: 'tag:WorkspaceId', Values: [workspaceId] }] }),
  );
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
}

/** The EBS volumes carrying the workspace's tag, in any state. */
export async function volumesTagged(workspaceId: string) {
  const out = await motoClient().send(
    new DescribeVolumesCommand({ Filters: [{ Name: 'tag:WorkspaceId', Values: [workspaceId] }] }),
  );
  return out.Volumes ?? [];
}

/**
 * Nothing of the workspace is left: docker — no container and no volume (`keepVolumes`: its
 * volumes may stay); ec2 — every instance `terminated` in moto, no EBS volume (a root volume is
 * its generation's, never kept; `keepVolumes`: the workspace's data volume may stay, `available`)
 * and no simulator container.
 */
export async function leftovers(
  backend: BackendKind,
  docker: Dockerode,
  workspaceId: string,
  opts: { keepVolumes?: boolean } = {},
): Promise<string[]> {
  if (backend === 'docker') {
    return [
      ...(await containersOf(docker, workspaceId)).map((c) => `container ${c.Names[0]}`),
      ...(opts.keepVolumes ? [] : await volumesOf(docker, workspaceId)).map((v) => `volume ${v.Name}`),
    ];
  }
  const instances = (await instancesOf(workspaceId)).filter((i) => i.State?.Name !== 'terminated');
  const simContainers = await docker.listContainers({
    all: true,
    filters: { label: ['wo.ec2-sim=1', `wo.workspace-id=${workspaceId}`] },
  });
  return [
    ...instances.map((i) => `instance ${i.InstanceId} (${i.State?.Name})`),
    ...(await volumesTagged(workspaceId))
      .filter((v) => !(opts.keepVolumes && v.State === 'available' && isDataVolume(v)))
      .map((v) => `volume ${v.VolumeId} (${v.State})`),
    ...simContainers.map((c) => `sim container ${c.Names[0]}`),
  ];
}

/** Where the agent keeps its bundle and secrets (outside the files API's roots). */
export const AGENT_STATE_DIR = '/var/lib/wo';

/**
 * A file of the agent's state dir in a generation's resource: read straight from the container
 * (docker) or the ec2-sim VM's container (ec2), since the files API refuses to serve it.
 */
export async function stateFileOf(
  backend: BackendKind,
  docker: Dockerode,
  workspaceId: string,
  generation: number,
  name: 'bundle.json' | 'secrets.env' | 'mcp.json',
): Promise<ContainerFile> {
  let container = `ws-${workspaceId}-g${generation}`;
  if (backend === 'ec2') {
    const instance = (await instancesOf(workspaceId)).find(
      (i) => i.Tags?.find((tag) => tag.Key === 'Generation')?.Value === String(generation),
    );
    if (!instance) throw new Error(`no instance for ${workspaceId} g${generation}`);
    container = `ec2-${instance.InstanceId!}`;
  }
  return readContainerFile(docker, container, `${AGENT_STATE_DIR}/${name}`);
}

/** Creates a workspace of the fixture's backend (`body` adds to the create body) and waits for online. */
export async function createOnline(
  t: Pick<ParityFixture, 'stack' | 'key' | 'backend'>,
  name: string,
  body: Record<string, unknown> = {},
) {
  const created = await t.stack.api.call('POST', '/v1/workspaces', {
    token: t.key,
    body: { name, backend: t.backend, ...body },
  });
  if (created.status !== 202)
    throw new Error(`create ${name}: ${created.status} ${JSON.stringify(created.body)}`);
  return waitForStatus(t.stack, t.key, created.body.id as string, 'online');
}

/** Freezes (SIGSTOP / docker pause) or thaws the agent: it keeps its socket but answers nothing. */
export async function freezeAgent(
  t: ParityFixture,
  w: { id: string; generation: number; instanceId: string },
  frozen: boolean,
) {
  if (t.backend === 'docker') {
    await freezeContainerAgent(t.stack.docker, `ws-${w.id}-g${w.generation}`, frozen);
    return;
  }
  const container = await t.sim!.instanceContainer(w.instanceId);
  if (!container) throw new Error(`no sim container for ${w.instanceId}`);
  const sig = frozen ? 'STOP' : 'CONT';
  const script = `for p in $(ps -o pid,args | grep '[a]gent.mjs' | awk '{print $1}'); do kill -${sig} $p; done`;
  execFileSync('docker', ['exec', container, 'sh', '-c', script]);
}
