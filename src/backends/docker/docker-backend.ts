import type Dockerode from 'dockerode';
import * as files from './files.js';
import * as terminal from './terminal.js';
import {
  BackendError,
  deletedIfGone,
  CONSOLE_MAX_BYTES,
  type FileContent,
  type FileListing,
  type FileStream,
  type TerminalSession,
  type TerminalSize,
  type ManagedResource,
  type ManagedNetwork,
  type ManagedVolume,
  type RemoveOptions,
  type ResourceInfo,
  type ResourceLimits,
  type ResourceStatus,
  type StartSpec,
  type WorkspaceBackend,
  type WorkspaceRoot,
} from '../backend.js';
import { workspacePath } from '../paths.js';
import { tailLogs } from './archive.js';
import {
  daemonMessage,
  isConflict,
  isNotFound,
  isNotModified,
  setDaemonCallTimeout,
  toBackendError,
} from './errors.js';
import { containerName, LABEL, MANAGED_BY, volumeNames, workspaceLabels } from './names.js';
import {
  DEFAULT_ORG_NETWORK_POOL,
  ensureOrgNetwork,
  iccIsOff,
  orgNetworkName,
  removeOrgNetworkIfUnused,
  type OrgNetworkPool,
  type WorkspaceNetworking,
} from './network.js';

export interface DockerBackendOptions {
  /** Undefined = the zero-value backend: every method rejects with `not_configured`. */
  docker?: Dockerode;
  /** The runtime image, or a function choosing one per runtime. */
  image: string | ((runtime: string) => string);
  /**
   * Where workspaces are placed (network.ts › WorkspaceNetworking). Default `auto`: the daemon's
   * default bridge when its inter-container communication is off, else a bridge per org.
   */
  networking?: WorkspaceNetworking;
  /** Where per-org subnets come from (default 10.213.0.0/16 in /24s). */
  orgNetworkPool?: OrgNetworkPool;
  /** Limits of a workspace whose template sets none (default 2048 MB, 1 CPU, 1024 pids). */
  defaultLimits?: ResourceLimits;
  /** Default lets the agent reach a platform on the host as host.docker.internal. */
  extraHosts?: string[];
  /** The port the image's agent listens on inside the container. */
  agentPort?: number;
  /** Grace period of `stop` before the daemon kills the container. */
  stopTimeoutSeconds?: number;
  /** Bound on each daemon call used by status/describe/list, so a wedged daemon reads as unknown. */
  callTimeoutMs?: number;
}

type InspectInfo = Dockerode.ContainerInspectInfo;

/**
 * Where a new container goes (DockerBackend.placement): the shared network; the org's own bridge
 * (`iccOnShared`: because `auto` found the default bridge's ICC on); or nowhere, the named shared
 * network being missing or open.
 */
type Placement =
  | { on: 'shared'; network: string }
  | { on: 'per-org'; iccOnShared: boolean }
  | { on: 'refused'; network: string; missing: boolean };

export const DEFAULT_LIMITS: Required<ResourceLimits> = { memoryMb: 2048, cpus: 1, pids: 1024 };

/**
 * Capabilities a workspace keeps (everything else is dropped): root in the container may still
 * own, chown and signal its own files and processes, and switch users for tools that do. Gone are
 * raw sockets (spoofing, ARP games on the bridge), mknod, chroot, binding low ports, audit writes
 * and capability tinkering; `no-new-privileges` keeps setuid binaries from gaining any back.
 */
export const WORKSPACE_CAPABILITIES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
];

/** Lines of log asked of the daemon for a boot log (then cut to the last bytes as read). */
const LOG_TAIL_LINES = 5000;

/**
 * Container state → backend status. `restarting` (only a container given a restart policy by
 * hand, or created before the policy was `no`) and `paused` still hold the generation's resource,
 * so they count as running; `removing` as stopped.
 */
