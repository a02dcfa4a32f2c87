import type { ActivityRow } from '../db/activity.js';
import type { MemoryRow } from '../db/memories.js';
import type { WorkspacePlugin } from '../db/plugins.js';
import type { ScheduleRow } from '../db/schedules.js';
import type { WorkspaceRow } from '../db/workspaces.js';
import type { Budget } from '../domain/budget.js';
import type { MirrorState } from '../schedules/mirror.js';
import type { WorkspaceJson } from './schemas.js';

/** The `Workspace` shape of the contract; optional fields are left out when unset. */
export function presentWorkspace(w: WorkspaceRow, restartPolicy?: 'always' | 'never'): WorkspaceJson {
  const out: WorkspaceJson = {
    id: w.id,
    orgId: w.orgId,
    name: w.name,
    backend: w.backend,
    runtime: w.runtime,
    status: w.status,
    generation: w.generation,
    configHash: w.configHash,
    createdAt: w.createdAt.toISOString(),
    updatedAt: w.updatedAt.toISOString(),
  };
  if (w.bootConfigHash) out.bootConfigHash = w.bootConfigHash;
  if (w.phase) out.phase = w.phase;
  if (w.instanceId) out.instanceId = w.instanceId;
  if (w.endpoint) out.endpoint = w.endpoint;
  if (w.lastHeartbeatAt) out.lastHeartbeatAt = w.lastHeartbeatAt.toISOString();
  if (w.error) out.error = w.error;
  out.restartCount = w.restartCount;
  if (w.lastRestartReason) out.lastRestartReason = w.lastRestartReason;
  if (restartPolicy) out.restartPolicy = restartPolicy;
  return out;
}

/** An activity row: A2A and schedule statuses are HTTP codes, shown as numbers. */
export function presentActivity(a: ActivityRow) {
  const status =
    (a.type === 'a2a' || a.type === 'schedule') && /^\d+$/.test(a.status) ? Number(a.status) : a.status;
  return {
    id: a.id,
    ts: a.ts,
    type: a.type,
    ...(a.peerId ? { peerId: a.peerId } : {}),
    ...(a.direction ? { direction: a.direction } : {}),
    ...(a.method ? { method: a.method } : {}),
    summary: a.summary,
    status,
    ...(a.durationMs !== null ? { durationMs: a.durationMs } : {}),
  };
}

/** One A2A call of a chat history, with its redacted excerpts. */
export function presentTurn(a: ActivityRow) {
  return {
    id: a.id,
    ts: a.ts,
    peerId: a.peerId,
    direction: a.direction,
    method: a.method,
    status: Number(a.status),
    durationMs: a.durationMs,
    request: a.requestText ?? '',
    response: a.responseText ?? '',
  };
}

export const presentBudget = (b: Budget) => ({ limitCents: b.limitCents, spentCents: b.spentCents });

export const presentMemory = (m: MemoryRow) => ({
  id: m.id,
  content: m.content,
  scope: m.scope,
  createdAt: m.createdAt,
});

export const presentPlugin = (p: WorkspacePlugin) => ({
  name: p.name,
  version: p.version,
  status: p.status,
  ...(p.installedAt ? { installedAt: p.installedAt.toISOString() } : {}),
  ...(p.reason ? { reason: p.reason } : {}),
  sha256: p.sha256,
  source: p.source,
});

export function presentSchedule(s: ScheduleRow, mirror?: MirrorState | null) {
  return {
    id: s.id,
    workspaceId: s.workspaceId,
    cron: s.cron,
    timezone: s.timezone,
    prompt: s.prompt,
    enabled: s.enabled,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
    lastRun: s.lastRun
      ? {
          at: s.lastRun.at.toISOString(),
          status: s.lastRun.status,
          ...(s.lastRun.error !== null ? { error: s.lastRun.error } : {}),
          ...(s.lastRun.durationMs !== null ? { durationMs: s.lastRun.durationMs } : {}),
        }
      : null,
    // Only when Temporal was asked: null = paused or nothing due; absent = not known now.
    ...(mirror ? { nextRunAt: mirror.nextRunAt?.toISOString() ?? null } : {}),
    ...(mirror === null ? { mirror: 'unknown' } : {}),
  };
}
