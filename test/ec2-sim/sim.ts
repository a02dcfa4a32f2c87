/**
 * ec2-sim: moto answers the EC2 API honestly but boots nothing; the sim boots. It watches moto for
 * instances tagged `ManagedBy=workspace-orchestrator` and runs each as a container of the VM image
 * (vm-image.ts) on a Docker network whose subnet is the VPC's, at exactly the PrivateIpAddress moto
 * assigned, with the instance's user-data run by the init like cloud-init. Stop/start/terminate in
 * moto become docker stop/start/rm (terminate before TerminateInstances returns; reboot on
 * RebootInstances). A restart of the Docker daemon (or the host) reboots every running VM, like
 * EC2's automatic recovery: the containers carry the `unless-stopped` restart policy. A restart of
 * the sim itself (its VM containers gone with it) is a host failure: the new sim terminates, in
 * moto, the instances of its subnet that have no container left. The product
 * talks to `endpoint` (a proxy to moto that answers GetConsoleOutput from the container's console)
 * exactly as it would to EC2.
 *
 * Scope: a sim boots the instances whose address lies in its network (one VPC), that moto did not
 * already hold when the sim started (unless adoptExisting), and owns only the containers labelled
 * with its moto endpoint and network; it never touches a container without the `wo.ec2-sim` label.
 *
 * moto facts this relies on (moto 5.2.5): an instance launched WITH a SubnetId gets the next free
 * address of that subnet (172.31.0.4, .5, …); launched WITHOUT one it gets a random 10.x.y.z
 * ("EC2-Classic" behaviour) that lies outside the VPC: the sim cannot place such an instance and
 * says so (log, instanceNotes). moto does not honour ClientToken idempotency (same token twice → two
 * instances). Terminated instances stay listed as `terminated`.
 */
import net from 'node:net';
import {
  DescribeImagesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeKeyPairsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  EC2Client,
  TerminateInstancesCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import Dockerode from 'dockerode';
import tar from 'tar-stream';
import { startEc2Proxy, type Ec2Proxy } from './proxy.js';
import {
  cidrContains,
  claimSubnet,
  DEFAULT_NETWORK_NAME,
  ensureSimNetwork,
  type SimNetwork,
  type SubnetClaim,
} from './network.js';

export interface SimKnobs {
  /** Delay before the container starts (every boot: first and after a stop). */
  bootDelayMs?: number;
  /** Delay before the init runs the user-data (a slow cloud-init). */
  userDataDelayMs?: number;
  /** Run `exit 1` instead of the user-data. */
  userDataFails?: boolean;
  /** moto says running, but no container is ever created. */
  neverBoots?: boolean;
  /** Answer RunInstances with this EC2 error code (HTTP 400), e.g. `InsufficientInstanceCapacity`. */
  launchError?: string;
  /** Answer the first N RunInstances with `RequestLimitExceeded` (HTTP 503), then launch. */
  throttleLaunches?: number;
  /** `/workspace` on a filesystem of this many bytes (a tmpfs): a disk that fills up. */
  workspaceDiskBytes?: number;
}

/** The tags a RunInstances request puts on its instance (`TagSpecification.N.Tag.M.Key/Value`). */
export function launchTags(params: URLSearchParams): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const [k, v] of params) {
    const m = /^TagSpecification\.(\d+)\.Tag\.(\d+)\.Key$/.exec(k);
    if (m) tags[v] = params.get(`TagSpecification.${m[1]}.Tag.${m[2]}.Value`) ?? '';
  }
  return tags;
}

export interface StartEc2SimOptions {
  /** moto_server's URL, e.g. http://127.0.0.1:5000. */
  motoEndpoint: string;
  docker?: Dockerode;
  /** Tag from ensureVmImage(). */
  vmImage: string;
  /**
   * The VPC network. Default: name `wo-ec2-sim`, subnet = moto's default VPC CIDR, gateway = the
   * subnet's last usable address (172.31.255.254). A subnet equal to another VPC's CIDR (one you
   * created in moto) mirrors that VPC instead.
   */
  network?: { name?: string; subnet?: string; gateway?: string };
  /** How often moto is polled (default 200 ms). */
  pollMs?: number;
  /** Knobs for instances that match no setKnobs() target. */
  defaults?: SimKnobs;
  /**
   * Also boot instances moto already held when this sim started (default false: test files share
   * one moto, and a sim must not boot what an earlier file left running). The CLI sets it.
   */
  adoptExisting?: boolean;
  log?: (line: string) => void;
  /** Where the EC2 proxy listens (default 127.0.0.1, a free port). */
  host?: string;
  port?: number;
  /** The one moto region the sim watches (default us-east-1). */
  region?: string;
  /**
   * Claim exactly this subnet (a sim started again keeps the subnet the service launches into);
   * fails when another live sim holds it. Default: the first subnet of the VPC no live sim holds.
   */
  subnetId?: string;
}

