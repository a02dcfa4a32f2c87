/** The desired plugin set per workspace (`workspace_plugins`) and the plugin workflow's outcomes. */
import type pg from 'pg';
import type { PluginFile } from '../plugins/schema.js';
import { inTransaction, type Queryable } from './queryable.js';

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
 * The row a request replaced, exactly as it was (every column, as jsonb), for restorePlugin; null
 * when the request made a new row. Opaque to callers.
 */
export type ReplacedRow = { readonly stored: unknown } | null;

/** A request as recorded: its row, and what it replaced. */
export interface RecordedRequest {
  row: WorkspacePlugin;
  replaced: ReplacedRow;
}

/**
 * Records a request in one transaction: the row as it is now is read and locked (a concurrent
 * request for the name waits, then finds this one in flight), so what `write` replaces is exactly
 * what restorePlugin would put back. Null when an install or uninstall of the name is in flight,
 * or when `write` wrote nothing.
 */
async function recordRequest(
  pool: pg.Pool,
  workspaceId: string,
  name: string,
  write: (tx: Queryable, exists: boolean) => Promise<Row | undefined>,
): Promise<RecordedRequest | null> {
  return inTransaction(pool, async (tx) => {
    const { rows } = await tx.query<{ prior: { status: PluginStatus } }>(
      `SELECT to_jsonb(p) AS prior FROM workspace_plugins p WHERE workspace_id = $1 AND name = $2 FOR UPDATE`,
      [workspaceId, name],
    );
    const prior = rows[0]?.prior ?? null;
    if (prior && (prior.status === 'installing' || prior.status === 'uninstalling')) return null;
    const row = await write(tx, prior !== null);
    return row ? { row: toPlugin(row), replaced: prior ? { stored: prior } : null } : null;
  });
}

/** How much one workspace's plugins may hold: every one is in each of its boot bundles. */
export interface PluginQuota {
  /** Plugins (rows of any status). */
  count: number;
  /** Bytes of their stored files (base64 JSON, as the bundle carries them). */
  bytes: number;
}

/** An install that would take the workspace's plugins past its PluginQuota; nothing was written. */
export class PluginQuotaExceeded extends Error {}

/**
 * Records an install request (a new row, or a re-install over a settled one). Null when an install
 * or uninstall of that name is still in flight: one workflow per plugin at a time. With `quota`,
 * throws PluginQuotaExceeded when the workspace's other plugins and this one would exceed it
 * (installs of one workspace are serialized for the count, so concurrent ones cannot overshoot).
 */
export async function requestInstall(
  pool: pg.Pool,
  p: {
    workspaceId: string;
    name: string;
    version: string;
    sha256: string;
    source: string;
    files: PluginFile[];
    requestId: string;
  },
  quota?: PluginQuota,
): Promise<RecordedRequest | null> {
  const files = JSON.stringify(p.files);
  const values = [p.workspaceId, p.name, p.version, p.sha256, p.source, files, p.requestId];
  return recordRequest(pool, p.workspaceId, p.name, async (tx, exists) => {
    if (quota) {
      // An advisory lock, not the workspace row's: no order to keep with the row locks elsewhere.
      await tx.query(`SELECT pg_advisory_xact_lock(hashtext('wo-plugin-quota:' || $1))`, [p.workspaceId]);
      const { rows: held } = await tx.query<{ n: number; bytes: string }>(
        `SELECT count(*)::int AS n, COALESCE(sum(octet_length(files::text)), 0)::bigint AS bytes
           FROM workspace_plugins WHERE workspace_id = $1 AND name <> $2`,
        [p.workspaceId, p.name],
      );
      const others = held[0] ?? { n: 0, bytes: '0' };
      if (others.n + 1 > quota.count) {
        throw new PluginQuotaExceeded(`a workspace holds at most ${quota.count} plugins`);
      }
      if (Number(others.bytes) + Buffer.byteLength(files) > quota.bytes) {
        throw new PluginQuotaExceeded(`a workspace's plugins hold at most ${quota.bytes} bytes of files`);
      }
    }
    // A new name made meanwhile by a concurrent request (no row to lock before): that one is in flight.
    const { rows } = await tx.query<Row>(
      exists
        ? `UPDATE workspace_plugins
              SET version = $3, sha256 = $4, source = $5, files = $6, status = 'installing', reason = NULL,
                  request_id = $7, updated_at = now()
            WHERE workspace_id = $1 AND name = $2
            RETURNING ${COLUMNS}`
        : `INSERT INTO workspace_plugins (workspace_id, name, version, sha256, source, files, status, request_id)
           VALUES ($1, $2, $3, $4, $5, $6, 'installing', $7) ON CONFLICT DO NOTHING
           RETURNING ${COLUMNS}`,
      values,
    );
    return rows[0];
  });
}

