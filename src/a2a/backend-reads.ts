/**
 * Bounds the backend reads that an agent's own requests cause. Registers, heartbeats and failed
 * forwards re-read a workspace's endpoint (docker inspect / DescribeInstances) and a failed forward
 * asks for its resource's status; an agent (untrusted code holding its workspace token) sets their
 * pace, and EC2's read budget is the AWS account's: a few workspaces calling in a loop starved every
 * tenant's starts and sweeps. Per process, per workspace and generation, whatever the request rate:
 * - an endpoint re-read at most once per interval and path (register, heartbeat, forward), plus the
 *   one a caller forces (a generation's first registration);
 * - one liveness check of a workspace at a time (concurrent callers share it), and its backend
 *   status read at most once per interval (the /health probe, the agent's own, runs every time).
 */
import type { BackendKind, ResourceStatus } from '../backends/backend.js';
import type { WorkspaceRow } from '../db/workspaces.js';

/**
 * Least time between two reads of one kind for one workspace. Docker's inspect is a local call,
 * under the default heartbeat interval (15 s) so that every heartbeat still re-reads; EC2's
 * DescribeInstances is rate limited per account and a VPC instance keeps its private IP across
 * stop/start and reboot, so its reads are rare.
 */
export const BACKEND_READ_MIN_MS: Record<BackendKind, number> = { docker: 5_000, ec2: 60_000 };

/** The paths that re-read an endpoint, each bounded on its own (one's read never delays another's). */
export type RereadPath = 'register' | 'heartbeat' | 'forward';

export interface Liveness {
  reachable: boolean;
  resourceStatus: ResourceStatus;
}

type Target = Pick<WorkspaceRow, 'id' | 'backend' | 'generation'>;

interface Read {
  generation: number;
  at: number;
}

/** Entries kept before old ones are pruned (the maps stay the size of the active fleet). */
const PRUNE_FROM = 1_024;

export class BackendReads {
  private readonly rereads = new Map<string, Read>();
  private readonly statuses = new Map<string, Read & { status: Promise<ResourceStatus> }>();
  private readonly checks = new Map<string, Promise<void>>();
  private prunedAt = 0;

  constructor(
    private readonly minMs: Record<BackendKind, number> = BACKEND_READ_MIN_MS,
    /** Milliseconds; injectable for tests. */
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Whether `path` may re-read the workspace's endpoint now; a yes counts as the read. `force`: the
   * caller must read (still counted, so the interval starts there).
   */
  due(w: Target, path: RereadPath, force = false): boolean {
    const now = this.now();
    const key = `${path}:${w.id}`;
    if (!force && this.fresh(this.rereads.get(key), w, now)) return false;
    this.rereads.set(key, { generation: w.generation, at: now });
    this.prune(now);
    return true;
  }

  /**
   * The liveness check after a failed forward: the backend's status (read at most once per
   * interval) and a probe of the agent, handed to `tell` unless it is running and reachable. One at
   * a time per workspace and generation: a caller that comes while one runs waits for it.
   */
  check(
    w: Target,
    endpoint: string,
    ask: { status: () => Promise<ResourceStatus>; probe: (endpoint: string) => Promise<boolean> },
    tell: (l: Liveness) => Promise<void>,
  ): Promise<void> {
    const key = `${w.id}:${w.generation}`;
    const running = this.checks.get(key);
    if (running) return running;
    const done = (async () => {
      const [resourceStatus, reachable] = await Promise.all([
        this.status(w, ask.status),
        ask.probe(endpoint),
      ]);
      if (reachable && resourceStatus === 'running') return;
      await tell({ reachable, resourceStatus });
    })().finally(() => this.checks.delete(key));
    this.checks.set(key, done);
    return done;
  }

  /** The resource's status: the backend's answer of the last interval, or a new read. */
  private status(w: Target, read: () => Promise<ResourceStatus>): Promise<ResourceStatus> {
    const now = this.now();
    const last = this.statuses.get(w.id);
    if (last && this.fresh(last, w, now)) return last.status;
    // A backend that cannot answer counts as a read too: asking again at once would not help it.
    const status = read().catch(() => 'unknown' as const);
    this.statuses.set(w.id, { generation: w.generation, at: now, status });
    this.prune(now);
    return status;
  }

  private fresh(r: Read | undefined, w: Target, now: number): boolean {
    return r !== undefined && r.generation === w.generation && now - r.at < this.minMs[w.backend];
  }

  /** Forgets workspaces not read for a while (deleted ones). */
  private prune(now: number): void {
    const max = Math.max(...Object.values(this.minMs));
    if (this.rereads.size + this.statuses.size < PRUNE_FROM || now - this.prunedAt < max) return;
    this.prunedAt = now;
    for (const map of [this.rereads, this.statuses]) {
      for (const [key, r] of map) if (now - r.at > 10 * max) map.delete(key);
    }
  }
}

/**
 * The bound of the process that built `deps` (the API's routers share their deps; a worker passes
 * its own): made on first use, so that every path reading through the same deps shares it.
 */
export function backendReads(deps: { reads?: BackendReads }): BackendReads {
  return (deps.reads ??= new BackendReads());
}
