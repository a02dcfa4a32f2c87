/**
 * The agent's plugin reports (heartbeats) meet the stored plugin set: a request in flight whose
 * outcome the report shows is signalled to its workflow; an install stored while the workspace was
 * stopped and now reported (the start's bundle delivered it) is installed without a workflow.
 */
import * as plugins from '../db/plugins.js';
import type { Queryable } from '../db/queryable.js';
import type { ReportedPlugin } from '../workflows/messages.js';
import type { ApiDeps } from './deps.js';

export { bundlePlugins } from '../db/plugins.js';

export async function forwardPluginReport(
  deps: Pick<ApiDeps, 'db' | 'plugins' | 'log'>,
  workspaceId: string,
  generation: number,
  reported: ReportedPlugin[],
): Promise<void> {
  const rows = await unsettled(deps.db, workspaceId);
  if (rows.length === 0) return;
  const byName = new Map(reported.map((p) => [p.name, p]));
  await plugins.markPendingInstalled(
    deps.db,
    workspaceId,
    rows.filter((r) => r.status === 'pending' && byName.has(r.name)).map((r) => r.name),
  );
  // At once, each under the report deadline (PluginWorkflows.report): a heartbeat answers within
  // about 2 s even with Temporal away. A report not forwarded is not lost: it is never stored, but
  // rebuilt from every heartbeat (the agent sends its whole plugin set each time) against the rows,
  // which stay unsettled until the run lands the outcome, so the next heartbeat forwards it again;
  // and a report forwarded twice (a deadline that fired after delivery) only sets the same state.
  await Promise.all(
    rows.map(async (r) => {
      const seen = byName.get(r.name);
      const settles =
        r.status === 'installing' ? seen?.installId === r.requestId : r.status === 'uninstalling' && !seen;
      if (!settles || !deps.plugins) return;
      try {
        await deps.plugins.report(workspaceId, r.name, { generation, plugins: reported });
      } catch (err) {
        deps.log.warn({ err, workspaceId, plugin: r.name }, 'plugin report not forwarded');
      }
    }),
  );
}

async function unsettled(db: Queryable, workspaceId: string) {
  const { rows } = await db.query<{ name: string; status: plugins.PluginStatus; request_id: string }>(
    `SELECT name, status, request_id FROM workspace_plugins
      WHERE workspace_id = $1 AND status IN ('pending', 'installing', 'uninstalling')`,
    [workspaceId],
  );
  return rows.map((r) => ({ name: r.name, status: r.status, requestId: r.request_id }));
}
