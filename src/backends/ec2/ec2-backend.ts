import {
  DescribeAvailabilityZonesCommand,
  DescribeInstancesCommand,
  GetConsoleOutputCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type BlockDeviceMapping,
  type EC2Client,
  type Filter,
  type Instance,
  type _InstanceType,
  type InstanceStateName,
  type Volume,
} from '@aws-sdk/client-ec2';
import ssh2 from 'ssh2';
import {
  BackendError,
  CONSOLE_MAX_BYTES,
  type FileContent,
  type FileListing,
  type FileStream,
  type ManagedResource,
  type ManagedNetwork,
  type ManagedVolume,
  type RemoveOptions,
  type ResourceInfo,
  type ResourceStatus,
  type StartSpec,
  type TerminalSession,
  type TerminalSize,
  type WorkspaceBackend,
  type WorkspaceRoot,
} from '../backend.js';
import { workspacePath } from '../paths.js';
import type { SshKeyPair, SshKeyStore } from '../ssh-keys.js';
import { ec2ErrorCode, isGroupNotFound, isInstanceNotFound, toBackendError } from './errors.js';
import * as files from './files.js';
import { tailText } from '../streams.js';
import type { SshTarget } from './ssh.js';
import * as terminal from './terminal.js';
import {
  clientToken,
  identityOf,
  instanceName,
  instanceTags,
  launchTagSpecifications,
  MANAGED_BY,
  TAG,
  tagValue,
  workspaceFilters,
} from './tags.js';
import { ensureWorkspaceSecurityGroup } from './security-group.js';
import { renderUserData } from './user-data.js';
import { availableVolumes, deleteVolumes, rootDeviceMappings } from './volumes.js';
import {
  attachDataVolume,
  createDataVolume,
  describeVolume,
  findDataVolume,
  isDataVolume,
  nextAttachStep,
  zoneFor,
} from './data-volume.js';

/** Minimal structured logger; a pino Logger fits. */
export interface Ec2BackendLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface Ec2BackendOptions {
  /**
   * Undefined = the zero-value backend: every method rejects with `not_configured`. Configure it
   * with standard retries (see createEc2Client): throttling is retried by the SDK with backoff.
   */
  client?: EC2Client;
  /** Per-generation SSH key pairs and pinned host keys. */
  keys: SshKeyStore;
  /** The AMI (with node and the agent at /opt/agent/agent.mjs), or a function choosing one per runtime. */
  imageId: string | ((runtime: string) => string);
  instanceType: string;
  /** Without it EC2 picks the default subnet (moto then invents a private IP outside it). */
  subnetId?: string;
  securityGroupIds?: string[];
  /**
   * Where the platform connects from (CIDR). With it, and no security groups configured, instances
   * launch into a managed group admitting only this range on SSH and the agent port.
   */
  platformCidr?: string;
  /** SSH login of readFile (the user-data installs the key for root). */
  sshUser?: 'root';
  sshPort?: number;
  /** Port the agent listens on inside the instance; the endpoint is http://<private ip>:<agentPort>. */
  agentPort?: number;
  /** Bound on SSH connect + handshake + authentication. */
  connectTimeoutMs?: number;
  /** How long remove() waits for each instance to reach `terminated` (default 120 s). */
  terminateWaitMs?: number;
  /** How long start()/stop() wait out a transition (`stopping` before a start, `pending` before a stop). */
  transitionWaitMs?: number;
  /** Pause between state polls (default 2 s). */
  pollIntervalMs?: number;
  /** Size of a new workspace's data volume, mounted at /workspace (default 8 GiB). */
  dataVolumeGiB?: number;
  log?: Ec2BackendLog;
}

/** States in which the generation's instance exists (shutting-down and terminated count as gone). */
const LIVE_STATES: InstanceStateName[] = ['pending', 'running', 'stopping', 'stopped'];
/** Everything remove() still has to terminate or wait for. */
const NOT_TERMINATED: InstanceStateName[] = [...LIVE_STATES, 'shutting-down'];

/** EC2 state → backend status: only EC2 saying so proves absence (shutting-down/terminated). */
export function statusOf(state: string | undefined): ResourceStatus {
  switch (state) {
    case 'pending':
    case 'running':
      return 'running';
    case 'stopping':
    case 'stopped':
      return 'stopped';
    case 'shutting-down':
    case 'terminated':
      return 'missing';
    default:
      return 'unknown';
  }
}

const STATE_RANK: Record<string, number> = { running: 0, pending: 1, stopping: 2, stopped: 3 };

/**
 * An ed25519 pair that ssh2 itself can parse back. ssh2's generator strips a leading zero byte of
 * the public key, so about 1 pair in 256 comes out malformed (mscdex/ssh2#1390, #1513): such a pair
 * would pass into user-data and then fail every SSH connection. Generate until both halves parse.
 */
export function generateParsableKeyPair(comment: string): SshKeyPair {
  for (let attempt = 0; attempt < 16; attempt++) {
    const generated = ssh2.utils.generateKeyPairSync('ed25519', { comment });
    const pub = ssh2.utils.parseKey(generated.public);
    const priv = ssh2.utils.parseKey(generated.private);
    if (!(pub instanceof Error) && !(priv instanceof Error)) {
      return { privateKey: generated.private, publicKey: generated.public };
    }
  }
  throw new BackendError('permanent', 'could not generate a parsable ed25519 key pair');
}

