import type { WorkspaceRow } from '../db/workspaces.js';
import type { WorkspaceJson } from './schemas.js';

/** The `Workspace` shape of the contract; optional fields are left out when unset. */
export function presentWorkspace(w: WorkspaceRow): WorkspaceJson {
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
  if (w.phase) out.phase = w.phase;
  if (w.instanceId) out.instanceId = w.instanceId;
  if (w.endpoint) out.endpoint = w.endpoint;
  if (w.lastHeartbeatAt) out.lastHeartbeatAt = w.lastHeartbeatAt.toISOString();
  if (w.error) out.error = w.error;
  out.restartCount = w.restartCount;
  if (w.lastRestartReason) out.lastRestartReason = w.lastRestartReason;
  return out;
}