/**
 * Undoes a request whose workflow could not be started: the row it replaced comes back exactly
 * (or a row it made goes), only while the row is still that request, in flight. False when it no
 * longer is: its own run settled it (a start whose answer was lost did land), or the workspace went.
 */
export async function restorePlugin(
  db: Queryable,
  request: { workspaceId: string; name: string; requestId: string; status: PluginStatus },
  replaced: ReplacedRow,
): Promise<boolean> {
  const mine = [request.workspaceId, request.name, request.requestId, request.status];
  if (!replaced) {
    const { rowCount } = await db.query(
      `DELETE FROM workspace_plugins WHERE workspace_id = $1 AND name = $2 AND request_id = $3 AND status = $4`,
      mine,
    );
    return rowCount === 1;
  }
  const { rowCount } = await db.query(
    `UPDATE workspace_plugins p
        SET (version, sha256, source, files, status, reason, request_id, installed_at, updated_at) =
            (SELECT b.version, b.sha256, b.source, b.files, b.status, b.reason, b.request_id,
                    b.installed_at, b.updated_at
               FROM jsonb_populate_record(NULL::workspace_plugins, $5::jsonb) b)
      WHERE p.workspace_id = $1 AND p.name = $2 AND p.request_id = $3 AND p.status = $4`,
    [...mine, JSON.stringify(replaced.stored)],
  );
  return rowCount === 1;
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
  pool: pg.Pool,
  workspaceId: string,
  name: string,
  requestId: string,
): Promise<RecordedRequest | null> {
  return recordRequest(pool, workspaceId, name, async (tx, exists) => {
    if (!exists) return undefined;
    const { rows } = await tx.query<Row>(
      `UPDATE workspace_plugins SET status = 'uninstalling', reason = NULL, request_id = $3, updated_at = now()
        WHERE workspace_id = $1 AND name = $2
        RETURNING ${COLUMNS}`,
      [workspaceId, name, requestId],
    );
    return rows[0];
  });
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

/** A request recorded but maybe never started: what its run needs. */
export interface InFlightRequest {
  workspaceId: string;
  name: string;
  action: 'install' | 'uninstall';
  requestId: string;
}

/**
 * Requests in flight (`installing`, `uninstalling`) untouched for `olderThanMs` by the database's
 * clock, oldest first, at most `limit`: candidates for a lost request (its run may still be
 * there; the caller tells by starting one). `workspaceId`/`name` narrow it to one plugin.
 */
export async function staleRequests(
  db: Queryable,
  olderThanMs: number,
  opts: { limit: number; workspaceId?: string; name?: string },
): Promise<InFlightRequest[]> {
  const { rows } = await db.query<{
    workspace_id: string;
    name: string;
    status: PluginStatus;
    request_id: string;
  }>(
    `SELECT p.workspace_id, p.name, p.status, p.request_id
       FROM workspace_plugins p JOIN workspaces w ON w.id = p.workspace_id
      WHERE p.status IN ('installing', 'uninstalling')
        AND p.updated_at < now() - make_interval(secs => $1::double precision / 1000)
        AND w.status NOT IN ('deleting', 'deleted')
        AND ($3::text IS NULL OR p.workspace_id = $3) AND ($4::text IS NULL OR p.name = $4)
      ORDER BY p.updated_at LIMIT $2`,
    [olderThanMs, opts.limit, opts.workspaceId ?? null, opts.name ?? null],
  );
  return rows.map((r) => ({
    workspaceId: r.workspace_id,
    name: r.name,
    action: r.status === 'installing' ? 'install' : 'uninstall',
    requestId: r.request_id,
  }));
}
