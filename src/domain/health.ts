/**
 * The health sweep's cross-check as a pure function (unit-tested in test/unit/health-sweep.test.ts):
 * the DB's view of the workspaces that should be running against one listing per backend. It only
 * says what the platform observed; the entity folds that into its status (decide.ts healthVerdict).
 */
import type { BackendKind, ResourceStatus } from '../backends/backend.js';
import type { AgentLiveness } from '../workflows/messages.js';

/** A workspace that should be running (status online/degraded/offline, desired running). */
export interface CheckedWorkspace {
  id: string;
  backend: BackendKind;
  generation: number;
  status: 'online' | 'degraded' | 'offline';
  lastHeartbeatAtMs: number | null;
  /** What the agent last reported (`ok`, `wedged`, …); null before its first heartbeat. */
  runtimeState: string | null;
  /** When a degraded/offline status was recorded (null: online, or unknown). */
  statusSinceMs?: number | null;
}

/** One backend's listing: its resources by `workspaceId:generation`, or null when it failed. */
export type BackendListing = Map<string, ResourceStatus> | null;

export interface HealthFinding {
  workspaceId: string;
  backend: BackendKind;
  from: CheckedWorkspace['status'];
  /** The status this observation leads the entity to (healthVerdict over the liveness). */
  to: CheckedWorkspace['status'];
  liveness: AgentLiveness;
  reason: string;
}

export interface HealthSelection {
  /** Only the workspaces whose verdict differs from their status: the ones to signal. */
  changed: HealthFinding[];
  counts: { checked: number; online: number; degraded: number; offline: number; unchanged: number };
}

export const resourceKey = (workspaceId: string, generation: number): string =>
  `${workspaceId}:${generation}`;

/**
 * Fresh heartbeat: the agent is alive (online, or degraded when it reports a runtime state other
 * than ok), if it came after a degraded/offline verdict (an older one proves nothing against it).
 * Stale heartbeat: the backend decides, resource stopped or missing → offline; running → degraded
 * (agent unreachable); listing failed (`unknown`) → degraded, never offline on a guess.
 */
export function selectHealthChanges(input: {
  workspaces: readonly CheckedWorkspace[];
  listings: Partial<Record<BackendKind, BackendListing>>;
  nowMs: number;
  staleMs: number;
}): HealthSelection {
  const counts = { checked: 0, online: 0, degraded: 0, offline: 0, unchanged: 0 };
  const changed: HealthFinding[] = [];
  for (const w of input.workspaces) {
    counts.checked++;
    const listing = input.listings[w.backend];
    const resourceStatus: ResourceStatus =
      listing == null ? 'unknown' : (listing.get(resourceKey(w.id, w.generation)) ?? 'missing');
    const stale = w.lastHeartbeatAtMs === null || input.nowMs - w.lastHeartbeatAtMs > input.staleMs;
    // A heartbeat from before a degraded/offline verdict (a failed forward's, say) is not news: it
    // must not declare the agent recovered. A later one is (its handler probes the agent first).
    if (
      !stale &&
      w.status !== 'online' &&
      w.statusSinceMs != null &&
      w.lastHeartbeatAtMs! <= w.statusSinceMs
    ) {
      counts[w.status]++;
      counts.unchanged++;
      continue;
    }
    let to: CheckedWorkspace['status'];
    let reason: string;
    let reachable: boolean;
    if (!stale) {
      reachable = true;
      if (w.runtimeState !== null && w.runtimeState !== 'ok') {
        to = 'degraded';
        reason = `agent reports runtime state ${w.runtimeState}`;
      } else {
        to = 'online';
        reason = 'heartbeat fresh';
      }
    } else {
      reachable = false;
      if (resourceStatus === 'stopped' || resourceStatus === 'missing') {
        to = 'offline';
        reason = `heartbeat stale and resource ${resourceStatus}`;
      } else {
        to = 'degraded';
        reason =
          resourceStatus === 'running'
            ? 'heartbeat stale, resource running: agent unreachable'
            : 'heartbeat stale, backend status unknown';
      }
    }
    counts[to]++;
    if (to === w.status) {
      counts.unchanged++;
      continue;
    }
    // A fresh heartbeat proves the agent answers, whatever the (possibly late) listing says.
    const liveness: AgentLiveness = {
      generation: w.generation,
      reachable,
      resourceStatus: reachable && resourceStatus !== 'running' ? 'running' : resourceStatus,
    };
    changed.push({ workspaceId: w.id, backend: w.backend, from: w.status, to, liveness, reason });
  }
  changed.sort((a, b) => a.workspaceId.localeCompare(b.workspaceId));
  return { changed, counts };
}
