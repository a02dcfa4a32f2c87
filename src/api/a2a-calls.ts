/**
 * What the A2A proxy route and the MCP tools share about calling a workspace's agent from the API:
 * the limits in force, who a workspace token's caller is, and the liveness check after a failed
 * forward (the backend's view plus one /health probe, folded by the entity into degraded/offline).
 */
import { backendReads } from '../a2a/backend-reads.js';
import { A2A_DEFAULTS, probe, type A2ALimits } from '../a2a/proxy.js';
import type { Queryable } from '../db/queryable.js';
import * as workspaces from '../db/workspaces.js';
import type { WorkspaceRow } from '../db/workspaces.js';
import type { ApiDeps } from './deps.js';
import { HttpError } from './errors.js';

/** The proxy limits: `settings.a2a` over the defaults (read per call: tests change them). */
export function a2aLimits(deps: Pick<ApiDeps, 'settings'>): A2ALimits {
  return { ...A2A_DEFAULTS, ...deps.settings.a2a };
}

/** The workspace a workspace token speaks for: live, and of the generation the token was minted for. */
export async function workspaceOfToken<R extends Pick<WorkspaceRow, 'status' | 'generation'> = WorkspaceRow>(
  db: Queryable,
  p: { workspaceId: string; generation: number },
  /** The caller's row when this request already read it (the `:id` loader), else it is read here. */
  known?: R | null,
): Promise<R | WorkspaceRow> {
  const w = known !== undefined ? known : await workspaces.getWorkspace(db, p.workspaceId);
  if (!w || w.status === 'deleted' || w.status === 'deleting') {
    throw new HttpError(401, 'unauthorized', 'invalid token');
  }
  if (w.generation !== p.generation) {
    throw new HttpError(403, 'stale_generation', 'workspace token is not of the current generation');
  }
  return w;
}

/**
 * After a failed forward: tell the entity when the agent is gone or the resource is not running.
 * Checks of one workspace run one at a time and read the backend at most once per interval (an
 * agent can fail its own calls in a loop; see backend-reads.ts).
 */
export async function checkLiveness(
  deps: Pick<ApiDeps, 'backends' | 'entity' | 'log' | 'settings' | 'reads'>,
  w: Pick<WorkspaceRow, 'id' | 'backend' | 'generation'>,
  endpoint: string,
  /** The generation's agent credential: the probe counts only the agent that proves it holds it. */
  credential: string,
): Promise<void> {
  const identity = { workspaceId: w.id, generation: w.generation, credential };
  try {
    await backendReads(deps).check(
      w,
      endpoint,
      {
        status: () => deps.backends[w.backend].status(w.id, w.generation),
        probe: (at) => probe(at, identity, a2aLimits(deps).probeTimeoutMs),
      },
      (l) => deps.entity.signalLiveness(w.id, { generation: w.generation, ...l }),
    );
  } catch (err) {
    deps.log.warn({ err, workspaceId: w.id }, 'liveness check after a failed A2A forward failed');
  }
}