function statusOf(state: string | undefined): ResourceStatus {
  switch (state) {
    case 'running':
    case 'restarting':
    case 'paused':
      return 'running';
    case 'created':
    case 'exited':
    case 'dead':
    case 'removing':
      return 'stopped';
    default:
      return 'unknown';
  }
}

export class DockerBackend implements WorkspaceBackend {
  readonly kind = 'docker' as const;
  private readonly docker: Dockerode | undefined;
  private readonly image: (runtime: string) => string;
  private readonly networking: WorkspaceNetworking;
  private readonly orgNetworkPool: OrgNetworkPool;
  private readonly ensuringNetwork = new Map<string, Promise<string>>();
  private readonly defaultLimits: Required<ResourceLimits>;
  private readonly extraHosts: string[];
  private readonly portKey: string;
  private readonly stopTimeoutSeconds: number;
  private readonly callTimeoutMs: number;

  constructor(opts: DockerBackendOptions) {
    this.docker = opts.docker;
    const image = opts.image;
    this.image = typeof image === 'function' ? image : () => image;
    this.networking = opts.networking ?? 'auto';
    this.orgNetworkPool = opts.orgNetworkPool ?? DEFAULT_ORG_NETWORK_POOL;
    this.defaultLimits = { ...DEFAULT_LIMITS, ...opts.defaultLimits };
    this.extraHosts = opts.extraHosts ?? ['host.docker.internal:host-gateway'];
    this.portKey = `${opts.agentPort ?? 8080}/tcp`;
    this.stopTimeoutSeconds = opts.stopTimeoutSeconds ?? 10;
    this.callTimeoutMs = opts.callTimeoutMs ?? 15_000;
    // The files and terminal calls (files.ts, terminal.ts) take their deadline from the client.
    if (this.docker) setDaemonCallTimeout(this.docker, this.callTimeoutMs);
  }

  private get d(): Dockerode {
    if (!this.docker) throw new BackendError('not_configured', 'no docker backend configured');
    return this.docker;
  }

  private signal(): AbortSignal {
    return AbortSignal.timeout(this.callTimeoutMs);
  }

  /** Inspect by name or id; null when the container does not exist, typed error otherwise. */
  private async inspect(ref: string): Promise<InspectInfo | null> {
    try {
      return await this.d.getContainer(ref).inspect({ abortSignal: this.signal() });
    } catch (err) {
      if (isNotFound(err)) return null;
      throw toBackendError(err, `inspecting container ${ref}`);
    }
  }

  private toInfo(info: InspectInfo): ResourceInfo {
    const status = statusOf(info.State?.Status);
    const binding = info.NetworkSettings?.Ports?.[this.portKey]?.[0];
    let endpoint: string | null = null;
    if (status === 'running' && binding?.HostPort) {
      const host =
        !binding.HostIp || binding.HostIp === '0.0.0.0' || binding.HostIp === '::'
          ? '127.0.0.1'
          : binding.HostIp;
      endpoint = `http://${host}:${binding.HostPort}`;
    }
    return { instanceId: info.Id, endpoint, status };
  }

  /** The shared network this placement puts workspaces on, if any. */
  private get sharedNetwork(): string | undefined {
    if (this.networking === 'per-org') return undefined;
    return this.networking === 'auto' ? 'bridge' : this.networking.shared;
  }

  /**
   * Where a new container goes now: a shared network only while its ICC is off, read from the
   * daemon at each call (fail closed: a daemon restarted without `--icc=false` sends `auto` back to
   * per-org bridges, and a named shared network is refused).
   */
  private async placement(): Promise<Placement> {
    const shared = this.sharedNetwork;
    if (shared === undefined) return { on: 'per-org', iccOnShared: false };
    const off = await iccIsOff(this.d, shared);
    if (off) return { on: 'shared', network: shared };
    if (this.networking === 'auto') return { on: 'per-org', iccOnShared: true };
    return { on: 'refused', network: shared, missing: off === null };
  }

