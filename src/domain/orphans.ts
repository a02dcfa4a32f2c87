/**
 * Which managed resources the orphan sweep removes: a pure function of what the backends listed and
 * what the DB says, so the rules are unit-tested without Docker, EC2 or Temporal.
 *
 * A resource is live when its workspace exists, is not `deleted`, runs on that backend and is at
 * that generation (or a later one: generations only grow, and the row's generation is written
 * before its resource is started, so a resource ahead of the row cannot exist; keeping it is the
 * safe answer should one ever appear), unless its entity discarded that generation (it failed the
 * generation and its removal failed too: nothing will use it again, and nothing else would ever
 * remove it while it is the current one). Everything else is an orphan, but only once older than the
 * grace period (a fresh one may belong to a create or a restart in flight), and only when its org
 * is known to this deployment: a resource of an org this DB never had belongs to another
 * deployment sharing the daemon or account, and is left alone.
 */
import type { BackendKind } from '../backends/backend.js';

/** `discarded`: a generation its entity gave up and failed to remove (a failed boot's teardown). */
export type OrphanReason = 'superseded' | 'discarded' | 'deleted' | 'unknown';

/**
 * One listed resource, as the sweep sees it (createdAt in epoch ms: plain JSON through Temporal).
 * A `volume` belongs to its workspace, not to a generation: it is live while its workspace is. A
 * `generation-volume` is one generation's own disk left without its instance (EC2's root volume):
 * judged and removed with that generation, as its instance would be.
 */
export interface ListedResource {
  backend: BackendKind;
  kind?: 'instance' | 'volume' | 'generation-volume';
  /** Container / instance id, or the volume's name. */
  instanceId: string;
  workspaceId: string;
  orgId: string;
  generation: number;
  createdAtMs: number;
}

export interface KnownWorkspace {
  backend: BackendKind;
  generation: number;
  status: string;
  /** A generation the entity gave up but could not remove: not live, even when current. */
  discardedGeneration?: number | null;
}

/**
 * One removal: a single generation (`generation` set), or the whole workspace with its volumes
 * (`generation` null: every resource of a deleted or unknown workspace is past the grace period).
 */
export interface OrphanRemoval {
  backend: BackendKind;
  workspaceId: string;
  orgId: string;
  generation: number | null;
  /** The containers / instances removed. */
  instanceIds: string[];
  /**
   * The volumes removed with them (docker volume names, EC2 volume ids). Absent from results
   * recorded before it was split out of `instanceIds`.
   */
  volumeIds?: string[];
  reason: OrphanReason;
}

export interface OrphanSelection {
  removals: OrphanRemoval[];
  counts: { listed: number; live: number; young: number; foreign: number };
}

