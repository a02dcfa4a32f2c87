/**
 * A workspace's plugin set. An install is validated whole (manifest, sha256, size, every archive
 * entry) before anything is stored or delivered; a refusal names the field and leaves the workspace
 * untouched. Accepted requests are carried out by the plugin workflow (`workspace:<id>:plugin:<name>`).
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { PluginWorkflows } from '../api/plugin-workflows.js';
import { PluginWorkflowBusy } from '../api/plugin-workflows.js';
import * as plugins from '../db/plugins.js';
import type { WorkspaceRow } from '../db/workspaces.js';
import { PLUGIN_REQUEST_LOST_AFTER_MS } from '../domain/plugin-start.js';
import { PLUGINS_MAX_BYTES, PLUGINS_PER_WORKSPACE_MAX } from '../domain/quotas.js';
import { PluginRejected, validatePluginArchive } from '../plugins/archive.js';
import type { PluginCatalog } from '../plugins/catalog.js';
import { PLUGIN_NAME, type PluginPackage } from '../plugins/schema.js';
import { newId } from '../security/tokens.js';
import {
  AppError,
  conflicting,
  invalid,
  missing,
  quotaExceeded,
  requireWorkerFor,
  temporalDown,
} from './errors.js';

export interface PluginDeps {
  /** A pool: a request is recorded in a transaction of its own. */
  db: pg.Pool;
  /** Absent: installs and uninstalls are refused as unavailable. */
  plugins?: PluginWorkflows;
  log: Pick<Logger, 'warn'>;
  settings: { plugins?: PluginCatalog; pluginsPerWorkspaceMax?: number; pluginsMaxBytes?: number };
}

/** A catalog plugin (`local://<name>`) or an uploaded archive, with the sha256 the caller expects. */
export interface InstallInput {
  source: string | { tarGzBase64: string };
  sha256?: string;
}

const beingDeleted = (w: WorkspaceRow) => conflicting(`workspace ${w.id} is being deleted`);
const inProgress = (name: string) => conflicting(`plugin ${name}: an install or uninstall is in progress`);

export const listInstalled = (deps: PluginDeps, w: WorkspaceRow) => plugins.listPlugins(deps.db, w.id);

function workflows(deps: PluginDeps): PluginWorkflows {
  if (!deps.plugins) {
    throw new AppError('unavailable', 'temporal_unavailable', 'plugin workflows are not available', {
      retryAfterSeconds: 5,
    });
  }
  return deps.plugins;
}

/**
 * Records a request and starts its workflow; a refusal (503, 409) changes nothing. Nothing is
 * written until a worker is known to poll the task queue (under the request's deadline), and a
 * start that fails puts back exactly the row the request replaced. A start whose answer was lost
 * may still land, now or later: its run carries the request id, finds another on the row and ends
 * `superseded` without writing (deliverPlugin); while it runs, the plugin's one workflow id refuses
 * a new request (409), so nothing installs twice. Left open: what read the row while the request
 * stood (a run already past that check, an agent's bundle fetch) may put its files in the
 * workspace; the row stays the truth, and the next start rebuilds the folder from it. If that run
 * already settled the request, the request was carried out: 202.
 */
async function carryOut(
  deps: PluginDeps,
  w: WorkspaceRow,
  name: string,
  action: 'install' | 'uninstall',
  record: () => Promise<plugins.RecordedRequest | null>,
): Promise<plugins.WorkspacePlugin> {
  const wf = workflows(deps);
  const deadline = wf.deadline();
  await requireWorkerFor(() => wf.requireWorker(deadline), 'nothing was changed');
  const recorded = await record();
  if (!recorded) throw await inFlight(deps, wf, w, name, deadline);
  const { row } = recorded;
  try {
    await wf.start({ workspaceId: w.id, name, action, requestId: row.requestId }, deadline);
    return row;
  } catch (err) {
    if (!(await plugins.restorePlugin(deps.db, row, recorded.replaced))) return row;
    if (err instanceof PluginWorkflowBusy) throw conflicting(`plugin ${name}: an operation is in progress`);
    deps.log.warn({ err, workspaceId: w.id, plugin: name }, 'plugin workflow start failed');
    throw temporalDown('workflow service unavailable; nothing was changed');
  }
}