  /** The network (name or id) a new container of `orgId` joins (see placement). */
  private async placementFor(orgId: string): Promise<string> {
    const p = await this.placement();
    if (p.on === 'shared') return p.network;
    if (p.on === 'per-org') return this.networkFor(orgId);
    throw new BackendError(
      'permanent',
      p.missing
        ? `network ${p.network} (DOCKER_WORKSPACE_NETWORK) does not exist`
        : `network ${p.network} (DOCKER_WORKSPACE_NETWORK) lets its containers reach each other: ` +
            'create it with -o com.docker.network.bridge.enable_icc=false (for "bridge": start dockerd with --icc=false)',
    );
  }

  /**
   * Where a workspace started now would go, for the worker's start-up log: the setting and what
   * the daemon says of the shared network's ICC right now (each start reads it again).
   */
  async describePlacement(): Promise<{ setting: string; placement: string }> {
    const setting = typeof this.networking === 'string' ? this.networking : this.networking.shared;
    const p = await this.placement();
    if (p.on === 'shared') return { setting, placement: `shared network ${p.network} (ICC off)` };
    if (p.on === 'per-org') {
      const why = p.iccOnShared ? " (the default bridge's ICC is on)" : '';
      return { setting, placement: `a bridge per org${why}` };
    }
    return {
      setting,
      placement: `none: network ${p.network} ${p.missing ? 'does not exist' : 'has ICC on'}`,
    };
  }

  /** The org's own bridge (name or id), created when missing. */
  private async networkFor(orgId: string): Promise<string> {
    if (!orgId) throw new BackendError('permanent', 'a workspace needs an org to be placed on its network');
    // Concurrent starts of one org in this process share one ensure (fewer racing creates).
    let pending = this.ensuringNetwork.get(orgId);
    if (!pending) {
      pending = ensureOrgNetwork(this.d, orgId, this.orgNetworkPool).finally(() =>
        this.ensuringNetwork.delete(orgId),
      );
      this.ensuringNetwork.set(orgId, pending);
    }
    return pending;
  }

  /** Starts the container unless it already runs, then re-reads it (the host port is assigned at start). */
  private async ensureRunning(info: InspectInfo): Promise<ResourceInfo> {
    if (info.State?.Running || info.State?.Restarting) return this.toInfo(info);
    const mode = info.HostConfig?.NetworkMode;
    const onShared = mode === 'default' ? 'bridge' : mode;
    if (onShared !== undefined && (onShared === 'bridge' || onShared === this.sharedNetwork)) {
      // Placed on a shared network while its ICC was off: started only if it still is (a daemon
      // restarted without --icc=false, a network made again with ICC on). Otherwise it goes, and
      // the retried start places the generation anew (its volumes, /configs and /workspace, stay).
      if (!(await iccIsOff(this.d, onShared))) {
        await this.removeContainer(info.Id);
        throw new BackendError(
          'transient',
          `container ${info.Name} is on network ${onShared}, whose inter-container communication is no longer off; recreating it`,
        );
      }
    } else {
      // Its org network may have been removed meanwhile (the org's last other workspace was deleted).
      const orgId = info.Config?.Labels?.[LABEL.orgId];
      if (orgId) await this.networkFor(orgId);
    }
    try {
      await this.d.getContainer(info.Id).start();
    } catch (err) {
      // 304: a concurrent start won the race; the container is running, which is what we want.
      if (isNotModified(err)) {
        // fall through to the re-read
      } else if (isNotFound(err) && /network/i.test(daemonMessage(err))) {
        // Created on an org network that was removed and made again since (its id changed): this
        // container can never start. Remove it; the retried start creates it on the new network
        // (the volumes, and so /configs and /workspace, stay).
        await this.removeContainer(info.Id);
        throw new BackendError('transient', `container ${info.Name} lost its network; recreating it`, {
          cause: err,
        });
      } else throw toBackendError(err, `starting container ${info.Name}`);
    }
    const fresh = await this.inspect(info.Id);
    if (!fresh) throw new BackendError('transient', `container ${info.Name} vanished while starting`);
    return this.toInfo(fresh);
  }

