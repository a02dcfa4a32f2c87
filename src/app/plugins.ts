/**
 * A workspace's plugin set. An install is validated whole (manifest, sha256, size, every archive
 * entry) before anything is stored or delivered; a refusal names the field and leaves the workspace
 * untouched. Accepted requests are carried out by the plugin workflow (`workspace:<id>:plugin:<name>`).
 */
import type { Logger } from 'pino';
import type { PluginWorkflows } from '../api/plugin-workflows.js';
import { PluginWorkflowBusy } from '../api/plugin-workflows.js';
import * as plugins from '../db/plugins.js';
import type { Queryable } from '../db/queryable.js';
import type { WorkspaceRow } from '../db/workspaces.js';
import { PluginRejected, validatePluginArchive } from '../plugins/archive.js';
import type { PluginCatalog } from '../plugins/catalog.js';
import { PLUGIN_NAME, type PluginPackage } from '../plugins/schema.js';
import { newId } from '../security/tokens.js';
import { AppError, conflicting, invalid, missing, temporalDown } from './errors.js';

export interface PluginDeps {
  db: Queryable;
  /** Absent: installs and uninstalls are refused as unavailable. */
  plugins?: PluginWorkflows;
  log: Pick<Logger, 'warn'>;
  settings: { plugins?: PluginCatalog };
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

/** Starts the request's workflow; if that fails, the request is marked failed (not stuck). */
async function run(
  deps: PluginDeps,
  w: WorkspaceRow,
  p: plugins.WorkspacePlugin,
  action: 'install' | 'uninstall',
): Promise<void> {
  try {
    await workflows(deps).start({ workspaceId: w.id, name: p.name, action, requestId: p.requestId });
  } catch (err) {
    await plugins.settlePlugin(deps.db, w.id, p.name, p.requestId, {
      kind: 'failed',
      reason: `the ${action} could not be started`,
    });
    if (err instanceof PluginWorkflowBusy) throw conflicting(`plugin ${p.name}: an operation is in progress`);
    deps.log.warn({ err, workspaceId: w.id, plugin: p.name }, 'plugin workflow start failed');
    throw temporalDown();
  }
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
  const row = await plugins.requestInstall(deps.db, {
    workspaceId: w.id,
    name: pkg.name,
    version: pkg.version,
    sha256: pkg.sha256,
    source,
    files: pkg.files,
    requestId: newId(),
  });
  if (!row) throw inProgress(pkg.name);
  await run(deps, w, row, 'install');
  return row;
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
  const row = await plugins.requestUninstall(deps.db, w.id, name, newId());
  if (!row) throw inProgress(name);
  await run(deps, w, row, 'uninstall');
  return row;
}