export interface Ec2Sim {
  /** What the product's EC2 client uses as `endpoint` (the proxy in front of moto). */
  endpoint: string;
  /** The gateway IP: how instances reach services the host runs on 0.0.0.0. */
  platformHost: string;
  /** Docker network name. */
  network: string;
  /** VPC CIDR the network mirrors (172.31.0.0/16). */
  subnetCidr: string;
  region: string;
  /**
   * A subnet of the VPC (a default one for the default VPC), claimed by this sim: no other live
   * sim on this host launches into it. Launch with it: without a SubnetId moto assigns an address
   * outside the VPC. Empty when the mirrored VPC has no subnet.
   */
  subnetId: string;
  /** A Linux AMI moto knows (for RunInstances ImageId). */
  amiId: string;
  /**
   * Knobs for instances tagged WorkspaceId=<string> (or the WorkspaceId / OrgId given). Read when a
   * boot happens (bootDelayMs, neverBoots) or the container is created (the user-data knobs).
   * Precedence: workspace, then org, then defaults.
   */
  setKnobs(target: string | { workspaceId?: string; orgId?: string }, knobs: SimKnobs): void;
  /** Id of the container that plays the instance (from its creation on, running or not), or null. */
  instanceContainer(instanceId: string): Promise<string | null>;
  /**
   * Why the sim does not boot (or failed to boot) an instance, e.g. "neverBoots: …" or "cannot
   * boot: PrivateIpAddress … is not in the VPC …" (also logged). Empty once it booted. The console
   * (GetConsoleOutput) of an instance without a container stays empty, as on EC2.
   */
  instanceNotes(instanceId: string): string[];
  /** Stops watching and the proxy; removes this sim's containers unless keepContainers. */
  stop(opts?: { keepContainers?: boolean }): Promise<void>;
}

export const MANAGED_BY_TAG = { key: 'ManagedBy', value: 'workspace-orchestrator' } as const;
export const LABEL_SIM = 'wo.ec2-sim';
export const LABEL_MOTO = 'wo.ec2-sim.moto';
export const LABEL_NETWORK = 'wo.ec2-sim.network';
export const LABEL_INSTANCE = 'wo.instance-id';
export const LABEL_WORKSPACE = 'wo.workspace-id';

const STOP_TIMEOUT_S = 10;
const RETRY_AFTER_MS = 2_000;

export function motoClient(endpoint: string, region = 'us-east-1'): EC2Client {
  return new EC2Client({
    endpoint,
    region,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 2,
  });
}