export function selectOrphans(input: {
  resources: readonly ListedResource[];
  workspaces: ReadonlyMap<string, KnownWorkspace>;
  knownOrgs: ReadonlySet<string>;
  nowMs: number;
  graceMs: number;
}): OrphanSelection {
  const counts = { listed: input.resources.length, live: 0, young: 0, foreign: 0 };
  // Orphans grouped per backend + workspace, so a dead workspace is removed in one call.
  const groups = new Map<
    string,
    { reason: OrphanReason; old: Array<ListedResource & { reason: OrphanReason }>; young: number }
  >();
  for (const r of input.resources) {
    const w = input.workspaces.get(r.workspaceId);
    const reason = orphanReason(r, w);
    if (reason === null) {
      counts.live++;
      continue;
    }
    if (!input.knownOrgs.has(r.orgId)) {
      counts.foreign++;
      continue;
    }
    const key = `${r.backend}\u0000${r.workspaceId}`;
    const group = groups.get(key) ?? { reason, old: [], young: 0 };
    groups.set(key, group);
    if (input.nowMs - r.createdAtMs < input.graceMs) {
      counts.young++;
      group.young++;
    } else group.old.push({ ...r, reason });
  }
  const removals: OrphanRemoval[] = [];
  for (const { reason, old, young } of groups.values()) {
    if (old.length === 0) continue;
    const first = old[0]!;
    // A live workspace's leftovers (superseded, discarded) go one generation at a time (a
    // generation's own volumes with it), the workspace's volumes kept.
    const whole = (reason === 'deleted' || reason === 'unknown') && young === 0;
    const instances = old.filter((r) => r.kind !== 'volume');
    if (whole) {
      removals.push({
        backend: first.backend,
        workspaceId: first.workspaceId,
        orgId: first.orgId,
        generation: null,
        ...split(old),
        reason,
      });
      continue;
    }
    // Per generation: a young resource of the same workspace must survive this sweep (and its
    // volumes with it, until a later sweep removes the workspace whole).
    const byGeneration = new Map<number, typeof instances>();
    for (const r of instances) byGeneration.set(r.generation, [...(byGeneration.get(r.generation) ?? []), r]);
    for (const [generation, rs] of [...byGeneration].sort((a, b) => a[0] - b[0])) {
      removals.push({
        backend: first.backend,
        workspaceId: first.workspaceId,
        orgId: first.orgId,
        generation,
        ...split(rs),
        reason: rs[0]!.reason,
      });
    }
  }
  removals.sort(
    (a, b) =>
      a.backend.localeCompare(b.backend) ||
      a.workspaceId.localeCompare(b.workspaceId) ||
      (a.generation ?? -1) - (b.generation ?? -1),
  );
  return { removals, counts };
}

/** A removal's resources: instances (containers) apart from volumes, each sorted. */
function split(rs: readonly ListedResource[]): { instanceIds: string[]; volumeIds: string[] } {
  const isVolume = (r: ListedResource) => r.kind === 'volume' || r.kind === 'generation-volume';
  return {
    instanceIds: rs
      .filter((r) => !isVolume(r))
      .map((r) => r.instanceId)
      .sort(),
    volumeIds: rs
      .filter(isVolume)
      .map((r) => r.instanceId)
      .sort(),
  };
}

/** A per-org network a backend listed (docker's `wo-org-<org>` bridge). */
export interface ListedNetwork {
  backend: BackendKind;
  name: string;
  orgId: string;
  createdAtMs: number;
}

/** A network to remove: its org has no workspace left on that backend. */
export interface OrphanNetwork {
  backend: BackendKind;
  orgId: string;
  name: string;
}

/**
 * The org networks no workspace needs any more: the org is known to this deployment (another
 * deployment's are left alone), none of its workspaces on that backend is short of `deleted`
 * (`liveOrgs` holds `backend:orgId`; a create in flight has its row, so its network stays), and
 * the network is older than the grace period. The removal itself checks again that no container
 * of the org is left.
 */
export function selectOrphanNetworks(input: {
  networks: readonly ListedNetwork[];
  liveOrgs: ReadonlySet<string>;
  knownOrgs: ReadonlySet<string>;
  nowMs: number;
  graceMs: number;
}): { removals: OrphanNetwork[]; counts: { listed: number; live: number; young: number; foreign: number } } {
  const counts = { listed: input.networks.length, live: 0, young: 0, foreign: 0 };
  const removals: OrphanNetwork[] = [];
  for (const n of input.networks) {
    if (!input.knownOrgs.has(n.orgId)) counts.foreign++;
    else if (input.liveOrgs.has(liveOrgKey(n.backend, n.orgId))) counts.live++;
    else if (input.nowMs - n.createdAtMs < input.graceMs) counts.young++;
    else removals.push({ backend: n.backend, orgId: n.orgId, name: n.name });
  }
  removals.sort((a, b) => a.backend.localeCompare(b.backend) || a.name.localeCompare(b.name));
  return { removals, counts };
}

/** The key of an org with a live workspace on a backend, in `liveOrgs`. */
export const liveOrgKey = (backend: BackendKind, orgId: string): string => `${backend}:${orgId}`;

