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
 * EBS data volumes (the workspace's `/workspace` disk): a Docker container cannot gain a mount once
 * created and a VM has no CAP_SYS_ADMIN, so the sim stages and fakes the rest. When it creates an
 * instance's container it looks up the volumes tagged ManagedBy, Role=workspace-data and the
 * instance's WorkspaceId (that workspace's only: never another's) and mounts each as the Docker
 * volume `wo-ec2-sim-ebs-<vol-id>` at `/mnt/.sim-ebs/<vol-id>` (root, 0700). When moto shows one
 * attached to the instance, the sim links its device (`/dev/sdf`, and the NVMe name
 * `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<hex>`) to that directory, again after every
 * boot (/dev is fresh each start), and unlinks it on detach (an AttachVolume or DetachVolume
 * through the endpoint, and a task of the sim's own ending, start a reconcile at once: no poll to
 * wait out). The VM image's blkid, mkfs and mount shims (vm-image.ts; the init makes them shell
 * functions for the user-data, as busybox sh runs its own mount otherwise) treat such a device as a
 * disk whose filesystem is `<dir>/fs`; mounting makes the mount point a symlink to it. The Docker
 * volume goes once the volume is gone from moto and no container uses it, or with the sim (stop()
 * without keepContainers). Limits: a volume created
 * after the instance's container cannot be attached (the sim logs it and notes it on the
 * instance); the data lives in the Docker volume, so a sim stopped without keepContainers loses it
 * though moto keeps the volume; with the workspaceDiskBytes knob the volume is a tmpfs of that
 * size, emptied whenever no container runs with it (a stop, a restart).
 *
 * moto facts this relies on (moto 5.2.5): an instance launched WITH a SubnetId gets the next free
 * address of that subnet (172.31.0.4, .5, …); launched WITHOUT one it gets a random 10.x.y.z
 * ("EC2-Classic" behaviour) that lies outside the VPC: the sim cannot place such an instance and
 * says so (log, instanceNotes). moto does not honour ClientToken idempotency (same token twice → two
 * instances). Terminated instances stay listed as `terminated`. AttachVolume answers `attaching` and
 * lists the volume `attached` at once; TerminateInstances detaches (the volume turns `available`);
 * DeleteVolume removes it from every listing.
 */
import net from 'node:net';
import {
  DescribeImagesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeKeyPairsCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  DescribeVpcsCommand,
  EC2Client,
  TerminateInstancesCommand,
  type Filter,
  type Instance,
  type Volume,
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
  /**
   * A disk of this many bytes that fills up: the workspace's data volume becomes a tmpfs of that
   * size (emptied whenever no container runs with it); without a data volume, `/workspace` is one.
   */
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
  /** How often moto is polled (default 500 ms; what goes through the endpoint starts a reconcile at once). */
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
   * boot: PrivateIpAddress … is not in the VPC …" (also logged). Emptied when it boots; after that,
   * what it cannot emulate for it (a volume attached that was not staged at boot). The console
   * (GetConsoleOutput) of an instance without a container stays empty, as on EC2.
   */
  instanceNotes(instanceId: string): string[];
  /**
   * Stops watching and the proxy; removes this sim's containers and its EBS Docker volumes unless
   * keepContainers.
   */
  stop(opts?: { keepContainers?: boolean }): Promise<void>;
}

export const MANAGED_BY_TAG = { key: 'ManagedBy', value: 'workspace-orchestrator' } as const;
export const LABEL_SIM = 'wo.ec2-sim';
export const LABEL_MOTO = 'wo.ec2-sim.moto';
export const LABEL_NETWORK = 'wo.ec2-sim.network';
export const LABEL_INSTANCE = 'wo.instance-id';
export const LABEL_WORKSPACE = 'wo.workspace-id';
/** On an EBS stand-in Docker volume: the moto volume it plays. */
export const LABEL_EBS_VOLUME = 'wo.ebs-volume-id';

/** Where a VM sees its staged EBS volumes, one directory per volume id. */
export const EBS_MOUNT_ROOT = '/mnt/.sim-ebs';
const EBS_VOLUME_PREFIX = 'wo-ec2-sim-ebs-';
/** The `Role` tag of a workspace's data volume (the product's src/backends/ec2/data-volume.ts). */
const DATA_VOLUME_ROLE = 'workspace-data';
/** Every state but deleting/deleted (moto drops a deleted volume; `deleting` is EC2's). */
const VOLUME_STATES = ['creating', 'available', 'in-use', 'error'];
/** The ids the sim puts into Docker names, paths and a shell script: moto's, nothing else. */
const VOLUME_ID = /^vol-[0-9a-f]{1,32}$/;
/** Device names the sim links (EC2's for Linux data volumes); anything else is noted, not linked. */
const DEVICE_NAME = /^\/dev\/(?:sd|xvd)[b-z][a-z]?$/;