/** The stdout+stderr frames of a non-TTY container's log, in order, as text. */
export function demuxLogs(buf: Buffer): string {
  const out: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buf.length) {
    const type = buf[offset];
    const size = buf.readUInt32BE(offset + 4);
    if (type === undefined || type > 2 || buf[offset + 1] !== 0) {
      // Not multiplexed (a TTY container): the raw bytes are the log.
      return buf.toString('utf8');
    }
    out.push(buf.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return Buffer.concat(out).toString('utf8');
}

type Desired = 'run' | 'stop' | 'gone';

/** Every state but `terminated` (see describeManaged). */
const LISTED_STATES = ['pending', 'running', 'shutting-down', 'stopping', 'stopped'];

function desiredOf(state: string | undefined): Desired {
  switch (state) {
    case 'pending':
    case 'running':
      return 'run';
    case 'stopping':
    case 'stopped':
      return 'stop';
    default:
      return 'gone'; // shutting-down, terminated
  }
}

interface Observed {
  id: string;
  state: string;
  ip: string | undefined;
  workspaceId: string | undefined;
  orgId: string | undefined;
  keyName: string | undefined;
}

interface OwnedContainer {
  id: string;
  name: string;
  state: string; // created | running | exited | paused | restarting | dead
}

interface Tracked {
  busy: boolean;
  /** When the last task on it finished: a listing taken before that is stale for it. */
  settledAt: number;
  /** When a pending boot may happen (bootDelayMs after the sim first saw it wanted). */
  bootAt?: number;
  retryAt?: number;
  seenRunning: boolean;
  stoppedBySim: boolean;
  /** TerminateInstances went through: a boot decided from an older listing must not leave a VM. */
  terminated?: boolean;
  /** Why it does not boot, or failed to (instanceNotes). */
  notes: string[];
  lastFailure?: string;
  /** The task in flight, if any. */
  current?: Promise<void>;
}

function tcpReachable(endpoint: string, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      return resolve(false);
    }
    const socket = net.connect({ host: url.hostname, port: Number(url.port || 80) });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function statusCode(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

/** `InstanceId.1=…&InstanceId.2=…` of an EC2 Query request. */
function instanceIdsOf(params: URLSearchParams): string[] {
  return [...params].filter(([k]) => /^InstanceId\.\d+$/.test(k)).map(([, v]) => v);
}

/** A tar with the files the init reads on first boot (user-data, knobs, key pair keys). */
function instanceFiles(userData: Buffer, info: object): Promise<Buffer> {
  const pack = tar.pack();
  const mtime = new Date();
  pack.entry({ name: 'var/lib/wo-init/user-data', mode: 0o600, mtime }, userData);
  pack.entry({ name: 'var/lib/wo-init/instance.json', mode: 0o600, mtime }, JSON.stringify(info));
  pack.finalize();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    pack.on('data', (c: unknown) => void chunks.push(c as Buffer));
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
  });
}