  /** Named volumes, created explicitly so they carry our labels (an implicit create would not). */
  private async ensureVolumes(spec: StartSpec): Promise<void> {
    const labels = workspaceLabels({ workspaceId: spec.workspaceId, orgId: spec.orgId });
    await Promise.all(
      Object.values(volumeNames(spec.workspaceId)).map(async (name) => {
        try {
          // Creating an existing named volume is a no-op that returns it: safe to repeat.
          await this.d.createVolume({ Name: name, Labels: labels });
        } catch (err) {
          throw toBackendError(err, `creating volume ${name}`);
        }
      }),
    );
  }

  /**
   * The daemon's create options for a generation's container: the product's container spec
   * (public so that bench/docker-spec.ts times each of its parts against a bare create + start).
   */
  containerCreateOptions(
    spec: StartSpec,
    image: string,
    bootstrapToken: string,
    network: string,
  ): Dockerode.ContainerCreateOptions {
    const volumes = volumeNames(spec.workspaceId);
    // What the daemon would create a missing volume with: the defaults (local driver, the image's
    // files copied in), and our labels.
    const VolumeOptions = {
      Labels: workspaceLabels({ workspaceId: spec.workspaceId, orgId: spec.orgId }),
      NoCopy: false,
      DriverConfig: { Name: 'local', Options: {} },
    };
    const limits = { ...this.defaultLimits, ...spec.limits };
    const memory = Math.round(limits.memoryMb * 1024 * 1024);
    return {
      name: containerName(spec.workspaceId, spec.generation),
      Image: image,
      // The only configuration the workspace gets: everything else comes from the bootstrap fetch.
      Env: [`WO_PLATFORM_URL=${spec.platformUrl}`, `WO_BOOTSTRAP_TOKEN=${bootstrapToken}`],
      Labels: workspaceLabels(spec),
      ExposedPorts: { [this.portKey]: {} },
      HostConfig: {
        PortBindings: { [this.portKey]: [{ HostIp: '127.0.0.1', HostPort: '' }] },
        // The volumes exist (ensureVolumes); should one be removed meanwhile, the daemon creates it
        // again at create, and with these labels it is still ours for the sweeps to find.
        Mounts: [
          {
            Type: 'volume',
            Source: volumes.configs,
            Target: '/configs',
            VolumeOptions,
          },
          {
            Type: 'volume',
            Source: volumes.workspace,
            Target: '/workspace',
            VolumeOptions,
          },
        ],
        // No restart by the daemon: the entity owns every restart. A container whose agent died (a
        // crash, the OOM killer, a daemon restart) stays exited, so the health sweep reads it as
        // stopped → `offline`, and the restart policy boots a new generation, counted against
        // AUTO_RESTART_MAX, as on EC2. `unless-stopped` restarted it in place at the same
        // generation, behind the entity's back, so a crash loop was never seen nor capped.
        RestartPolicy: { Name: 'no' },
        // The daemon's init (tini) as PID 1: it reaps the orphans a terminal's background jobs
        // leave (the agent as PID 1 did not: zombies piled up), and forwards a stop's SIGTERM to the
        // agent, which then exits by default even before its own handler is in place.
        Init: true,
        ExtraHosts: this.extraHosts,
        NetworkMode: network,
        // Memory without extra swap, CPU share and a process cap: one workspace cannot starve the host.
        Memory: memory,
        MemorySwap: memory,
        NanoCpus: Math.round(limits.cpus * 1e9),
        PidsLimit: limits.pids,
        SecurityOpt: ['no-new-privileges:true'],
        CapDrop: ['ALL'],
        CapAdd: WORKSPACE_CAPABILITIES,
      },
    };
  }

