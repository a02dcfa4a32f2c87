/** Activities of the plugin workflow: deliver into a running workspace, and land the outcome. */
import { BackendError } from '../backends/backend.js';
import { presentedAgentCredential } from '../db/agent-credentials.js';
import * as plugins from '../db/plugins.js';
import { AGENT_CREDENTIAL_HEADER } from '../security/agent-credential.js';
import { readAll, request } from '../a2a/proxy.js';
import * as workspaces from '../db/workspaces.js';
import { removePluginFolder, writePluginFolder } from '../plugins/delivery.js';
import type { ActivityDeps } from './index.js';
import { backendCall, dbCall } from './index.js';

/** `booting`: a generation is starting; its bundle may or may not carry the plugin, so try again. */
export type Delivery = 'delivered' | 'not-running' | 'booting' | 'superseded';

export function createPluginActivities(deps: Pick<ActivityDeps, 'db' | 'backends' | 'secrets'>) {
  const { db } = deps;

  /**
   * Asks the agent to report its plugin set now. Best effort: an agent that misses it (or an
   * older one without the route) reports at its next heartbeat anyway.
   */
  async function reload(w: { id: string; generation: number; endpoint: string | null }): Promise<void> {
    if (!w.endpoint) return;
    try {
      const credential = await presentedAgentCredential(db, deps.secrets, w.id, w.generation);
      // Through the proxy's path: the credential goes only to the agent that proves it holds it
      // (the recorded endpoint may be another workspace's agent by now).
      const res = await request(
        new URL('/plugins/reload', w.endpoint),
        {
          method: 'POST',
          headers: { [AGENT_CREDENTIAL_HEADER]: credential, 'content-length': '0' },
          identity: { workspaceId: w.id, generation: w.generation, credential },
        },
        null,
        { connectTimeoutMs: 3_000, idleTimeoutMs: 3_000 },
      );
      await readAll(res, 4_096);
    } catch {
      // The heartbeat carries the report regardless.
    }
  }

  return {
    /**
     * Writes (or removes) the plugin folder in the workspace's running generation. Idempotent: a
     * retry rewrites the same files. A workspace that is not running gets nothing now.
     */
    async deliverPlugin(input: {
      workspaceId: string;
      name: string;
      requestId: string;
      action: 'install' | 'uninstall';
    }): Promise<Delivery> {
      const w = await dbCall(() => workspaces.getWorkspace(db, input.workspaceId));
      const row = await dbCall(() => plugins.getPlugin(db, input.workspaceId, input.name));
      if (!w || !row || row.requestId !== input.requestId) return 'superseded';
      if (w.status === 'provisioning' || w.status === 'restarting') return 'booting';
      if (w.status !== 'online' && w.status !== 'degraded') return 'not-running';
      const backend = deps.backends[w.backend];
      try {
        if (input.action === 'uninstall') {
          await backendCall(() => removePluginFolder(backend, w.id, w.generation, input.name));
        } else {
          const files = await dbCall(() => plugins.pluginFiles(db, w.id, input.name, input.requestId));
          if (!files) return 'superseded';
          await backendCall(() =>
            writePluginFolder(backend, w.id, w.generation, input.name, files, input.requestId),
          );
        }
      } catch (err) {
        // Online in the database, not running in fact (a dockerd restart, a stop from outside):
        // as for a workspace known to be stopped, the next start's bundle applies the request.
        if (err instanceof BackendError && err.code === 'not_running') return 'not-running';
        throw err;
      }
      await reload(w);
      return 'delivered';
    },

    async settlePlugin(input: {
      workspaceId: string;
      name: string;
      requestId: string;
      outcome: plugins.PluginOutcome;
    }): Promise<void> {
      await dbCall(() =>
        plugins.settlePlugin(db, input.workspaceId, input.name, input.requestId, input.outcome),
      );
    },
  };
}