/**
 * The one instance of a generation, should EC2 ever hold several (moto ignores ClientToken; an
 * operator could launch a copy): the most alive, then the oldest, then the lowest id — deterministic,
 * so every caller picks the same one.
 */
function canonical(instances: Instance[]): Instance | undefined {
  return [...instances].sort((a, b) => {
    const rank = (STATE_RANK[a.State?.Name ?? ''] ?? 9) - (STATE_RANK[b.State?.Name ?? ''] ?? 9);
    if (rank !== 0) return rank;
    const time = createdAt(a).getTime() - createdAt(b).getTime();
    if (time !== 0) return time;
    return (a.InstanceId ?? '').localeCompare(b.InstanceId ?? '');
  })[0];
}

/**
 * When the instance was created. LaunchTime moves on every stop/start; the primary network
 * interface's attachment time does not, so prefer it.
 */
function createdAt(instance: Instance): Date {
  const eth0 = instance.NetworkInterfaces?.find((n) => n.Attachment?.DeviceIndex === 0);
  return eth0?.Attachment?.AttachTime ?? instance.LaunchTime ?? new Date(0);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Ec2Backend implements WorkspaceBackend {
  readonly kind = 'ec2' as const;
  private readonly client: EC2Client | undefined;
  private readonly keys: SshKeyStore;
  private readonly image: (runtime: string) => string;
  private readonly instanceType: string;
  private readonly subnetId: string | undefined;
  private readonly securityGroupIds: string[] | undefined;
  private readonly platformCidr: string | undefined;
  /** The managed group per subnet (one lookup per process; dropped again when a launch fails). */
  private readonly managedGroups = new Map<string, Promise<string>>();
  /** The Availability Zone per subnet ('' = none configured). */
  private readonly zones = new Map<string, Promise<string>>();
  private readonly sshUser: string;
  private readonly sshPort: number;
  private readonly agentPort: number;
  private readonly connectTimeoutMs: number;
  private readonly terminateWaitMs: number;
  private readonly transitionWaitMs: number;
  private readonly pollIntervalMs: number;
  private readonly dataVolumeGiB: number;
  private readonly log: Ec2BackendLog | undefined;
  /** The root device mapping per image id (one DescribeImages per image; dropped again on failure). */
  private readonly rootMappings = new Map<string, Promise<BlockDeviceMapping[] | null>>();
  /** Concurrent starts of one generation in this process share one attempt (moto ignores ClientToken). */
  private readonly starting = new Map<string, Promise<ResourceInfo>>();
  /** The state lookup in flight per instance (SSH liveness checks of one instance share it). */
  private readonly stateChecks = new Map<string, Promise<string>>();

  constructor(opts: Ec2BackendOptions) {
    this.client = opts.client;
    this.keys = opts.keys;
    const image = opts.imageId;
    this.image = typeof image === 'function' ? image : () => image;
    this.instanceType = opts.instanceType;
    this.subnetId = opts.subnetId;
    this.securityGroupIds = opts.securityGroupIds?.length ? opts.securityGroupIds : undefined;
    this.platformCidr = opts.platformCidr;
    this.sshUser = opts.sshUser ?? 'root';
    this.sshPort = opts.sshPort ?? 22;
    this.agentPort = opts.agentPort ?? 8080;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.terminateWaitMs = opts.terminateWaitMs ?? 120_000;
    this.transitionWaitMs = opts.transitionWaitMs ?? 120_000;
    this.pollIntervalMs = opts.pollIntervalMs ?? 2_000;
    this.dataVolumeGiB = opts.dataVolumeGiB ?? 8;
    this.log = opts.log;
  }

  private requireClient(): EC2Client {
    if (!this.client) throw new BackendError('not_configured', 'no ec2 backend configured');
    return this.client;
  }

  private get c(): EC2Client {
    return this.requireClient();
  }

  // -------------------------------------------------------------------------------------------
  // lookups

  private async describeAll(filters: Filter[], what: string): Promise<Instance[]> {
    const c = this.c;
    const out: Instance[] = [];
    let nextToken: string | undefined;
    try {
      do {
        const page = await c.send(new DescribeInstancesCommand({ Filters: filters, NextToken: nextToken }));
        for (const r of page.Reservations ?? []) out.push(...(r.Instances ?? []));
        nextToken = page.NextToken;
      } while (nextToken);
    } catch (err) {
      throw toBackendError(err, what);
    }
    return out;
  }

  /** The workspace's instances in `states` (one generation, or all), by tag. */
  private instancesOf(
    workspaceId: string,
    generation: number | undefined,
    states: InstanceStateName[],
  ): Promise<Instance[]> {
    const label =
      generation === undefined ? `workspace ${workspaceId}` : instanceName(workspaceId, generation);
    return this.describeAll(
      [...workspaceFilters(workspaceId, generation), { Name: 'instance-state-name', Values: states }],
      `looking up instances of ${label}`,
    );
  }

  private async liveInstance(workspaceId: string, generation: number): Promise<Instance | null> {
    return canonical(await this.instancesOf(workspaceId, generation, LIVE_STATES)) ?? null;
  }

  /** By id; null when EC2 says the id does not exist. */
  private async byId(instanceId: string): Promise<Instance | null> {
    try {
      const res = await this.c.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
      return res.Reservations?.[0]?.Instances?.[0] ?? null;
    } catch (err) {
      if (isInstanceNotFound(err)) return null;
      throw toBackendError(err, `describing instance ${instanceId}`);
    }
  }

  private toInfo(instance: Instance): ResourceInfo {
    const status = statusOf(instance.State?.Name);
    const ip = instance.PrivateIpAddress;
    return {
      instanceId: instance.InstanceId ?? '',
      // Only what EC2 reports, never an address the agent claims.
      endpoint: status === 'running' && ip ? `http://${ip}:${this.agentPort}` : null,
      status,
    };
  }

  // -------------------------------------------------------------------------------------------
  // start

  async start(spec: StartSpec): Promise<ResourceInfo> {
    this.requireClient(); // not_configured before anything else
    const key = `${spec.workspaceId}/${spec.generation}`;
    const inFlight = this.starting.get(key);
    if (inFlight) return inFlight;
    const attempt = this.startOnce(spec).finally(() => this.starting.delete(key));
    this.starting.set(key, attempt);
    return attempt;
  }

  private async startOnce(spec: StartSpec): Promise<ResourceInfo> {
    const name = instanceName(spec.workspaceId, spec.generation);
    // A retried start finds the instance it (or a crashed worker) launched: reuse it and its token.
    const existing = await this.liveInstance(spec.workspaceId, spec.generation);
    if (existing) {
      // A stopped instance boots again without its user-data (that ran on its first boot): a data
      // volume made now would never be formatted or mounted, and the agent would run on an empty
      // /workspace of the root disk. Refused before the instance starts; a new generation (a
      // restart) launches with a new volume.
      let volume: Volume | undefined;
      const state = existing.State?.Name;
      if (state === 'stopped' || state === 'stopping') {
        volume = (await findDataVolume(this.c, spec.workspaceId)) ?? undefined;
        if (!volume)
          throw new BackendError(
            'permanent',
            `${name}: the workspace's data volume is gone (deleted outside the platform), and a ` +
              `stopped instance cannot mount a new one; restart the workspace to boot a new ` +
              `generation on a new, empty volume`,
          );
      }
      return this.withData(spec, existing, await this.ensureRunning(existing, name), volume);
    }

    let token: string;
    try {
      token = clientToken(spec.workspaceId, spec.generation);
    } catch (err) {
      throw new BackendError('permanent', (err as Error).message, { cause: err });
    }
    const placed = spec.placement ?? {};
    const imageId = placed.imageId ?? this.image(spec.runtime);
    const blockDeviceMappings = await this.rootMapping(imageId);
    const instanceType = placed.instanceType ?? this.instanceType;
    const subnetId = placed.subnetId ?? this.subnetId;
    // The data volume first: the instance must launch into its zone, and the user-data names it.
    const zone = await this.zoneOf(subnetId);
    let volume = await findDataVolume(this.c, spec.workspaceId);
    if (volume && volume.AvailabilityZone !== zone) {
      throw new BackendError(
        'permanent',
        `${name}: the workspace's data volume ${volume.VolumeId} is in ${volume.AvailabilityZone}, ` +
          `subnet ${subnetId ?? '(default)'} in ${zone}: an instance can only use a volume of its own zone`,
      );
    }
    volume ??= await createDataVolume(this.c, { ...spec, zone, sizeGiB: this.dataVolumeGiB });
    // The managed group (no group configured) is ours to make again should it be gone.
    const managed = !placed.securityGroupIds?.length && this.securityGroupIds === undefined;
    let securityGroupIds = placed.securityGroupIds?.length
      ? placed.securityGroupIds
      : (this.securityGroupIds ?? (await this.managedGroup(subnetId)));
    const pair = await this.keyPair(spec.workspaceId, spec.generation);
    const bootstrapToken = await spec.mintBootstrapToken();
    let userData: string;
    try {
      userData = renderUserData({
        platformUrl: spec.platformUrl,
        bootstrapToken,
        sshPublicKey: pair.publicKey,
        dataVolumeId: volume.VolumeId ?? '',
      });
    } catch (err) {
      throw new BackendError('permanent', `${name}: ${(err as Error).message}`, { cause: err });
    }

    let launched: Instance | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.c.send(
          new RunInstancesCommand({
            ImageId: imageId,
            InstanceType: instanceType as _InstanceType,
            MinCount: 1,
            MaxCount: 1,
            ClientToken: token,
            UserData: Buffer.from(userData, 'utf8').toString('base64'),
            TagSpecifications: launchTagSpecifications(instanceTags(spec)),
            ...(blockDeviceMappings === null ? {} : { BlockDeviceMappings: blockDeviceMappings }),
            // A subnet implies its zone; without one, EC2 would pick any zone.
            ...(subnetId === undefined ? { Placement: { AvailabilityZone: zone } } : { SubnetId: subnetId }),
            ...(securityGroupIds === undefined ? {} : { SecurityGroupIds: securityGroupIds }),
          }),
        );
        launched = res.Instances?.[0];
        break;
      } catch (err) {
        if (ec2ErrorCode(err) === 'IdempotentParameterMismatch') {
          // The token was used by an earlier attempt whose launch we never saw answered (and which
          // DescribeInstances did not show yet: eventual consistency). Its instance is the one.
          const raced = await this.awaitLaunched(spec.workspaceId, spec.generation);
          if (raced) return this.withData(spec, raced, await this.ensureRunning(raced, name));
          throw new BackendError(
            'transient',
            `${name}: ClientToken ${token} already used; instance not visible yet`,
            {
              cause: err,
            },
          );
        }
        // The cached managed group may be what failed (deleted by hand): look it up again next time.
        this.managedGroups.delete(subnetId ?? '');
        if (managed && attempt === 1 && isGroupNotFound(err)) {
          // Gone since it was cached (deleted by hand, or the region lost it): nothing was launched,
          // so make the group again and launch once more, instead of failing the generation.
          this.log?.warn(
            { workspaceId: spec.workspaceId, generation: spec.generation, securityGroupIds },
            'ec2 managed security group gone: recreating it',
          );
          securityGroupIds = await this.managedGroup(subnetId);
          continue;
        }
        throw toBackendError(err, `launching ${name} from ${imageId}`);
      }
    }
    if (!launched?.InstanceId)
      throw new BackendError('transient', `RunInstances for ${name} returned no instance`);
    const state = launched.State?.Name;
    if (state === 'shutting-down' || state === 'terminated') {
      // AWS answers a reused ClientToken with the instance it launched, even a terminated one.
      throw new BackendError(
        'permanent',
        `${name}: instance ${launched.InstanceId} of this generation is ${state}; provision a new generation`,
      );
    }
    this.log?.info(
      {
        workspaceId: spec.workspaceId,
        generation: spec.generation,
        instanceId: launched.InstanceId,
        imageId,
      },
      'ec2 instance launched',
    );
    return this.withData(spec, launched, this.toInfo(launched), volume);
  }

  /** `info`, once the workspace's data volume is attached to `instance` (see attachData). */
  private async withData(
    spec: StartSpec,
    instance: Instance,
    info: ResourceInfo,
    volume?: Volume,
  ): Promise<ResourceInfo> {
    await this.attachData(spec, instance, volume);
    return info;
  }

  /**
   * Attaches the workspace's data volume to the generation's instance, unless it is already (a
   * retried start, a stop/start). A volume still with the previous generation's instance (being
   * terminated) or an instance still `pending` is waited for; the user-data waits for the device
   * before it starts the agent, so the workspace never boots on an empty /workspace.
   */
  private async attachData(spec: StartSpec, instance: Instance, known?: Volume): Promise<void> {
    const instanceId = instance.InstanceId ?? '';
    const name = instanceName(spec.workspaceId, spec.generation);
    let volume =
      known ??
      (await findDataVolume(this.c, spec.workspaceId)) ??
      // Gone since the launch (deleted by hand) or never made (a crash in between): a new one, where
      // the instance is. The user-data also takes the device by its attachment name.
      (await createDataVolume(this.c, {
        ...spec,
        zone:
          instance.Placement?.AvailabilityZone ??
          (await this.zoneOf(spec.placement?.subnetId ?? this.subnetId)),
        sizeGiB: this.dataVolumeGiB,
      }));
    const volumeId = volume.VolumeId ?? '';
    const deadline = Date.now() + this.transitionWaitMs;
    let pause = 100;
    for (;;) {
      const step = nextAttachStep(volume, instanceId);
      if (step.kind === 'attached') return;
      if (step.kind === 'attach' && (await attachDataVolume(this.c, volumeId, instanceId))) {
        this.log?.info(
          { workspaceId: spec.workspaceId, generation: spec.generation, instanceId, volumeId },
          'ec2 data volume attached',
        );
        return;
      }
      if (Date.now() > deadline) {
        const why = step.kind === 'wait' ? step.why : 'EC2 kept refusing the attachment';
        throw new BackendError(
          'transient',
          `${name}: data volume ${volumeId} not attachable to ${instanceId} after ${this.transitionWaitMs} ms: ${why}`,
        );
      }
      await sleep(pause);
      pause = Math.min(pause * 2, this.pollIntervalMs);
      const fresh = await describeVolume(this.c, volumeId);
      if (!fresh)
        throw new BackendError('transient', `${name}: data volume ${volumeId} vanished while attaching`);
      volume = fresh;
    }
  }

  /** The root volume's DeleteOnTermination mapping for launches from `imageId` (see volumes.ts). */
  private rootMapping(imageId: string): Promise<BlockDeviceMapping[] | null> {
    let mapping = this.rootMappings.get(imageId);
    if (!mapping) {
      mapping = rootDeviceMappings(this.c, imageId);
      this.rootMappings.set(imageId, mapping);
      mapping.catch(() => this.rootMappings.delete(imageId));
    }
    return mapping;
  }

  /** The zone launches into `subnetId` land in (one lookup per subnet; dropped again on failure). */
  private zoneOf(subnetId: string | undefined): Promise<string> {
    const key = subnetId ?? '';
    let zone = this.zones.get(key);
    if (!zone) {
      zone = zoneFor(this.c, subnetId);
      this.zones.set(key, zone);
      zone.catch(() => this.zones.delete(key));
    }
    return zone;
  }

  /** The managed security group for launches into `subnetId`, or undefined without a platform CIDR. */
  private async managedGroup(subnetId: string | undefined): Promise<string[] | undefined> {
    if (!this.platformCidr) return undefined;
    const key = subnetId ?? '';
    let group = this.managedGroups.get(key);
    if (!group) {
      group = ensureWorkspaceSecurityGroup(this.c, subnetId, {
        platformCidr: this.platformCidr,
        sshPort: this.sshPort,
        agentPort: this.agentPort,
      });
      this.managedGroups.set(key, group);
      group.catch(() => this.managedGroups.delete(key));
    }
    return [await group];
  }

  /** The generation's key pair: reused when a previous attempt stored one (it is in that user-data). */
  private async keyPair(workspaceId: string, generation: number): Promise<SshKeyPair> {
    try {
      const existing = await this.keys.get(workspaceId, generation);
      if (existing) return existing;
      const pair = generateParsableKeyPair(instanceName(workspaceId, generation));
      await this.keys.put(workspaceId, generation, pair);
      // The store keeps the first writer: whatever it holds now is the generation's key.
      return (await this.keys.get(workspaceId, generation)) ?? pair;
    } catch (err) {
      if (err instanceof BackendError) throw err;
      throw new BackendError('transient', `ssh key store: ${(err as Error).message}`, { cause: err });
    }
  }

  private async awaitLaunched(workspaceId: string, generation: number): Promise<Instance | null> {
    const deadline = Date.now() + Math.min(this.transitionWaitMs, 30_000);
    for (;;) {
      const found = await this.liveInstance(workspaceId, generation);
      if (found || Date.now() > deadline) return found;
      await sleep(this.pollIntervalMs);
    }
  }

  /**
   * Starts a stopped instance (waiting out `stopping` first); pending/running are returned as they
   * are. After StartInstances the instance is `pending` with the same private IP (a VPC instance
   * keeps it across stop/start), so the answer is built from what we know instead of a re-read that
   * EC2's eventual consistency could still show as `stopped`.
   */
  private async ensureRunning(instance: Instance, name: string): Promise<ResourceInfo> {
    const id = instance.InstanceId ?? '';
    const deadline = Date.now() + this.transitionWaitMs;
    let current: Instance = instance;
    for (;;) {
      const state = current.State?.Name;
      if (state === 'pending' || state === 'running') return this.toInfo(current);
      if (state === 'shutting-down' || state === 'terminated') {
        throw new BackendError(
          'permanent',
          `${name}: instance ${id} is ${state}; provision a new generation`,
        );
      }
      if (state === 'stopped') {
        try {
          const res = await this.c.send(new StartInstancesCommand({ InstanceIds: [id] }));
          const now = res.StartingInstances?.[0]?.CurrentState?.Name ?? 'pending';
          this.log?.info({ instanceId: id, state: now }, 'ec2 instance starting');
          return this.toInfo({ ...current, State: { ...current.State, Name: now } });
        } catch (err) {
          // IncorrectInstanceState: it moved meanwhile (someone else started or stopped it): re-read.
          if (ec2ErrorCode(err) !== 'IncorrectInstanceState')
            throw toBackendError(err, `starting ${name} (${id})`);
        }
      }
      if (Date.now() > deadline) {
        throw new BackendError(
          'transient',
          `${name}: instance ${id} still ${state ?? 'unknown'} after ${this.transitionWaitMs} ms`,
        );
      }
      await sleep(this.pollIntervalMs);
      const fresh = await this.byId(id);
      if (!fresh) throw new BackendError('transient', `${name}: instance ${id} vanished while starting`);
      current = fresh;
    }
  }

  // -------------------------------------------------------------------------------------------
  // stop / remove

  async stop(workspaceId: string, generation: number): Promise<void> {
    const name = instanceName(workspaceId, generation);
    const deadline = Date.now() + this.transitionWaitMs;
    for (;;) {
      const running = (await this.instancesOf(workspaceId, generation, ['pending', 'running']))
        .map((i) => i.InstanceId)
        .filter((id): id is string => !!id);
      if (running.length === 0) return; // stopped, stopping or missing: nothing to do
      try {
        await this.c.send(new StopInstancesCommand({ InstanceIds: running }));
        this.log?.info({ workspaceId, generation, instanceIds: running }, 'ec2 instance stopping');
        return;
      } catch (err) {
        if (isInstanceNotFound(err)) return;
        // A pending instance cannot be stopped yet: wait until it runs, then stop it.
        if (ec2ErrorCode(err) !== 'IncorrectInstanceState' || Date.now() > deadline) {
          throw toBackendError(err, `stopping ${name}`);
        }
      }
      await sleep(this.pollIntervalMs);
    }
  }

  async remove(workspaceId: string, opts: RemoveOptions = {}): Promise<void> {
    const instances = await this.instancesOf(workspaceId, opts.generation, NOT_TERMINATED);
    const ids = instances.map((i) => i.InstanceId).filter((id): id is string => !!id);
    if (ids.length > 0) {
      await this.terminate(ids);
      this.log?.info(
        { workspaceId, generation: opts.generation, instanceIds: ids },
        'ec2 instances terminating',
      );
      await this.awaitTerminated(ids);
    }
    // A root volume its instance left behind is that generation's, never data a later one uses:
    // it goes with its generation (or the workspace), whatever `volumes` says. The data volume
    // (no generation tag) goes only with the workspace and its volumes.
    const whole = opts.generation === undefined;
    if (whole && opts.volumes) await this.awaitDataDetached(workspaceId);
    await this.deleteLeftVolumes(
      workspaceFilters(workspaceId, opts.generation),
      whole ? `workspace ${workspaceId}` : instanceName(workspaceId, opts.generation!),
      { keepData: !(whole && opts.volumes) },
    );
    try {
      // The keys of what is gone: the generation's pair (or all, with the workspace), and the
      // host keys pinned for its instances.
      await this.keys.removeHostKeys(ids);
      if (opts.generation !== undefined) await this.keys.removeGeneration(workspaceId, opts.generation);
    } catch (err) {
      throw new BackendError(
        'transient',
        `forgetting ssh keys of ${workspaceId}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    if (opts.generation === undefined && opts.volumes) {
      try {
        await this.keys.removeAll(workspaceId);
      } catch (err) {
        throw new BackendError(
          'transient',
          `forgetting ssh keys of ${workspaceId}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
    }
  }

  /**
   * Waits until the workspace's data volume is attached to nothing (its instances are terminated:
   * EC2 detaches it shortly after), so the delete that follows finds it `available`.
   */
  private async awaitDataDetached(workspaceId: string): Promise<void> {
    const deadline = Date.now() + this.terminateWaitMs;
    let pause = 100;
    for (;;) {
      const volume = await findDataVolume(this.c, workspaceId);
      if (!volume) return;
      const step = nextAttachStep(volume, '');
      if (step.kind !== 'wait') return;
      if (Date.now() > deadline) {
        throw new BackendError(
          'transient',
          `data volume ${volume.VolumeId} of ${workspaceId} still ${step.why} after ${this.terminateWaitMs} ms`,
        );
      }
      await sleep(pause);
      pause = Math.min(pause * 2, this.pollIntervalMs);
    }
  }

  private async terminate(ids: string[]): Promise<void> {
    try {
      await this.c.send(new TerminateInstancesCommand({ InstanceIds: ids }));
    } catch (err) {
      if (!isInstanceNotFound(err)) throw toBackendError(err, `terminating ${ids.join(', ')}`);
      // One unknown id fails the whole call: go one by one, an unknown one is already gone.
      for (const id of ids) {
        try {
          await this.c.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
        } catch (inner) {
          if (!isInstanceNotFound(inner)) throw toBackendError(inner, `terminating ${id}`);
        }
      }
    }
  }

  private async awaitTerminated(ids: string[]): Promise<void> {
    const deadline = Date.now() + this.terminateWaitMs;
    let pending = ids;
    for (;;) {
      const still: string[] = [];
      for (const id of pending) {
        const instance = await this.byId(id);
        if (instance && instance.State?.Name !== 'terminated') still.push(id);
      }
      if (still.length === 0) return;
      if (Date.now() > deadline) {
        throw new BackendError(
          'transient',
          `instances ${still.join(', ')} not terminated after ${this.terminateWaitMs} ms`,
        );
      }
      pending = still;
      await sleep(this.pollIntervalMs);
    }
  }

  // -------------------------------------------------------------------------------------------
  // reads

  async status(workspaceId: string, generation: number): Promise<ResourceStatus> {
    this.requireClient();
    try {
      const instance = await this.liveInstance(workspaceId, generation);
      return instance ? statusOf(instance.State?.Name) : 'missing';
    } catch {
      // Throttling, a 5xx, a refused connection: none of them proves the instance is gone.
      return 'unknown';
    }
  }

  async describe(workspaceId: string, generation: number): Promise<ResourceInfo | null> {
    const instance = await this.liveInstance(workspaceId, generation);
    return instance ? this.toInfo(instance) : null;
  }

  async listManaged(): Promise<ManagedResource[]> {
    const instances = await this.describeAll(
      [
        { Name: `tag:${TAG.managedBy}`, Values: [MANAGED_BY] },
        { Name: 'instance-state-name', Values: LIVE_STATES },
      ],
      'listing managed instances',
    );
    const out: ManagedResource[] = [];
    for (const instance of instances) {
      const identity = identityOf(instance);
      if (!instance.InstanceId || !identity) continue;
      out.push({
        instanceId: instance.InstanceId,
        ...identity,
        status: statusOf(instance.State?.Name),
        createdAt: createdAt(instance),
      });
    }
    return out;
  }

  /**
   * Deletes the managed volumes matching `filters` that nothing uses (`available`); their ids.
   * `keepData` leaves a workspace's data volume (only its root volumes go).
   */
  private async deleteLeftVolumes(
    filters: Filter[],
    label: string,
    opts: { keepData?: boolean } = {},
  ): Promise<string[]> {
    const left = await availableVolumes(this.c, filters, `listing volumes left of ${label}`);
    const ids = left
      .filter((v) => !(opts.keepData && isDataVolume(v)))
      .map((v) => v.VolumeId)
      .filter((id): id is string => !!id);
    if (ids.length === 0) return [];
    const deleted = await deleteVolumes(this.c, ids);
    this.log?.info({ volumeIds: deleted, of: label }, 'ec2 volumes left by terminated instances deleted');
    return deleted;
  }

  /**
   * Volumes left `available` (attached to nothing) with our tags: root volumes leaked by an
   * instance terminated without DeleteOnTermination (judged with their generation), and data
   * volumes (judged with their workspace: kept while it lives). Attached ones are not listed.
   */
  async listManagedVolumes(): Promise<ManagedVolume[]> {
    const volumes = await availableVolumes(
      this.c,
      [{ Name: `tag:${TAG.managedBy}`, Values: [MANAGED_BY] }],
      'listing managed volumes',
    );
    return volumes.flatMap((v): ManagedVolume[] => {
      const workspaceId = tagValue(v, TAG.workspaceId);
      if (v.VolumeId && workspaceId && isDataVolume(v)) {
        const orgId = tagValue(v, TAG.orgId) ?? '';
        return [{ name: v.VolumeId, workspaceId, orgId, createdAt: v.CreateTime ?? new Date() }];
      }
      const identity = identityOf(v);
      if (!v.VolumeId || !identity) return [];
      // Unknown age reads as new: the sweep then waits rather than removing on a guess.
      return [{ name: v.VolumeId, ...identity, createdAt: v.CreateTime ?? new Date() }];
    });
  }

  async listManagedNetworks(): Promise<ManagedNetwork[]> {
    // Instances share the VPC's one workspace security group: nothing per org (as above for the client).
    void this.c;
    return [];
  }

  async removeUnusedOrgNetwork(): Promise<boolean> {
    void this.c;
    return false;
  }

  async removeOrg(orgId: string): Promise<string[]> {
    const instances = await this.describeAll(
      [
        { Name: `tag:${TAG.managedBy}`, Values: [MANAGED_BY] },
        { Name: `tag:${TAG.orgId}`, Values: [orgId] },
        { Name: 'instance-state-name', Values: NOT_TERMINATED },
      ],
      `listing instances of org ${orgId}`,
    );
    const ids = instances.map((i) => i.InstanceId).filter((id): id is string => !!id);
    if (ids.length > 0) {
      await this.terminate(ids);
      this.log?.info({ orgId, instanceIds: ids }, 'ec2 instances of a deleted org terminating');
      await this.awaitTerminated(ids);
    }
    const volumeIds = await this.deleteLeftVolumes(
      [
        { Name: `tag:${TAG.managedBy}`, Values: [MANAGED_BY] },
        { Name: `tag:${TAG.orgId}`, Values: [orgId] },
      ],
      `org ${orgId}`,
    );
    try {
      await this.keys.removeHostKeys(ids);
    } catch (err) {
      throw new BackendError('transient', `forgetting host keys of org ${orgId}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const workspaceIds = new Set(instances.map((i) => tagValue(i, TAG.workspaceId)).filter((w) => !!w));
    for (const workspaceId of workspaceIds) {
      try {
        await this.keys.removeAll(workspaceId!);
      } catch (err) {
        throw new BackendError(
          'transient',
          `forgetting ssh keys of ${workspaceId}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
    }
    return [...ids, ...volumeIds];
  }

  async bootLog(workspaceId: string, generation: number, maxBytes = CONSOLE_MAX_BYTES): Promise<string> {
    // A terminated instance still has console output for a while: prefer a live one, else any.
    const all = await this.instancesOf(workspaceId, generation, [...NOT_TERMINATED, 'terminated']);
    const instance =
      canonical(all.filter((i) => LIVE_STATES.includes(i.State?.Name as InstanceStateName))) ?? all[0];
    if (!instance?.InstanceId) return '';
    const id = instance.InstanceId;
    const fetch = async (latest: boolean): Promise<string> => {
      const res = await this.c.send(
        new GetConsoleOutputCommand({ InstanceId: id, ...(latest ? { Latest: true } : {}) }),
      );
      // GetConsoleOutput is bounded (64 KB) already; the cap applies all the same.
      return res.Output ? tailText(Buffer.from(res.Output, 'base64').toString('utf8'), maxBytes) : '';
    };
    try {
      try {
        return await fetch(true);
      } catch (err) {
        // Latest=true is Nitro-only; older instance families refuse it.
        const code = ec2ErrorCode(err);
        if (code === 'UnsupportedOperation' || code?.startsWith('InvalidParameter'))
          return await fetch(false);
        throw err;
      }
    } catch (err) {
      if (isInstanceNotFound(err)) return '';
      throw toBackendError(err, `reading console output of ${id}`);
    }
  }

  /**
   * Where and how to reach a running generation over SSH. Files and terminal share it; an instance
   * that is not running, or gone, answers `not_running` (files are reachable only while it runs).
   */
  private async sshTarget(workspaceId: string, generation: number): Promise<SshTarget> {
    this.requireClient();
    const name = instanceName(workspaceId, generation);
    const instance = await this.liveInstance(workspaceId, generation);
    if (!instance?.InstanceId) throw new BackendError('not_running', `${name} not found`);
    const state = instance.State?.Name;
    if (state !== 'running' || !instance.PrivateIpAddress) {
      throw new BackendError(
        'not_running',
        `${name} is ${state ?? 'unknown'}: files are readable over SSH only while it runs`,
      );
    }
    const pair = await this.keys.get(workspaceId, generation).catch((err: unknown) => {
      throw new BackendError('transient', `ssh key store: ${(err as Error).message}`, { cause: err });
    });
    if (!pair) throw new BackendError('permanent', `no SSH key recorded for ${name}`);
    return {
      instanceId: instance.InstanceId,
      host: instance.PrivateIpAddress,
      port: this.sshPort,
      username: this.sshUser,
      privateKey: pair.privateKey,
      hostKeys: this.keys,
      connectTimeoutMs: this.connectTimeoutMs,
      stillRunning: () => this.stillRunning(instance.InstanceId!, name),
    };
  }

  /**
   * SSH's liveness check (SshTarget.stillRunning): `not_running` once EC2 says the instance left
   * `running` (a stop, a terminate: its workspace restarted, stopped or deleted) or no longer knows
   * it. One DescribeInstances per instance at a time, whoever asks.
   */
  private async stillRunning(instanceId: string, name: string): Promise<void> {
    let check = this.stateChecks.get(instanceId);
    if (!check) {
      check = this.byId(instanceId)
        .then((i) => (i ? (i.State?.Name ?? 'running') : 'gone')) // no state named: no verdict
        .finally(() => this.stateChecks.delete(instanceId));
      this.stateChecks.set(instanceId, check);
    }
    const state = await check;
    if (state !== 'running') {
      throw new BackendError('not_running', `${name} is ${state}: it left running during the call`);
    }
  }

  async openFile(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
  ): Promise<FileStream> {
    this.requireClient();
    // Lexical rules first: a bad path is refused without touching EC2 or SSH.
    workspacePath(root, path);
    // Walked one directory at a time on the instance, like listFiles/writeFile/deleteFile.
    return files.openFile(await this.sshTarget(workspaceId, generation), root, path);
  }

  async readFile(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
    maxBytes?: number,
  ): Promise<Buffer> {
    this.requireClient();
    workspacePath(root, path);
    return files.readFile(await this.sshTarget(workspaceId, generation), root, path, maxBytes);
  }

  async listFiles(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
    depth: number,
    maxEntries?: number,
  ): Promise<FileListing> {
    this.requireClient();
    return files.listFiles(await this.sshTarget(workspaceId, generation), root, path, depth, maxEntries);
  }

  async writeFile(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
    content: FileContent,
  ): Promise<void> {
    this.requireClient();
    workspacePath(root, path);
    return files.writeFile(await this.sshTarget(workspaceId, generation), root, path, content);
  }

  async writeFiles(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    batch: ReadonlyArray<{ path: string; content: Buffer }>,
  ): Promise<void> {
    this.requireClient();
    for (const f of batch) workspacePath(root, f.path);
    return files.writeFiles(await this.sshTarget(workspaceId, generation), root, batch);
  }

  async deleteFile(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
  ): Promise<void> {
    this.requireClient();
    workspacePath(root, path);
    return files.deleteFile(await this.sshTarget(workspaceId, generation), root, path);
  }

  async deleteFiles(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    paths: readonly string[],
  ): Promise<void> {
    this.requireClient();
    for (const p of paths) workspacePath(root, p);
    return files.deleteFiles(await this.sshTarget(workspaceId, generation), root, paths);
  }

  async removeTree(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
  ): Promise<void> {
    this.requireClient();
    workspacePath(root, path);
    return files.removeTree(await this.sshTarget(workspaceId, generation), root, path);
  }

  async openTerminal(workspaceId: string, generation: number, size: TerminalSize): Promise<TerminalSession> {
    this.requireClient();
    return terminal.openTerminal(await this.sshTarget(workspaceId, generation), size);
  }

  async killTerminalSession(): Promise<void> {
    // sshd hangs up the PTY (SIGHUP to the shell's group) when the SSH connection drops, which a
    // dead API process's connection did: nothing of the session is left to kill.
    this.requireClient();
  }

  async ping(): Promise<void> {
    try {
      await this.c.send(new DescribeAvailabilityZonesCommand({}));
    } catch (err) {
      throw toBackendError(err, 'pinging the EC2 API');
    }
  }
}