export const ebsDockerVolumeName = (volumeId: string): string => `${EBS_VOLUME_PREFIX}${volumeId}`;
/** The NVMe name a Nitro instance shows a volume under (udev's by-id link). */
export const ebsNvmeLink = (volumeId: string): string =>
  `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volumeId.replace('-', '')}`;

const STOP_TIMEOUT_S = 10;
const RETRY_AFTER_MS = 2_000;
/** How often the Docker volumes of deleted EBS volumes are looked for. */
const COLLECT_EVERY_MS = 1_000;

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
  /** The EBS volume ids staged into it (its EBS Docker volume mounts). */
  volumes: string[];
}

/** What the sim linked in a container's /dev, and during which of its boots. */
interface DeviceLinks {
  /** The container's start (Docker event timeNano) the links were made after; 0 if unknown. */
  boot: number;
  /** Sorted `link=volume` pairs. */
  key: string;
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

/**
 * A tar with the files the init reads on first boot (user-data, knobs, key pair keys), and the
 * staged volumes' directories: extracted over their mounts, it makes each volume's root root:root
 * 0700 (Docker creates it 0755).
 */
function instanceFiles(userData: Buffer, info: object, volumeIds: string[]): Promise<Buffer> {
  const pack = tar.pack();
  const mtime = new Date();
  for (const id of volumeIds) {
    const name = `${EBS_MOUNT_ROOT.slice(1)}/${id}`;
    pack.entry({ name, type: 'directory', mode: 0o700, uid: 0, gid: 0, mtime });
  }
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

/** Runs a script as root in a running container; rejects with its output unless it exits 0. */
async function execAsRoot(docker: Dockerode, containerId: string, script: string): Promise<void> {
  const exec = await docker.getContainer(containerId).exec({
    Cmd: ['/bin/sh', '-c', script],
    User: 'root',
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({});
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => void chunks.push(c));
  await new Promise<void>((resolve, reject) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
    stream.once('error', reject);
  });
  const code = (await exec.inspect()).ExitCode;
  if (code !== 0) throw new Error(`exit ${code ?? '?'}: ${demuxLogs(Buffer.concat(chunks)).trim()}`);
}

/**
 * The `start` events of the containers with `labels` logged in [since, until] (seconds): one
 * bounded read of dockerd's event buffer, so a container's reboots are known without inspecting it.
 */
async function containerStarts(
  docker: Dockerode,
  labels: string[],
  since: number,
  until: number,
): Promise<Array<{ id: string; timeNano: number }>> {
  const stream = await docker.getEvents({
    since,
    until,
    filters: { type: ['container'], event: ['start'], label: labels },
  });
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  const starts: Array<{ id: string; timeNano: number }> = [];
  for (const line of Buffer.concat(chunks).toString('utf8').split('\n')) {
    if (!line.trim()) continue;
    const e = JSON.parse(line) as { id?: string; Actor?: { ID?: string }; timeNano?: number };
    const id = e.Actor?.ID ?? e.id;
    if (id && e.timeNano) starts.push({ id, timeNano: e.timeNano });
  }
  return starts;
}

/**
 * A script that leaves exactly `links` (device path → volume id) among a VM's links into
 * EBS_MOUNT_ROOT: the others go, a missing or wrong one is made. Only validated names reach it
 * (DEVICE_NAME, VOLUME_ID), so single quotes are enough.
 */
export function deviceLinkScript(links: Map<string, string>): string {
  const keep = [...links.keys()].map((l) => `'${l}'`).join('|');
  return [
    'set -e',
    'mkdir -p /dev/disk/by-id',
    'for l in /dev/* /dev/disk/by-id/*; do',
    '  [ -L "$l" ] || continue',
    `  case "$(readlink "$l")" in ${EBS_MOUNT_ROOT}/*) ;; *) continue ;; esac`,
    ...(keep ? [`  case "$l" in ${keep}) continue ;; esac`] : []),
    '  rm -f "$l"',
    'done',
    ...[...links].map(([link, volumeId]) => {
      const target = `'${EBS_MOUNT_ROOT}/${volumeId}'`;
      return `[ "$(readlink '${link}' 2>/dev/null)" = ${target} ] || ln -sfn ${target} '${link}'`;
    }),
  ].join('\n');
}

export async function startEc2Sim(opts: StartEc2SimOptions): Promise<Ec2Sim> {
  const docker = opts.docker ?? new Dockerode();
  const log = opts.log ?? (() => undefined);
  const region = opts.region ?? 'us-east-1';
  const pollMs = opts.pollMs ?? 500;
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
      if (!instanceId) continue;
      const volumes = (c.Mounts ?? [])
        .filter((m) => m.Type === 'volume' && m.Name?.startsWith(EBS_VOLUME_PREFIX))
        .map((m) => (m.Name as string).slice(EBS_VOLUME_PREFIX.length));
      byInstance.set(instanceId, { id: c.Id, name: c.Names[0] ?? c.Id, state: c.State, volumes });
    }
    return byInstance;
  };
  const ebsFilter = [...ownerFilter, LABEL_EBS_VOLUME];
  const listEbsVolumes = async (): Promise<Dockerode.VolumeInspectInfo[]> =>
    (await docker.listVolumes({ filters: { label: ebsFilter } })).Volumes ?? [];

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
    // Their EBS stand-ins too (after the containers, which held them).
    const { Volumes } = await docker.listVolumes({
      filters: { label: [`${LABEL_SIM}=1`, LABEL_EBS_VOLUME] },
    });
    for (const v of Volumes ?? []) {
      const owner = v.Labels?.[LABEL_MOTO];
      if (!owner || owner === moto) continue;
      if (!verdict.has(owner)) verdict.set(owner, tcpReachable(owner));
      if (await verdict.get(owner)) continue;
      log(`removing docker volume ${v.Name}: left by a sim whose moto (${owner}) is gone`);
      await docker
        .getVolume(v.Name)
        .remove()
        .catch((err: unknown) => log(`removing docker volume ${v.Name} failed: ${errorText(err)}`));
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
        // What waited for this task (a new VM's device links) is done now, not at the next poll.
        tick();
      });
    t.current = task;
    tasks.add(task);
  };

  // --- EBS data volumes: staged as Docker volumes at creation (see the header) -----------------
  /** Data volumes in moto (ManagedBy, Role=workspace-data, not deleted), narrowed by `extra`. */
  const describeDataVolumes = async (extra: Filter[]): Promise<Volume[]> => {
    const found: Volume[] = [];
    let nextToken: string | undefined;
    do {
      const page = await ec2.send(
        new DescribeVolumesCommand({
          Filters: [
            { Name: `tag:${MANAGED_BY_TAG.key}`, Values: [MANAGED_BY_TAG.value] },
            { Name: 'tag:Role', Values: [DATA_VOLUME_ROLE] },
            { Name: 'status', Values: VOLUME_STATES },
            ...extra,
          ],
          NextToken: nextToken,
        }),
      );
      found.push(...(page.Volumes ?? []).filter((v) => VOLUME_ID.test(v.VolumeId ?? '')));
      nextToken = page.NextToken;
    } while (nextToken);
    return found;
  };

  /** The Docker volume playing `volumeId`, created if missing (a tmpfs of diskBytes if given). */
  const ensureEbsVolume = async (volumeId: string, diskBytes: number | undefined): Promise<string> => {
    const name = ebsDockerVolumeName(volumeId);
    const found = await docker
      .getVolume(name)
      .inspect()
      .catch((err: unknown) => {
        if (statusCode(err) === 404) return null;
        throw err;
      });
    if (found) {
      const labels = found.Labels ?? {};
      if (
        labels[LABEL_MOTO] !== moto ||
        labels[LABEL_NETWORK] !== network.name ||
        labels[LABEL_EBS_VOLUME] !== volumeId
      ) {
        throw new Error(
          `docker volume ${name} exists but is not this sim's (moto ${labels[LABEL_MOTO] ?? '-'}, network ${labels[LABEL_NETWORK] ?? '-'})`,
        );
      }
      return name;
    }
    await docker.createVolume({
      Name: name,
      Labels: {
        [LABEL_SIM]: '1',
        [LABEL_MOTO]: moto,
        [LABEL_NETWORK]: network.name,
        [LABEL_EBS_VOLUME]: volumeId,
      },
      // mode: a tmpfs's root is remade at every mount, so the tar of instanceFiles cannot set it.
      ...(diskBytes
        ? {
            Driver: 'local',
            DriverOpts: { type: 'tmpfs', device: 'tmpfs', o: `size=${diskBytes},mode=0700` },
          }
        : {}),
    });
    log(`${volumeId}: staged as docker volume ${name}${diskBytes ? ` (tmpfs, ${diskBytes} bytes)` : ''}`);
    return name;
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
    // That workspace's volumes only (the tag is checked again here: tenant isolation must not rest
    // on a filter alone). A Docker container cannot gain a mount later: these are all it will have.
    const workspaceId = inst.workspaceId;
    const volumeIds = workspaceId
      ? (await describeDataVolumes([{ Name: 'tag:WorkspaceId', Values: [workspaceId] }]))
          .filter((v) => v.Tags?.some((tag) => tag.Key === 'WorkspaceId' && tag.Value === workspaceId))
          .map((v) => v.VolumeId as string)
          .sort()
      : [];
    const mounts: Dockerode.MountSettings[] = [];
    for (const id of volumeIds) {
      const source = await ensureEbsVolume(id, k.workspaceDiskBytes);
      mounts.push({ Type: 'volume', Source: source, Target: `${EBS_MOUNT_ROOT}/${id}` });
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
        ...(mounts.length > 0 ? { Mounts: mounts } : {}),
        // A small disk without a data volume (older products): /workspace itself. With one, the
        // volume is that disk, and the mount shim needs /workspace to be a plain directory.
        ...(k.workspaceDiskBytes && mounts.length === 0
          ? { Tmpfs: { '/workspace': `size=${k.workspaceDiskBytes}` } }
          : {}),
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
      await container.putArchive(await instanceFiles(userData, info, volumeIds), { path: '/' });
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
      `${inst.id}: booted as ${name} at ${ip} (workspace ${inst.workspaceId ?? '-'}, user-data ${userData.length} bytes` +
        `${volumeIds.length > 0 ? `, volumes ${volumeIds.join(' ')}` : ''})`,
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

  // --- EBS: device links in running VMs, Docker volumes of deleted EBS volumes -----------------
  /** What each container's /dev holds (by container id); dropped with the container. */
  const deviceLinks = new Map<string, DeviceLinks>();
  /** Each container's latest start (Docker event timeNano): /dev is a fresh tmpfs at each. */
  const startedAt = new Map<string, number>();
  let eventsUntil = Date.now() / 1000;
  const linkFailures = new Map<string, string>();
  let collectAt = 0;

  const readStarts = async (): Promise<void> => {
    const until = Date.now() / 1000;
    try {
      // 1 s of overlap, so an event logged as the last read closed is not lost (twice is harmless).
      for (const e of await containerStarts(docker, ownerFilter, eventsUntil - 1, until)) {
        startedAt.set(e.id, Math.max(startedAt.get(e.id) ?? 0, e.timeNano));
      }
      eventsUntil = until;
    } catch (err) {
      deviceLinks.clear(); // starts may go unseen (dockerd restarting): check every VM again
      throw err;
    }
  };

  /**
   * Links the devices of the staged volumes moto shows attached to a running VM, unlinks the
   * detached ones: one exec when that changes or the VM booted since, none otherwise.
   */
  const syncDevices = async (containers: Map<string, OwnedContainer>): Promise<void> => {
    const live = new Set([...containers.values()].map((c) => c.id));
    for (const id of deviceLinks.keys()) if (!live.has(id)) deviceLinks.delete(id);
    for (const id of startedAt.keys()) if (!live.has(id)) startedAt.delete(id);
    for (const id of linkFailures.keys()) if (!live.has(id)) linkFailures.delete(id);
    const staged = [...containers].filter(([, c]) => c.volumes.length > 0);
    if (staged.length === 0) {
      eventsUntil = Date.now() / 1000; // nothing to link: no start to watch either
      return;
    }
    await readStarts();
    // Not one a task is busy with (being stopped, removed, rebooted): the next tick sees it settled.
    const running = staged.filter(
      ([id, c]) => c.state === 'running' && !tracked.get(id)?.busy && !tracked.get(id)?.terminated,
    );
    if (running.length === 0) return;
    const attached = new Map<string, Array<{ volumeId: string; device: string }>>();
    for (const v of await describeDataVolumes([])) {
      for (const a of v.Attachments ?? []) {
        if (!a.InstanceId || (a.State !== 'attached' && a.State !== 'attaching')) continue;
        const list = attached.get(a.InstanceId) ?? [];
        list.push({ volumeId: v.VolumeId as string, device: a.Device ?? '' });
        attached.set(a.InstanceId, list);
      }
    }
    await Promise.all(
      running.map(async ([instanceId, c]) => {
        const links = new Map<string, string>();
        for (const { volumeId, device } of attached.get(instanceId) ?? []) {
          if (!c.volumes.includes(volumeId)) {
            note(
              track(instanceId),
              instanceId,
              `${volumeId} is attached at ${device} but was not staged when ${c.name} was created ` +
                '(a volume must exist before the instance boots): no device appears in the VM',
            );
            continue;
          }
          if (DEVICE_NAME.test(device)) links.set(device, volumeId);
          else {
            note(
              track(instanceId),
              instanceId,
              `${volumeId} is attached at ${JSON.stringify(device)}: the sim links only /dev/sd[b-z] and /dev/xvd[b-z] names (and the NVMe one)`,
            );
          }
          links.set(ebsNvmeLink(volumeId), volumeId);
        }
        const boot = startedAt.get(c.id) ?? 0;
        const key = [...links]
          .map(([l, v]) => `${l}=${v}`)
          .sort()
          .join(' ');
        const done = deviceLinks.get(c.id);
        // A boot the sim has not linked in yet has a fresh /dev: no links.
        if ((done?.boot === boot ? done.key : '') === key) {
          deviceLinks.set(c.id, { boot, key });
          return;
        }
        try {
          await execAsRoot(docker, c.id, deviceLinkScript(links));
        } catch (err) {
          const text = `linking EBS devices in ${c.name} failed: ${errorText(err)}`;
          if (linkFailures.get(c.id) !== text) log(`${instanceId}: ${text} (retrying)`);
          linkFailures.set(c.id, text);
          return;
        }
        deviceLinks.set(c.id, { boot, key });
        linkFailures.delete(c.id);
        log(`${instanceId}: EBS devices in ${c.name}: ${key || 'none'}`);
      }),
    );
  };

  /** Removes the Docker volumes whose EBS volume moto no longer has, once no container uses them. */
  const collectVolumes = async (): Promise<void> => {
    if (Date.now() < collectAt) return;
    collectAt = Date.now() + COLLECT_EVERY_MS;
    const byId = new Map<string, string>();
    for (const v of await listEbsVolumes()) {
      const id = v.Labels?.[LABEL_EBS_VOLUME] ?? '';
      if (VOLUME_ID.test(id)) byId.set(id, v.Name);
    }
    if (byId.size === 0) return;
    const known = new Set<string>();
    let nextToken: string | undefined;
    do {
      const page = await ec2.send(
        new DescribeVolumesCommand({
          Filters: [{ Name: 'volume-id', Values: [...byId.keys()] }],
          NextToken: nextToken,
        }),
      );
      for (const v of page.Volumes ?? []) if (v.VolumeId) known.add(v.VolumeId);
      nextToken = page.NextToken;
    } while (nextToken);
    for (const [id, name] of byId) {
      if (known.has(id)) continue;
      await docker
        .getVolume(name)
        .remove()
        .then(
          () => log(`${id}: removed docker volume ${name} (the volume is gone from moto)`),
          (err: unknown) => {
            // 409: a container still has it (a VM being removed): next time. 404: gone already.
            if (statusCode(err) !== 409 && statusCode(err) !== 404)
              log(`removing docker volume ${name} failed: ${errorText(err)}`);
          },
        );
    }
  };

  let lastEbsError = '';
  const reconcileEbs = async (containers: Map<string, OwnedContainer>): Promise<void> => {
    for (const step of [() => syncDevices(containers), collectVolumes]) {
      await step().catch((err: unknown) => {
        const text = `EBS: ${errorText(err)}`;
        if (text !== lastEbsError) log(text);
        lastEbsError = text;
      });
    }
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
    await reconcileEbs(containers);
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
        else if (/^((Run|Start|Stop|Terminate)Instances|(Attach|Detach)Volume)$/.test(action)) tick();
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
        // Their EBS stand-ins with them (the data goes: see the header).
        const volumes = await listEbsVolumes().catch(() => []);
        await Promise.allSettled(
          volumes.map((v) =>
            docker
              .getVolume(v.Name)
              .remove()
              .then(
                () => log(`removed docker volume ${v.Name} (sim stopped)`),
                (err: unknown) => log(`removing docker volume ${v.Name} failed: ${errorText(err)}`),
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
