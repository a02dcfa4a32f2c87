/** The desired plugin set per workspace (`workspace_plugins`) and the plugin workflow's outcomes. */
import type { PluginFile } from '../plugins/schema.js';
import type { Queryable } from './queryable.js';

export type PluginStatus = 'pending' | 'installing' | 'installed' | 'uninstalling' | 'failed';

export interface WorkspacePlugin {
  workspaceId: string;
  name: string;
  version: string;
  sha256: string;
  source: string;
  status: PluginStatus;
  reason: string | null;
  requestId: string;
  installedAt: Date | null;
}

interface Row {
  workspace_id: string;
  name: string;
  version: string;
  sha256: string;
  source: string;
  status: PluginStatus;
  reason: string | null;
  request_id: string;
  installed_at: Date | null;
}

const COLUMNS = 'workspace_id, name, version, sha256, source, status, reason, request_id, installed_at';

const toPlugin = (r: Row): WorkspacePlugin => ({
  workspaceId: r.workspace_id,
  name: r.name,
  version: r.version,
  sha256: r.sha256,
  source: r.source,
  status: r.status,
  reason: r.reason,
  requestId: r.request_id,
  installedAt: r.installed_at,
});

export async function listPlugins(db: Queryable, workspaceId: string): Promise<WorkspacePlugin[]> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS} FROM workspace_plugins WHERE workspace_id = $1 ORDER BY name`,
    [workspaceId],
  );
  return rows.map(toPlugin);
}

export async function getPlugin(
  db: Queryable,
  workspaceId: string,
  name: string,
): Promise<WorkspacePlugin | null> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS} FROM workspace_plugins WHERE workspace_id = $1 AND name = $2`,
    [workspaceId, name],
  );
  return rows[0] ? toPlugin(rows[0]) : null;
}

/**
 * Records an install request (a new row, or a re-install over a settled one). Null when an install
 * or uninstall of that name is still in flight: one workflow per plugin at a time.
 */
export async function requestInstall(
  db: Queryable,
  p: {
    workspaceId: string;
    name: string;
    version: string;
    sha256: string;
    source: string;
    files: PluginFile[];
    requestId: string;
  },
): Promise<WorkspacePlugin | null> {
  const { rows } = await db.query<Row>(
    `INSERT INTO workspace_plugins (workspace_id, name, version, sha256, source, files, status, request_id)
     VALUES ($1, $2, $3, $4, $5, $6, 'installing', $7)
     ON CONFLICT (workspace_id, name) DO UPDATE
       SET version = EXCLUDED.version, sha256 = EXCLUDED.sha256, source = EXCLUDED.source,
           files = EXCLUDED.files, status = 'installing', reason = NULL,
           request_id = EXCLUDED.request_id, updated_at = now()
       WHERE workspace_plugins.status NOT IN ('installing', 'uninstalling')
     RETURNING ${COLUMNS}`,
    [p.workspaceId, p.name, p.version, p.sha256, p.source, JSON.stringify(p.files), p.requestId],
  );
  return rows[0] ? toPlugin(rows[0]) : null;
}

/** A plugin stored for the workspace's next start (a template's default, at create). */
export async function storePendingPlugin(
  db: Queryable,
  workspaceId: string,
  p: { name: string; version: string; sha256: string; files: PluginFile[] },
  requestId: string,
): Promise<void> {
  await db.query(
    `INSERT INTO workspace_plugins (workspace_id, name, version, sha256, source, files, status, request_id)
     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7) ON CONFLICT DO NOTHING`,
    [workspaceId, p.name, p.version, p.sha256, `local://${p.name}`, JSON.stringify(p.files), requestId],
  );
}

/** Marks a settled plugin for removal; null when missing or an operation is in flight. */
export async function requestUninstall(
  db: Queryable,
  workspaceId: string,
  name: string,
  requestId: string,
): Promise<WorkspacePlugin | null> {
  const { rows } = await db.query<Row>(
    `UPDATE workspace_plugins SET status = 'uninstalling', reason = NULL, request_id = $3, updated_at = now()
      WHERE workspace_id = $1 AND name = $2 AND status NOT IN ('installing', 'uninstalling')
      RETURNING ${COLUMNS}`,
    [workspaceId, name, requestId],
  );
  return rows[0] ? toPlugin(rows[0]) : null;
}

/** The files of the current request (null when the request was superseded or the row is gone). */
export async function pluginFiles(
  db: Queryable,
  workspaceId: string,
  name: string,
  requestId: string,
): Promise<PluginFile[] | null> {
  const { rows } = await db.query<{ files: PluginFile[] }>(
    `SELECT files FROM workspace_plugins WHERE workspace_id = $1 AND name = $2 AND request_id = $3`,
    [workspaceId, name, requestId],
  );
  return rows[0]?.files ?? null;
}

export type PluginOutcome =
  { kind: 'installed' } | { kind: 'pending' } | { kind: 'failed'; reason: string } | { kind: 'removed' };

/**
 * Lands the outcome of one request, only if it is still the current one (idempotent: a retried
 * activity lands the same row again; `installed_at` keeps its first value).
 */
export async function settlePlugin(
  db: Queryable,
  workspaceId: string,
  name: string,
  requestId: string,
  outcome: PluginOutcome,
): Promise<void> {
  if (outcome.kind === 'removed') {
    await db.query(
      `DELETE FROM workspace_plugins WHERE workspace_id = $1 AND name = $2 AND request_id = $3`,
      [workspaceId, name, requestId],
    );
    return;
  }
  await db.query(
    `UPDATE workspace_plugins
        SET status = $4, reason = $5, updated_at = now(),
            installed_at = CASE WHEN $4 = 'installed' THEN COALESCE(installed_at, now()) ELSE installed_at END
      WHERE workspace_id = $1 AND name = $2 AND request_id = $3`,
    [workspaceId, name, requestId, outcome.kind, outcome.kind === 'failed' ? outcome.reason : null],
  );
}

/** A stored install that the agent now reports (applied by a start): installed, no workflow needed. */
export async function markPendingInstalled(
  db: Queryable,
  workspaceId: string,
  names: string[],
): Promise<void> {
  if (names.length === 0) return;
  await db.query(
    `UPDATE workspace_plugins SET status = 'installed', installed_at = COALESCE(installed_at, now()), updated_at = now()
      WHERE workspace_id = $1 AND name = ANY($2::text[]) AND status = 'pending'`,
    [workspaceId, names],
  );
}

/** What a (re)start delivers: every plugin not failed or on its way out, with its files. */
export async function bundlePlugins(
  db: Queryable,
  workspaceId: string,
): Promise<Array<{ name: string; version: string; installId: string; files: PluginFile[] }>> {
  const { rows } = await db.query<{ name: string; version: string; request_id: string; files: PluginFile[] }>(
    `SELECT name, version, request_id, files FROM workspace_plugins
      WHERE workspace_id = $1 AND status IN ('pending', 'installing', 'installed') ORDER BY name`,
    [workspaceId],
  );
  return rows.map((r) => ({ name: r.name, version: r.version, installId: r.request_id, files: r.files }));
}