  /**
   * The daemon reserves a name before the container is registered: while the winner of a create
   * race is still creating, inspect by name answers 404. Poll briefly until it shows up.
   */
  private async awaitRacedContainer(name: string): Promise<InspectInfo | null> {
    const deadline = Date.now() + Math.min(this.callTimeoutMs, 10_000);
    for (;;) {
      const info = await this.inspect(name);
      if (info || Date.now() > deadline) return info;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async start(spec: StartSpec): Promise<ResourceInfo> {
    const name = containerName(spec.workspaceId, spec.generation);
    // Independent of each other, so at once: the look for an existing container (then the token, a
    // DB insert, only when there is none), the volumes and the placement. The last two are
    // idempotent: ensured for a container that exists already, they cost only the calls. A failure
    // of one leaves the others done, which a retried start reuses (an unused token only expires).
    const looked = this.inspect(name);
    const placing = this.placementFor(spec.orgId);
    // Awaited only for a new container: an existing one keeps its network (ensureRunning checks it).
    placing.catch(() => undefined);
    const [existing, token] = await Promise.all([
      looked,
      looked.then((found) => (found ? null : spec.mintBootstrapToken())),
      this.ensureVolumes(spec),
    ]);
    // A retried start finds the container it (or a crashed worker) created: reuse it and its token.
    if (existing) return this.ensureRunning(existing);
    if (token === null) throw new Error('unreachable: no container and no token');
    const network = await placing;

    const image = this.image(spec.runtime);
    let id: string;
    try {
      id = (await this.d.createContainer(this.containerCreateOptions(spec, image, token, network))).id;
    } catch (err) {
      if (isConflict(err)) {
        // A concurrent start created it first: the name makes that the one container of this generation.
        const raced = await this.awaitRacedContainer(name);
        if (raced) return this.ensureRunning(raced);
        throw new BackendError(
          'transient',
          `container ${name} conflicted but never appeared: ${daemonMessage(err)}`,
          {
            cause: err,
          },
        );
      }
      if (isNotFound(err)) {
        const msg = daemonMessage(err);
        // The org network vanished between ensure and create (its last other workspace was
        // deleted): a retry recreates it.
        if (/network/i.test(msg)) throw new BackendError('transient', msg, { cause: err });
        throw new BackendError('permanent', /image/i.test(msg) ? `image ${image} not found` : msg, {
          cause: err,
        });
      }
      throw toBackendError(err, `creating container ${name}`);
    }
    return this.startCreated(id, name);
  }

  /**
   * Starts a container this call just created on a network it just ensured: no look at it first
   * (ensureRunning's inspect and network check), one inspect after (the host port is assigned at
   * start). Anything unusual goes through ensureRunning as before.
   */
  private async startCreated(id: string, name: string): Promise<ResourceInfo> {
    try {
      await this.d.getContainer(id).start();
    } catch (err) {
      const info = await this.inspect(id);
      if (!info)
        throw new BackendError('transient', `container ${name} vanished after create`, { cause: err });
      return this.ensureRunning(info);
    }
    const fresh = await this.inspect(id);
    if (!fresh) throw new BackendError('transient', `container ${name} vanished while starting`);
    return this.toInfo(fresh);
  }

  async stop(workspaceId: string, generation: number): Promise<void> {
    const name = containerName(workspaceId, generation);
    try {
      await this.d.getContainer(name).stop({ t: this.stopTimeoutSeconds });
    } catch (err) {
      if (isNotFound(err) || isNotModified(err)) return;
      throw toBackendError(err, `stopping container ${name}`);
    }
  }

  private async removeContainer(ref: string): Promise<void> {
    try {
      await this.d.getContainer(ref).remove({ force: true });
    } catch (err) {
      // 409 "removal already in progress" ends in the same place as a successful remove.
      if (isNotFound(err) || (isConflict(err) && /in progress/i.test(daemonMessage(err)))) return;
      throw toBackendError(err, `removing container ${ref}`);
    }
  }

  async remove(workspaceId: string, opts: RemoveOptions = {}): Promise<void> {
    const d = this.d;
    if (opts.generation !== undefined) {
      const name = containerName(workspaceId, opts.generation);
      // By name, so check the mark first: a container we did not create is never touched.
      let labels: Record<string, string> | undefined;
      try {
        labels = (await d.getContainer(name).inspect({ abortSignal: this.signal() })).Config.Labels ?? {};
      } catch (err) {
        if (isNotFound(err)) return;
        throw toBackendError(err, `inspecting container ${name}`);
      }
      if (labels[LABEL.managedBy] !== MANAGED_BY) return;
      await this.removeContainer(name);
      return;
    }
    let containers: Dockerode.ContainerInfo[];
    try {
      containers = await d.listContainers({
        all: true,
        filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.workspaceId}=${workspaceId}`] },
        abortSignal: this.signal(),
      });
    } catch (err) {
      throw toBackendError(err, `listing containers of workspace ${workspaceId}`);
    }
    const orgIds = new Set(containers.map((c) => c.Labels[LABEL.orgId]).filter((o): o is string => !!o));
    for (const c of containers) await this.removeContainer(c.Id);
    if (opts.volumes) {
      for (const name of Object.values(volumeNames(workspaceId))) {
        try {
          const labels = (await d.getVolume(name).inspect()).Labels ?? {};
          if (labels[LABEL.managedBy] !== MANAGED_BY) continue; // same name, not ours: untouched
          orgIds.add(labels[LABEL.orgId] ?? '');
          await d.getVolume(name).remove();
        } catch (err) {
          if (isNotFound(err)) continue;
          // 409 = still in use (a container appeared meanwhile): retrying later is the right answer.
          throw new BackendError('transient', `removing volume ${name}: ${daemonMessage(err)}`, {
            cause: err,
          });
        }
      }
    }
    // The org's network goes with its last workspace (best effort: a network left behind, say
    // by a daemon hiccup here, is the orphan sweep's to collect).
    for (const orgId of orgIds) {
      if (orgId) await this.removeUnusedOrgNetwork(orgId).catch(() => false);
    }
  }

  async listManagedNetworks(): Promise<ManagedNetwork[]> {
    // Org bridges whatever the placement: one made before a switch to a shared network (or while
    // `auto` found ICC on) is still ours to collect. A shared network is never ours.
    let nets: Dockerode.NetworkInspectInfo[];
    try {
      nets = await this.d.listNetworks({ filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`] } });
    } catch (err) {
      throw toBackendError(err, 'listing managed networks');
    }
    const out: ManagedNetwork[] = [];
    for (const n of nets) {
      const orgId = n.Labels?.[LABEL.orgId];
      // Only the shape this service makes: `wo-org-<org>` carrying that org's label.
      if (!orgId || n.Name !== orgNetworkName(orgId)) continue;
      const created = Date.parse(n.Created);
      // Unknown age reads as new: the sweep then waits rather than removing on a guess.
      out.push({ name: n.Name, orgId, createdAt: Number.isNaN(created) ? new Date() : new Date(created) });
    }
    return out;
  }

  async removeUnusedOrgNetwork(orgId: string): Promise<boolean> {
    // A stopped container holds no endpoint, so the daemon alone would not keep the network for
    // it: ask whether any container of the org is left.
    let left: Dockerode.ContainerInfo[];
    try {
      left = await this.d.listContainers({
        all: true,
        filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.orgId}=${orgId}`] },
        abortSignal: this.signal(),
      });
    } catch (err) {
      throw toBackendError(err, `listing containers of org ${orgId}`);
    }
    if (left.length > 0) return false;
    return removeOrgNetworkIfUnused(this.d, orgId);
  }

  async status(workspaceId: string, generation: number): Promise<ResourceStatus> {
    const d = this.d;
    try {
      const info = await d
        .getContainer(containerName(workspaceId, generation))
        .inspect({ abortSignal: this.signal() });
      return statusOf(info.State?.Status);
    } catch (err) {
      // Only the daemon saying 404 proves absence; a refused socket or timeout proves nothing.
      return isNotFound(err) ? 'missing' : 'unknown';
    }
  }

  async describe(workspaceId: string, generation: number): Promise<ResourceInfo | null> {
    const info = await this.inspect(containerName(workspaceId, generation));
    return info ? this.toInfo(info) : null;
  }

  async listManaged(): Promise<ManagedResource[]> {
    let containers: Dockerode.ContainerInfo[];
    try {
      containers = await this.d.listContainers({
        all: true,
        filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`] },
        abortSignal: this.signal(),
      });
    } catch (err) {
      throw toBackendError(err, 'listing managed containers');
    }
    const out: ManagedResource[] = [];
    for (const c of containers) {
      const workspaceId = c.Labels[LABEL.workspaceId];
      const generation = Number(c.Labels[LABEL.generation]);
      // Something carrying our managed-by label but not our identity labels is not ours to manage.
      if (!workspaceId || !Number.isInteger(generation)) continue;
      out.push({
        instanceId: c.Id,
        workspaceId,
        orgId: c.Labels[LABEL.orgId] ?? '',
        generation,
        status: statusOf(c.State),
        createdAt: new Date(c.Created * 1000),
      });
    }
    return out;
  }

  async listManagedVolumes(): Promise<ManagedVolume[]> {
    let volumes: Dockerode.VolumeInspectInfo[];
    try {
      const res = await this.d.listVolumes({
        filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`] },
        abortSignal: this.signal(),
      });
      volumes = res.Volumes ?? [];
    } catch (err) {
      throw toBackendError(err, 'listing managed volumes');
    }
    const out: ManagedVolume[] = [];
    for (const v of volumes) {
      const workspaceId = v.Labels?.[LABEL.workspaceId];
      if (!workspaceId) continue;
      // CreatedAt is in the daemon's answer but not in dockerode's types.
      const created = Date.parse((v as { CreatedAt?: string }).CreatedAt ?? '');
      out.push({
        name: v.Name,
        workspaceId,
        orgId: v.Labels[LABEL.orgId] ?? '',
        // Unknown age reads as new: the sweep then waits rather than removing on a guess.
        createdAt: Number.isNaN(created) ? new Date() : new Date(created),
      });
    }
    return out;
  }

  async removeOrg(orgId: string): Promise<string[]> {
    const d = this.d;
    const filters = { label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.orgId}=${orgId}`] };
    let containers: Dockerode.ContainerInfo[];
    let volumes: Dockerode.VolumeInspectInfo[];
    try {
      containers = await d.listContainers({ all: true, filters, abortSignal: this.signal() });
    } catch (err) {
      throw toBackendError(err, `listing containers of org ${orgId}`);
    }
    const removed: string[] = [];
    for (const c of containers) {
      await this.removeContainer(c.Id);
      removed.push(c.Id);
    }
    try {
      volumes = (await d.listVolumes({ filters, abortSignal: this.signal() })).Volumes ?? [];
    } catch (err) {
      throw toBackendError(err, `listing volumes of org ${orgId}`);
    }
    // Each removed or gone already (404); any other failure is transient (the cascade tries again).
    const removeEach = async (kind: 'volume' | 'network', items: Array<{ ref: string; name: string }>) => {
      for (const { ref, name } of items) {
        try {
          await (kind === 'volume' ? d.getVolume(ref) : d.getNetwork(ref)).remove();
          removed.push(name);
        } catch (err) {
          if (isNotFound(err)) continue;
          throw new BackendError('transient', `removing ${kind} ${name}: ${daemonMessage(err)}`, {
            cause: err,
          });
        }
      }
    };
    await removeEach(
      'volume',
      volumes.map((v) => ({ ref: v.Name, name: v.Name })),
    );
    // Only our labelled network of that name: the name alone could be anyone's.
    const nets = await d
      .listNetworks({
        filters: { name: [orgNetworkName(orgId)], label: [`${LABEL.managedBy}=${MANAGED_BY}`] },
      })
      .catch((err: unknown) => {
        throw toBackendError(err, `listing networks of org ${orgId}`);
      });
    await removeEach(
      'network',
      nets.filter((n) => n.Name === orgNetworkName(orgId)).map((n) => ({ ref: n.Id, name: n.Name })),
    );
    return removed;
  }

  async bootLog(workspaceId: string, generation: number, maxBytes = CONSOLE_MAX_BYTES): Promise<string> {
    const name = containerName(workspaceId, generation);
    const d = this.d;
    // dockerode buffers a non-follow log whole; dialled as a stream it is read and trimmed as it comes.
    let stream: NodeJS.ReadableStream & { destroy(): void };
    try {
      stream = await new Promise((resolve, reject) => {
        d.modem.dial(
          {
            path: `/containers/${name}/logs?`,
            method: 'GET',
            isStream: true,
            statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
            options: { stdout: true, stderr: true, follow: false, tail: String(LOG_TAIL_LINES) },
          },
          (err: unknown, data: unknown) => (err ? reject(err) : resolve(data as typeof stream)),
        );
      });
    } catch (err) {
      if (isNotFound(err)) return '';
      throw toBackendError(err, `reading logs of ${name}`);
    }
    const timer = setTimeout(() => stream.destroy(), this.callTimeoutMs * 6);
    try {
      return await tailLogs(stream as AsyncIterable<Buffer>, maxBytes);
    } catch (err) {
      throw toBackendError(err, `reading logs of ${name}`);
    } finally {
      clearTimeout(timer);
      stream.destroy();
    }
  }

  async openFile(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
    maxBytes?: number,
  ): Promise<FileStream> {
    // Resolved on the workspace side first: a symlink anywhere on the path that leaves the root is refused.
    return files.openFile(this.d, containerName(workspaceId, generation), root, path, maxBytes);
  }

  async readFile(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
    maxBytes?: number,
  ): Promise<Buffer> {
    return files.readFile(this.d, containerName(workspaceId, generation), root, path, maxBytes);
  }

  async listFiles(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
    depth: number,
    maxEntries?: number,
  ): Promise<FileListing> {
    return await files.listFiles(
      this.d,
      containerName(workspaceId, generation),
      root,
      path,
      depth,
      maxEntries,
    );
  }

  async writeFile(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
    content: FileContent,
  ): Promise<void> {
    return files.writeFile(this.d, containerName(workspaceId, generation), root, path, content);
  }

  /** One call per file: a docker exec/archive call has no session to share. */
  async writeFiles(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    batch: ReadonlyArray<{ path: string; content: Buffer }>,
  ): Promise<void> {
    // Every path is checked before the first write, as on EC2: a bad one leaves nothing written.
    for (const f of batch) workspacePath(root, f.path);
    for (const f of batch) await this.writeFile(workspaceId, generation, root, f.path, f.content);
  }

  async deleteFile(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
  ): Promise<void> {
    return files.deleteFile(this.d, containerName(workspaceId, generation), root, path);
  }

  async deleteFiles(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    paths: readonly string[],
  ): Promise<void> {
    for (const p of paths) workspacePath(root, p);
    for (const p of paths) await deletedIfGone(this.deleteFile(workspaceId, generation, root, p));
  }

  async removeTree(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
  ): Promise<void> {
    return files.removeTree(this.d, containerName(workspaceId, generation), root, path);
  }

  async openTerminal(
    workspaceId: string,
    generation: number,
    size: TerminalSize,
    sessionId?: string,
  ): Promise<TerminalSession> {
    return terminal.openTerminal(this.d, containerName(workspaceId, generation), size, sessionId);
  }

  async killTerminalSession(workspaceId: string, generation: number, sessionId: string): Promise<void> {
    return terminal.killSession(this.d, containerName(workspaceId, generation), sessionId);
  }

  async ping(): Promise<void> {
    const d = this.d;
    let timer: NodeJS.Timeout | undefined;
    // ping's typings take no options (so no abort signal): bound it with a timer instead.
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${this.callTimeoutMs} ms`)),
        this.callTimeoutMs,
      );
    });
    try {
      await Promise.race([d.ping(), timeout]);
    } catch (err) {
      throw toBackendError(err, 'pinging docker daemon');
    } finally {
      clearTimeout(timer);
    }
  }
}
