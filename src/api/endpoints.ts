/**
 * Keeps the recorded A2A endpoint true. The address always comes from the backend (docker inspect /
 * DescribeInstances), never from the agent: a container Docker restarted on its own gets a new host
 * port, and the registry (register, heartbeat) and the proxy (after a failed forward) re-read it.
 */
import http from 'node:http';
import type { BackendKind } from '../backends/backend.js';
import * as workspaces from '../db/workspaces.js';
import type { WorkspaceRow } from '../db/workspaces.js';
import type { ApiDeps } from './deps.js';

/**
 * Least time between two heartbeat-driven re-reads of one workspace. Docker's inspect is a local
 * call; EC2's DescribeInstances is rate limited per account and a VPC instance keeps its private IP
 * across stop/start, so heartbeats re-read it rarely (register and failed forwards always re-read).
 */
export const HEARTBEAT_REFRESH_MIN_MS: Record<BackendKind, number> = { docker: 0, ec2: 60_000 };

/**
 * Re-reads the endpoint of the workspace's current generation and records it when it changed.
 * Returns the endpoint to use: the backend's answer, or the recorded one when the backend has none
 * (stopped, missing) or could not be asked (a read must never fail the caller's request).
 */
export async function refreshEndpoint(
  deps: Pick<ApiDeps, 'db' | 'backends' | 'log'>,
  w: Pick<WorkspaceRow, 'id' | 'backend' | 'generation' | 'endpoint'>,
): Promise<string | null> {
  let fresh: string | null;
  try {
    fresh = (await deps.backends[w.backend].describe(w.id, w.generation))?.endpoint ?? null;
  } catch (err) {
    deps.log.warn({ err, workspaceId: w.id }, 'could not re-read the workspace endpoint');
    return w.endpoint;
  }
  if (fresh === null || fresh === w.endpoint) return w.endpoint;
  if (await workspaces.refreshEndpoint(deps.db, w.id, w.generation, fresh)) {
    deps.log.info({ workspaceId: w.id, from: w.endpoint, to: fresh }, 'workspace endpoint changed');
  }
  return fresh;
}

/** Per-process throttle of heartbeat re-reads (see HEARTBEAT_REFRESH_MIN_MS). */
export class HeartbeatRefresh {
  private readonly last = new Map<string, number>();

  due(w: Pick<WorkspaceRow, 'id' | 'backend'>, now = Date.now()): boolean {
    const min = HEARTBEAT_REFRESH_MIN_MS[w.backend];
    if (min === 0) return true;
    const prev = this.last.get(w.id);
    if (prev !== undefined && now - prev < min) return false;
    this.last.set(w.id, now);
    this.prune(now, min);
    return true;
  }

  /** Forgets workspaces not seen for a while (deleted ones): the map stays the size of the fleet. */
  private prune(now: number, min: number): void {
    if (this.last.size < 1024 || now - this.prunedAt < min) return;
    this.prunedAt = now;
    for (const [id, at] of this.last) if (now - at > 10 * min) this.last.delete(id);
  }

  private prunedAt = 0;
}

/** One GET /health of the agent: does it answer at this address at all? */
export function probeHealth(endpoint: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(new URL('/health', endpoint), { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 500) < 500);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
  });
}
