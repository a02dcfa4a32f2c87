/**
 * Keeps the recorded A2A endpoint true. The address always comes from the backend (docker inspect /
 * DescribeInstances), never from the agent: a container Docker restarted on its own gets a new host
 * port, and the registry (register, heartbeat) and the proxy (after a failed forward) re-read it.
 */
import http from 'node:http';
import type { BackendKind } from '../backends/backend.js';
import type { WorkspaceRow } from '../db/workspaces.js';

/**
 * Least time between two heartbeat-driven re-reads of one workspace. Docker's inspect is a local
 * call; EC2's DescribeInstances is rate limited per account and a VPC instance keeps its private IP
 * across stop/start, so heartbeats re-read it rarely (register and failed forwards always re-read).
 */
export const HEARTBEAT_REFRESH_MIN_MS: Record<BackendKind, number> = { docker: 0, ec2: 60_000 };

/** The one re-read, shared with the proxy's forwarding path (src/a2a/proxy.ts). */
export { refreshEndpoint } from '../a2a/proxy.js';

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