/**
 * The 409 for a request that finds another in flight. That one may be lost: recorded by an API
 * that stopped before starting its run, it would hold the plugin for good. Found here (in flight
 * past PLUGIN_REQUEST_LOST_AFTER_MS), its run is started now, so it settles and the plugin is free
 * again; the orphan sweep does the same for a plugin nobody asks about.
 */
async function inFlight(
  deps: PluginDeps,
  wf: PluginWorkflows,
  w: WorkspaceRow,
  name: string,
  deadline: number,
): Promise<AppError> {
  try {
    const [lost] = await plugins.staleRequests(deps.db, PLUGIN_REQUEST_LOST_AFTER_MS, {
      limit: 1,
      workspaceId: w.id,
      name,
    });
    if (lost && (await wf.resume(lost, deadline)) === 'resumed') {
      deps.log.warn(
        { workspaceId: w.id, plugin: name, requestId: lost.requestId },
        'lost plugin request resumed',
      );
      return conflicting(
        `plugin ${name}: an earlier ${lost.action} request was left unstarted and has been resumed; try again once it settles`,
      );
    }
  } catch (err) {
    // The 409 stands either way; the orphan sweep tries the lost request again.
    deps.log.warn({ err, workspaceId: w.id, plugin: name }, 'lost plugin request not resumed');
  }
  return inProgress(name);
}

/** The package a source names: from the catalog, or an uploaded archive checked whole. */
async function packageOf(
  deps: PluginDeps,
  body: InstallInput,
): Promise<{ pkg: PluginPackage; source: string }> {
  try {
    if (typeof body.source === 'string') {
      const name = body.source.slice('local://'.length);
      const catalog = deps.settings.plugins ?? {};
      if (!Object.hasOwn(catalog, name)) throw invalid(`source: no plugin ${name} in the catalog`, 'source');
      const pkg = catalog[name]!;
      if (body.sha256 && body.sha256.toLowerCase() !== pkg.sha256) {
        throw invalid(`sha256: plugin ${name} has sha256 ${pkg.sha256}, not ${body.sha256}`, 'sha256');
      }
      return { pkg, source: body.source };
    }
    return { pkg: await validatePluginArchive(body.source.tarGzBase64, body.sha256), source: 'upload' };
  } catch (err) {
    if (err instanceof PluginRejected) throw invalid(err.message, err.field);
    throw err;
  }
}

export async function install(
  deps: PluginDeps,
  w: WorkspaceRow,
  body: InstallInput,
): Promise<plugins.WorkspacePlugin> {
  if (w.status === 'deleting') throw beingDeleted(w);
  const { pkg, source } = await packageOf(deps, body);
  if (!PLUGIN_NAME.test(pkg.name)) throw invalid('source: the plugin name is not valid', 'source');
  const quota = {
    count: deps.settings.pluginsPerWorkspaceMax ?? PLUGINS_PER_WORKSPACE_MAX,
    bytes: deps.settings.pluginsMaxBytes ?? PLUGINS_MAX_BYTES,
  };
  return carryOut(deps, w, pkg.name, 'install', async () => {
    try {
      return await plugins.requestInstall(
        deps.db,
        {
          workspaceId: w.id,
          name: pkg.name,
          version: pkg.version,
          sha256: pkg.sha256,
          source,
          files: pkg.files,
          requestId: newId(),
        },
        quota,
      );
    } catch (err) {
      if (err instanceof plugins.PluginQuotaExceeded)
        throw quotaExceeded(`${err.message}; uninstall one first`);
      throw err;
    }
  });
}

export async function uninstall(
  deps: PluginDeps,
  w: WorkspaceRow,
  name: string,
): Promise<plugins.WorkspacePlugin> {
  if (!PLUGIN_NAME.test(name)) throw missing('plugin');
  if (w.status === 'deleting') throw beingDeleted(w);
  const existing = await plugins.getPlugin(deps.db, w.id, name);
  if (!existing) throw missing('plugin');
  return carryOut(deps, w, name, 'uninstall', () => plugins.requestUninstall(deps.db, w.id, name, newId()));
}