function orphanReason(r: ListedResource, w: KnownWorkspace | undefined): OrphanReason | null {
  if (!w || w.backend !== r.backend) return 'unknown';
  if (w.status === 'deleted') return 'deleted';
  if (r.kind === 'volume') return null;
  if (r.generation < w.generation) return 'superseded';
  return r.generation === w.discardedGeneration ? 'discarded' : null;
}

/** What one orphan sweep run's activity retention step deleted. */
export interface ActivityPruned {
  /** Rows written before this went. */
  before: string;
  removed: number;
  /** The run stopped at its cap (ACTIVITY_PRUNE_ROWS_PER_RUN): older rows are left for the next run. */
  more: boolean;
}

/** What one orphan sweep run's history retention step deleted, per table. */
export interface HistoryPruned {
  /** Rows written before this went. */
  before: string;
  removed: { consoleLogs: number; bootEvents: number; transitions: number };
  /** The run stopped at its cap (HISTORY_PRUNE_ROWS_PER_RUN): older rows are left for the next run. */
  more: boolean;
}

/** What one orphan sweep did: the workflow's result, shown in the Temporal UI and by the API. */
export interface OrphanSweepResult {
  startedAt: string;
  finishedAt: string;
  graceMs: number;
  counts: OrphanSelection['counts'] & { orphans: number; removed: number; failed: number };
  /** Removed instance/container ids, with what they were. */
  removed: Array<OrphanRemoval>;
  failed: Array<OrphanRemoval & { error: string }>;
  /** Backends whose listing failed this time (nothing was removed there). */
  listErrors: Array<{ backend: BackendKind; error: string }>;
  /**
   * Workspace schedule mirrors (Temporal Schedules) removed because their workspace is deleted or
   * their row is gone. Absent on runs started by a worker without that step.
   */
  schedulesRemoved?: Array<{ workspaceId: string; scheduleId: string }>;
  /**
   * Org networks that outlived their org's last workspace: removed, or failed (tried again next
   * run). Absent on runs started by a worker without that step.
   */
  networks?: {
    counts: ReturnType<typeof selectOrphanNetworks>['counts'];
    removed: OrphanNetwork[];
    failed: Array<OrphanNetwork & { error: string }>;
  };
  /**
   * Creates whose own entity start never landed (an API killed between the row's commit and the
   * start, or a start Temporal never got): entities started, or failed to (tried again next run).
   * Absent on runs started by a worker without that step.
   */
  lostCreates?: {
    resumed: Array<{ workspaceId: string; orgId: string }>;
    failed: Array<{ workspaceId: string; orgId: string; error: string }>;
  };
  /**
   * Deleted orgs with a workspace short of `deleted` whose cascade was not running (never started,
   * or ended on an older worker): cascades started, or failed to (tried again next run). Absent on
   * runs started by a worker without that step.
   */
  orgDeletes?: {
    resumed: Array<{ orgId: string; workspaces: number }>;
    failed: Array<{ orgId: string; workspaces: number; error: string }>;
  };
  /**
   * Plugin requests left in flight with no run (their API stopped between recording and starting
   * it) whose run this sweep started, or failed to (tried again next run). Absent on runs started
   * by a worker without that step.
   */
  pluginRequests?: {
    resumed: Array<{ workspaceId: string; name: string; action: 'install' | 'uninstall'; requestId: string }>;
    failed: Array<{
      workspaceId: string;
      name: string;
      action: 'install' | 'uninstall';
      requestId: string;
      error: string;
    }>;
  };
  /**
   * Activity rows past ACTIVITY_RETENTION_DAYS deleted this run (`more`: the run's cap was
   * reached, the next run goes on). Absent when retention is off or on runs of a worker without
   * that step.
   */
  activity?: ActivityPruned;
  /**
   * Workspace history past HISTORY_RETENTION_DAYS deleted this run: past generations' boot events
   * and kept consoles, transitions but each workspace's newest, a deleted workspace's all (`more`:
   * the run's cap was reached). Absent when retention is off or on runs of a worker without that
   * step.
   */
  history?: HistoryPruned;
}