export async function startEc2Sim(opts: StartEc2SimOptions): Promise<Ec2Sim> {
  const docker = opts.docker ?? new Dockerode();
  const log = opts.log ?? (() => undefined);
  const region = opts.region ?? 'us-east-1';
  const pollMs = opts.pollMs ?? 200;
  const moto = opts.motoEndpoint.replace(/\/+$/, '');
  const ec2 = motoClient(moto, region);
  const workspaceKnobs = new Map<string, SimKnobs>();
  const orgKnobs = new Map<string, SimKnobs>();
  /** RunInstances answered with throttling so far, per workspace. */
  const throttledLaunches = new Map<string, number>();
  const tracked = new Map<string, Tracked>();
  const tasks = new Set<Promise<void>>();

  // --- the VPC the network mirrors (moto's default one unless told), its subnets, an AMI ---------
  let vpcs = (await ec2.send(new DescribeVpcsCommand({}))).Vpcs ?? [];
  let vpcsAt = Date.now();
  const vpcOf = (ip: string | undefined) =>
    ip ? vpcs.find((v) => v.CidrBlock && cidrContains(v.CidrBlock, ip)) : undefined;
  const defaultVpc = vpcs.find((v) => v.IsDefault);
  const vpcCidr = opts.network?.subnet ?? defaultVpc?.CidrBlock;
  if (!vpcCidr) throw new Error(`moto at ${moto} has no default VPC in ${region}: pass network.subnet`);
  const vpc = vpcs.find((v) => v.CidrBlock === vpcCidr);
  const vpcSubnets = vpc?.VpcId
    ? ((await ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'vpc-id', Values: [vpc.VpcId] }] })))
        .Subnets ?? [])
    : [];
  const candidateSubnets = vpcSubnets
    .filter((s) => s.SubnetId && s.CidrBlock && (!vpc?.IsDefault || s.DefaultForAz))
    .sort((a, b) =>
      vpc?.IsDefault
        ? (a.AvailabilityZone ?? '').localeCompare(b.AvailabilityZone ?? '')
        : (a.CidrBlock ?? '').localeCompare(b.CidrBlock ?? ''),
    );
  const images = await ec2.send(
    new DescribeImagesCommand({ Filters: [{ Name: 'name', Values: ['amzn2-ami-hvm-*-x86_64-gp2'] }] }),
  );
  const amiId =
    [...(images.Images ?? [])].map((i) => i.ImageId ?? '').sort()[0] ||
    (await ec2.send(new DescribeImagesCommand({}))).Images?.[0]?.ImageId;
  if (!amiId) throw new Error(`moto at ${moto} lists no AMI`);

  const network: SimNetwork = await ensureSimNetwork(
    docker,
    {
      name: opts.network?.name ?? DEFAULT_NETWORK_NAME,
      subnet: vpcCidr,
      gateway: opts.network?.gateway,
    },
    log,
  );

  // A sim owns the containers of its moto on its network: two sims may share a moto if they mirror
  // different VPCs (each boots only the instances whose address is in its network).
  const ownerFilter = [`${LABEL_SIM}=1`, `${LABEL_MOTO}=${moto}`, `${LABEL_NETWORK}=${network.name}`];
  const listOwned = async (): Promise<Map<string, OwnedContainer>> => {
    const list = await docker.listContainers({ all: true, filters: { label: ownerFilter } });
    const byInstance = new Map<string, OwnedContainer>();
    for (const c of list) {
      const instanceId = c.Labels[LABEL_INSTANCE];
      if (instanceId) byInstance.set(instanceId, { id: c.Id, name: c.Names[0] ?? c.Id, state: c.State });
    }
    return byInstance;
  };

  // --- containers of sims whose moto is gone: their instances are gone too ----------------------
  {
    const all = await docker.listContainers({ all: true, filters: { label: [`${LABEL_SIM}=1`] } });
    const verdict = new Map<string, Promise<boolean>>();
    for (const c of all) {
      const owner = c.Labels[LABEL_MOTO];
      if (!owner || owner === moto) continue;
      if (!verdict.has(owner)) verdict.set(owner, tcpReachable(owner));
      if (await verdict.get(owner)) continue;
      log(`removing ${c.Names[0] ?? c.Id}: left by a sim whose moto (${owner}) is gone`);
      await docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch((err: unknown) => log(`removing ${c.Id} failed: ${errorText(err)}`));
    }
  }

  const track = (id: string): Tracked => {
    let t = tracked.get(id);
    if (!t) {
      t = { busy: false, settledAt: 0, seenRunning: false, stoppedBySim: false, notes: [] };
      tracked.set(id, t);
    }
    return t;
  };
  const knobsFor = (inst: Pick<Observed, 'workspaceId' | 'orgId'>): SimKnobs => ({
    ...opts.defaults,
    ...(inst.orgId !== undefined ? orgKnobs.get(inst.orgId) : undefined),
    ...(inst.workspaceId !== undefined ? workspaceKnobs.get(inst.workspaceId) : undefined),
  });
  /** Logs (unless quiet) and records (instanceNotes) a reason, once per distinct text. */
  const note = (t: Tracked, id: string, text: string, quiet = false): void => {
    if (t.notes.includes(text)) return;
    t.notes.push(text);
    if (!quiet) log(`${id}: ${text}`);
  };
  const runTask = (t: Tracked, what: string, fn: () => Promise<void>): void => {
    t.busy = true;
    const task = fn()
      .then(() => {
        t.retryAt = undefined;
        t.lastFailure = undefined;
      })
      .catch((err: unknown) => {
        t.retryAt = Date.now() + RETRY_AFTER_MS;
        const text = `${what} failed: ${errorText(err)}`;
        // Logged once per distinct failure (it retries every RETRY_AFTER_MS); also a note.
        if (text !== t.lastFailure) log(`${text} (retrying every ${RETRY_AFTER_MS} ms)`);
        t.lastFailure = text;
        if (!t.notes.includes(text)) t.notes.push(text);
      })
      .finally(() => {
        t.busy = false;
        t.current = undefined;
        t.settledAt = Date.now();
        tasks.delete(task);
      });
    t.current = task;
    tasks.add(task);
  };

  const createAndStart = async (inst: Observed, t: Tracked, k: SimKnobs): Promise<void> => {
    const attr = await ec2.send(
      new DescribeInstanceAttributeCommand({ InstanceId: inst.id, Attribute: 'userData' }),
    );
    const userData = Buffer.from(attr.UserData?.Value ?? '', 'base64');
    let authorizedKeys: string[] = [];
    if (inst.keyName) {
      const pairs = await ec2.send(
        new DescribeKeyPairsCommand({ KeyNames: [inst.keyName], IncludePublicKey: true }),
      );
      authorizedKeys = (pairs.KeyPairs ?? []).flatMap((p) => (p.PublicKey ? [p.PublicKey] : []));
    }
    const ip = inst.ip as string;
    const name = `ec2-${inst.id}`;
    const container = await docker.createContainer({
      name,
      Image: opts.vmImage,
      Hostname: `ip-${ip.replace(/\./g, '-')}`,
      Domainname: 'ec2.internal',
      Labels: {
        [LABEL_SIM]: '1',
        [LABEL_MOTO]: moto,
        [LABEL_NETWORK]: network.name,
        [LABEL_INSTANCE]: inst.id,
        [LABEL_WORKSPACE]: inst.workspaceId ?? '',
      },
      StopTimeout: STOP_TIMEOUT_S,
      HostConfig: {
        NetworkMode: network.name,
        // A host going away (the Docker daemon restarting, a reboot) reboots the VM, as EC2's
        // automatic recovery does: the instance stays `running` in moto, so its container must come
        // back. `docker stop` (StopInstances) and `docker kill` count as manual stops and stay down.
        RestartPolicy: { Name: 'unless-stopped' },
        ...(k.workspaceDiskBytes ? { Tmpfs: { '/workspace': `size=${k.workspaceDiskBytes}` } } : {}),
      },
      NetworkingConfig: { EndpointsConfig: { [network.name]: { IPAMConfig: { IPv4Address: ip } } } },
    });
    try {
      const info = {
        instanceId: inst.id,
        userDataDelayMs: k.userDataDelayMs ?? 0,
        userDataFails: k.userDataFails ?? false,
        authorizedKeys,
      };
      await container.putArchive(await instanceFiles(userData, info), { path: '/' });
      if (t.terminated) throw new Error(`${inst.id} was terminated while it was being booted`);
      await container.start();
    } catch (err) {
      await container.remove({ force: true, v: true }).catch(() => undefined);
      throw err;
    }
    t.notes = [];
    t.seenRunning = true;
    t.stoppedBySim = false;
    t.bootAt = undefined;
    log(
      `${inst.id}: booted as ${name} at ${ip} (workspace ${inst.workspaceId ?? '-'}, user-data ${userData.length} bytes)`,
    );
  };

  const startExisting = async (inst: Observed, t: Tracked, c: OwnedContainer): Promise<void> => {
    await docker
      .getContainer(c.id)
      .start()
      .catch((err: unknown) => {
        if (statusCode(err) !== 304) throw err; // 304: already running
      });
    t.seenRunning = true;
    t.stoppedBySim = false;
    t.bootAt = undefined;
    log(`${inst.id}: started ${c.name} again`);
  };

  const stopContainer = async (id: string, t: Tracked, c: OwnedContainer): Promise<void> => {
    t.stoppedBySim = true;
    const done = await docker
      .getContainer(c.id)
      .stop({ t: STOP_TIMEOUT_S })
      .then(
        () => true,
        (err: unknown) => {
          if (statusCode(err) === 304) return false; // already stopped
          throw err;
        },
      );
    if (done) log(`${id}: stopped ${c.name}`);
  };

  const removeContainer = async (id: string, c: OwnedContainer, why: string): Promise<void> => {
    const done = await docker
      .getContainer(c.id)
      .remove({ force: true, v: true })
      .then(
        () => true,
        (err: unknown) => {
          if (statusCode(err) === 404) return false; // already gone
          throw err;
        },
      );
    if (done) log(`${id}: removed ${c.name} (${why})`);
  };

  const describeManaged = async (): Promise<Map<string, Observed>> => {
    const found = new Map<string, Observed>();
    let nextToken: string | undefined;
    do {
      const page = await ec2.send(
        new DescribeInstancesCommand({
          // Not terminated ones: moto keeps those forever and filters every instance of every page
          // (about 1 ms each), so a full listing of 1,000 took 16 s (11 pages) against 1 s without
          // them. A container whose instance left the listing is removed as unknown to moto.
          Filters: [
            { Name: `tag:${MANAGED_BY_TAG.key}`, Values: [MANAGED_BY_TAG.value] },
            { Name: 'instance-state-name', Values: LISTED_STATES },
          ],
          NextToken: nextToken,
        }),
      );
      for (const inst of (page.Reservations ?? []).flatMap((r) => r.Instances ?? []) as Instance[]) {
        if (!inst.InstanceId) continue;
        found.set(inst.InstanceId, {
          id: inst.InstanceId,
          state: inst.State?.Name ?? 'unknown',
          ip: inst.PrivateIpAddress,
          workspaceId: inst.Tags?.find((t) => t.Key === 'WorkspaceId')?.Value,
          orgId: inst.Tags?.find((t) => t.Key === 'OrgId')?.Value,
          keyName: inst.KeyName,
        });
      }
      nextToken = page.NextToken;
    } while (nextToken);
    return found;
  };

  const reconcile = async (): Promise<void> => {
    const listedAt = Date.now();
    const [instances, containers] = await Promise.all([describeManaged(), listOwned()]);
    const now = Date.now();
    // A VPC created after the sim started (another sim's): refresh before explaining an address.
    const strangers = [...instances.values()].some(
      (i) => i.ip && !cidrContains(network.subnet, i.ip) && !vpcOf(i.ip) && !tracked.get(i.id)?.notes.length,
    );
    if (strangers && vpcsAt < listedAt) {
      vpcs = (await ec2.send(new DescribeVpcsCommand({}))).Vpcs ?? vpcs;
      vpcsAt = Date.now();
    }
    // Skip what a task changed after the listing began: the next tick sees it as it is.
    const idle = (t: Tracked): boolean =>
      !t.busy && t.settledAt < listedAt && (t.retryAt === undefined || now >= t.retryAt);
    for (const inst of instances.values()) {
      const t = track(inst.id);
      if (!idle(t)) continue;
      const c = containers.get(inst.id);
      const desired = desiredOf(inst.state);
      if (desired === 'run') {
        if (t.terminated) continue; // a listing older than its TerminateInstances
        if (c?.state === 'running') {
          t.seenRunning = true;
          t.stoppedBySim = false;
          t.bootAt = undefined;
          continue;
        }
        const k = knobsFor(inst);
        if (c && t.seenRunning && !t.stoppedBySim) {
          note(
            t,
            inst.id,
            `${c.name} was stopped outside the sim (docker stop/kill); the instance stays '${inst.state}' like a crashed VM`,
          );
          continue;
        }
        if (!c && preexisting.has(inst.id)) {
          // Quiet: a shared moto may hold many of these from earlier test files.
          note(
            t,
            inst.id,
            'moto held this instance before the sim started: not booted (adoptExisting is off)',
            true,
          );
          continue;
        }
        if (!c && k.neverBoots) {
          note(t, inst.id, 'neverBoots: moto says running, no container is created');
          continue;
        }
        if (!c && (!inst.ip || !cidrContains(network.subnet, inst.ip) || inst.ip === network.gateway)) {
          const ip = inst.ip ?? '(none)';
          const otherVpc = vpcOf(inst.ip);
          if (otherVpc && otherVpc.CidrBlock !== network.subnet) {
            // Quiet: another sim (mirroring that VPC) may boot it.
            note(t, inst.id, `not booted: ${ip} is in another VPC (${otherVpc.CidrBlock})`, true);
          } else {
            note(
              t,
              inst.id,
              `cannot boot: PrivateIpAddress ${ip} is not in the VPC ${network.subnet}` +
                ' (moto assigns a random 10.x address when RunInstances has no SubnetId)',
            );
          }
          continue;
        }
        if (t.bootAt === undefined) {
          t.bootAt = now + (k.bootDelayMs ?? 0);
          if (k.bootDelayMs) log(`${inst.id}: booting in ${k.bootDelayMs} ms`);
        }
        if (now < t.bootAt) continue;
        if (c) runTask(t, `starting ${c.name}`, () => startExisting(inst, t, c));
        else runTask(t, `booting ${inst.id}`, () => createAndStart(inst, t, k));
      } else if (desired === 'stop') {
        t.bootAt = undefined;
        if (!c) continue;
        if (c.state === 'running' || c.state === 'restarting' || c.state === 'paused') {
          runTask(t, `stopping ${c.name}`, () => stopContainer(inst.id, t, c));
        } else {
          t.stoppedBySim = true;
        }
      } else {
        t.bootAt = undefined;
        if (c) runTask(t, `removing ${c.name}`, () => removeContainer(inst.id, c, `instance ${inst.state}`));
        else tracked.delete(inst.id);
      }
    }
    for (const [id, c] of containers) {
      if (instances.has(id)) continue;
      const t = track(id);
      if (idle(t)) runTask(t, `removing ${c.name}`, () => removeContainer(id, c, 'instance unknown to moto'));
    }
  };

  // --- the loop ---------------------------------------------------------------------------------
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> | undefined;
  let again = false;
  let lastError = '';
  let lastErrorAt = 0;
  const tick = (): void => {
    if (stopped) return;
    if (current) {
      again = true; // a kick while reconciling: run once more right after
      return;
    }
    clearTimeout(timer);
    current = reconcile()
      .then(() => {
        lastError = '';
      })
      .catch((err: unknown) => {
        const text = errorText(err);
        // moto down or restarting: say so, but not 5 times a second.
        if (text !== lastError || Date.now() - lastErrorAt > 10_000) log(`reconcile failed: ${text}`);
        lastError = text;
        lastErrorAt = Date.now();
      })
      .finally(() => {
        current = undefined;
        if (stopped) return;
        if (again) {
          again = false;
          setImmediate(tick);
        } else timer = setTimeout(tick, pollMs);
      });
  };

  /** RebootInstances: moto keeps them `running`; the VM reboots (docker restart: SIGTERM, boot again). */
  const reboot = async (instanceIds: string[]): Promise<void> => {
    const containers = await listOwned().catch(() => new Map<string, OwnedContainer>());
    for (const id of instanceIds) {
      const c = containers.get(id);
      const t = track(id);
      if (!c || c.state !== 'running' || t.busy) continue;
      runTask(t, `rebooting ${c.name}`, async () => {
        await docker.getContainer(c.id).restart({ t: STOP_TIMEOUT_S });
        log(`${id}: rebooted ${c.name}`);
      });
    }
  };

  const containerOf = async (instanceId: string): Promise<OwnedContainer | null> =>
    (await listOwned()).get(instanceId) ?? null;

  const consoleOutput = async (
    instanceId: string,
    requestRegion: string | undefined,
  ): Promise<string | null> => {
    if (requestRegion && requestRegion !== region) return null; // not ours: moto answers
    const c = await containerOf(instanceId);
    if (c) {
      const logs = await docker
        .getContainer(c.id)
        .logs({ stdout: true, stderr: true, follow: false })
        .then(
          (buf) => demuxLogs(buf as Buffer),
          (err: unknown) => {
            if (statusCode(err) === 404) return null; // removed meanwhile (terminated)
            throw err;
          },
        );
      if (logs !== null) return logs;
    }
    try {
      const found = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
      if (!found.Reservations?.some((r) => r.Instances?.some((i) => i.InstanceId === instanceId)))
        return null;
    } catch {
      return null; // InvalidInstanceID.*: moto gives the honest error
    }
    return ''; // known, never booted (or gone): an empty console, as on EC2
  };

  /**
   * TerminateInstances, once moto accepted it: the containers go before the caller hears back, so
   * whoever terminated can rely on the VM being gone (EC2's shutting-down, collapsed to no time).
   */
  const terminateNow = async (instanceIds: string[]): Promise<void> => {
    // Marked first: a reconcile tick that listed the instance as running before this (and saw no
    // container yet, e.g. during its boot delay) must not boot it afterwards.
    for (const id of instanceIds) {
      const t = track(id);
      t.terminated = true;
      t.settledAt = Date.now();
    }
    for (const id of instanceIds) await tracked.get(id)?.current; // a boot in flight ends first
    const containers = await listOwned();
    await Promise.all(
      instanceIds.map(async (id) => {
        const c = containers.get(id);
        if (!c) return;
        const t = track(id);
        t.busy = true;
        try {
          await removeContainer(id, c, 'TerminateInstances');
        } finally {
          t.busy = false;
          t.settledAt = Date.now();
        }
      }),
    );
  };

  // What moto already held when this sim started is not this sim's to boot (unless adoptExisting);
  // its containers from an earlier sim on the same moto, if any, are still reconciled.
  const preexisting = opts.adoptExisting ? new Set<string>() : new Set((await describeManaged()).keys());

  let claim: SubnetClaim | null = null;
  if (opts.subnetId !== undefined) {
    const wanted = candidateSubnets.find((s) => s.SubnetId === opts.subnetId);
    if (!wanted) {
      throw new Error(
        `subnet ${opts.subnetId} is not a subnet of the VPC ${vpcCidr} in moto at ${moto} (moto restarted without its seed?)`,
      );
    }
    claim = claimSubnet(network.name, [wanted.CidrBlock as string], moto);
  } else if (candidateSubnets.length > 0) {
    claim = claimSubnet(
      network.name,
      candidateSubnets.map((s) => s.CidrBlock as string),
      moto,
    );
  } else {
    log(`moto has no subnet in the VPC ${vpcCidr}: create one and launch into it (subnetId is empty)`);
  }
  const subnet = candidateSubnets.find((s) => s.CidrBlock === claim?.cidr);

  /**
   * A sim starting where an earlier one ran (its restart): instances of the claimed subnet that
   * moto still holds but whose VM container is gone died with that sim (removed at its stop, or
   * lost with its host), and their disk with them, so they cannot boot again. They are terminated
   * in moto, as EC2 retires an instance whose host failed; left alone they would stay `running`
   * for ever with no VM. An instance whose container survived is reconciled as usual (started
   * again). No live sim launches into a claimed subnet, so nothing alive is touched.
   */
  const retireLostInstances = async (cidr: string): Promise<void> => {
    const [instances, containers] = await Promise.all([describeManaged(), listOwned()]);
    const lost = [...instances.values()]
      .filter(
        (i) => desiredOf(i.state) !== 'gone' && i.ip && cidrContains(cidr, i.ip) && !containers.has(i.id),
      )
      .map((i) => i.id);
    if (lost.length === 0) return;
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: lost }));
    log(`${lost.join(', ')}: no VM left (it died with the previous sim on ${cidr}): terminated in moto`);
  };

  let proxy: Ec2Proxy;
  try {
    if (claim) await retireLostInstances(claim.cidr);
    proxy = await startEc2Proxy({
      motoEndpoint: moto,
      host: opts.host,
      port: opts.port,
      consoleOutput,
      log,
      inject: (action, params) => {
        if (action !== 'RunInstances') return null;
        const tags = launchTags(params);
        const k = knobsFor({ workspaceId: tags.WorkspaceId, orgId: tags.OrgId });
        if (k.launchError) {
          return { status: 400, code: k.launchError, message: `ec2-sim: injected ${k.launchError}` };
        }
        const key = tags.WorkspaceId ?? '';
        const throttled = throttledLaunches.get(key) ?? 0;
        if (k.throttleLaunches && throttled < k.throttleLaunches) {
          throttledLaunches.set(key, throttled + 1);
          return { status: 503, code: 'RequestLimitExceeded', message: 'ec2-sim: injected throttling' };
        }
        return null;
      },
      beforeRespond: ({ action, params, status }) =>
        action === 'TerminateInstances' && status === 200 ? terminateNow(instanceIdsOf(params)) : undefined,
      onForwarded: ({ action, params, status }) => {
        if (status !== 200 || !action) return;
        if (action === 'RebootInstances') void reboot(instanceIdsOf(params));
        else if (/^(Run|Start|Stop|Terminate)Instances$/.test(action)) tick();
      },
    });
  } catch (err) {
    claim?.release();
    ec2.destroy();
    throw err;
  }
  tick();
  log(
    `watching ${moto} (${region}) every ${pollMs} ms; EC2 endpoint ${proxy.endpoint}; ` +
      `network ${network.name} ${network.subnet} gateway ${network.gateway}; subnet ${subnet?.SubnetId ?? '-'} ${subnet?.CidrBlock ?? ''}; AMI ${amiId}`,
  );

  return {
    endpoint: proxy.endpoint,
    platformHost: network.gateway,
    network: network.name,
    subnetCidr: network.subnet,
    region,
    subnetId: subnet?.SubnetId ?? '',
    amiId,
    setKnobs(target, k) {
      const { workspaceId, orgId } =
        typeof target === 'string' ? { workspaceId: target, orgId: undefined } : target;
      if (workspaceId !== undefined) workspaceKnobs.set(workspaceId, { ...k });
      if (orgId !== undefined) orgKnobs.set(orgId, { ...k });
    },
    async instanceContainer(instanceId) {
      return (await containerOf(instanceId))?.id ?? null;
    },
    instanceNotes(instanceId) {
      return [...(tracked.get(instanceId)?.notes ?? [])];
    },
    async stop(stopOpts = {}) {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      await current;
      await Promise.allSettled([...tasks]);
      await proxy.close();
      if (!stopOpts.keepContainers) {
        const owned = await listOwned().catch(() => new Map<string, OwnedContainer>());
        await Promise.allSettled(
          [...owned].map(([id, c]) =>
            removeContainer(id, c, 'sim stopped').catch((err: unknown) =>
              log(`removing ${c.name} failed: ${errorText(err)}`),
            ),
          ),
        );
      }
      claim?.release();
      ec2.destroy();
      log('stopped');
    },
  };
}
