/**
 * Plugins: the catalog (`GET /v1/plugins`) and a workspace's plugin set. An install is validated
 * whole here (manifest, sha256, size, every archive entry) before anything is stored or delivered;
 * a refusal is a 400 naming the field, and the workspace is untouched. Accepted requests are
 * carried out by the plugin workflow (`workspace:<id>:plugin:<name>`), hence 202.
 */
import express, { Router } from 'express';
import { z } from 'zod';
import * as plugins from '../../db/plugins.js';
import { PluginRejected, validatePluginArchive } from '../../plugins/archive.js';
import { PLUGIN_MAX_ARCHIVE_BYTES, PLUGIN_NAME, type PluginPackage } from '../../plugins/schema.js';
import { newId } from '../../security/tokens.js';
import { orgScope, principalOf } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { HttpError, badRequest, conflict, notFound, parse } from '../errors.js';
import { PluginWorkflowBusy } from '../plugin-workflows.js';
import { MANAGE_LIVE, loadsWorkspace, workspaceOf } from '../workspace-param.js';

// base64 of the largest archive, plus the JSON around it.
const BODY_LIMIT = Math.ceil((PLUGIN_MAX_ARCHIVE_BYTES * 4) / 3) + 64 * 1024;

export const installPluginBody = z
  .object({
    source: z.union([
      z.string().regex(/^local:\/\/[a-z0-9][a-z0-9-]{0,63}$/, 'must be local://<name> or {tarGzBase64}'),
      z.object({ tarGzBase64: z.string().min(1) }).strict(),
    ]),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits')
      .optional(),
  })
  .strict();

const present = (p: plugins.WorkspacePlugin) => ({
  name: p.name,
  version: p.version,
  status: p.status,
  ...(p.installedAt ? { installedAt: p.installedAt.toISOString() } : {}),
  ...(p.reason ? { reason: p.reason } : {}),
  sha256: p.sha256,
  source: p.source,
});

export function pluginCatalogRouter(deps: ApiDeps): Router {
  const r = Router();
  r.get('/', (_req, res) => {
    orgScope(principalOf(res));
    const catalog = deps.settings.plugins ?? {};
    const items = Object.keys(catalog)
      .sort()
      .map((name) => {
        const p = catalog[name]!;
        return {
          name,
          version: p.version,
          ...(p.description ? { description: p.description } : {}),
          source: `local://${name}`,
          sha256: p.sha256,
        };
      });
    res.json({ items });
  });
  return r;
}

export function workspacePluginsRouter(deps: ApiDeps): Router {
  const r = loadsWorkspace(Router(), deps.db);
  const json = express.json({ limit: BODY_LIMIT });

  function workflows() {
    if (!deps.plugins) {
      throw new HttpError(503, 'temporal_unavailable', 'plugin workflows are not available', {
        retryAfterSeconds: 5,
      });
    }
    return deps.plugins;
  }

  /** Starts the request's workflow; if that fails, the request is marked failed (not stuck). */
  async function run(w: { id: string }, p: plugins.WorkspacePlugin, action: 'install' | 'uninstall') {
    try {
      await workflows().start({ workspaceId: w.id, name: p.name, action, requestId: p.requestId });
    } catch (err) {
      await plugins.settlePlugin(deps.db, w.id, p.name, p.requestId, {
        kind: 'failed',
        reason: `the ${action} could not be started`,
      });
      if (err instanceof PluginWorkflowBusy) throw conflict(`plugin ${p.name}: an operation is in progress`);
      deps.log.warn({ err, workspaceId: w.id, plugin: p.name }, 'plugin workflow start failed');
      throw new HttpError(503, 'temporal_unavailable', 'workflow service unavailable', {
        retryAfterSeconds: 5,
      });
    }
  }

  r.get('/:id/plugins', async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    res.json({ items: (await plugins.listPlugins(deps.db, w.id)).map(present) });
  });

  r.post('/:id/plugins', json, async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    const body = parse(installPluginBody, req.body);
    if (w.status === 'deleting') throw conflict(`workspace ${w.id} is being deleted`);
    let pkg: PluginPackage;
    let source: string;
    try {
      if (typeof body.source === 'string') {
        const name = body.source.slice('local://'.length);
        const catalog = deps.settings.plugins ?? {};
        if (!Object.hasOwn(catalog, name))
          throw badRequest(`source: no plugin ${name} in the catalog`, 'source');
        pkg = catalog[name]!;
        if (body.sha256 && body.sha256.toLowerCase() !== pkg.sha256) {
          throw badRequest(`sha256: plugin ${name} has sha256 ${pkg.sha256}, not ${body.sha256}`, 'sha256');
        }
        source = body.source;
      } else {
        pkg = await validatePluginArchive(body.source.tarGzBase64, body.sha256);
        source = 'upload';
      }
    } catch (err) {
      if (err instanceof PluginRejected) throw badRequest(err.message, err.field);
      throw err;
    }
    if (!PLUGIN_NAME.test(pkg.name)) throw badRequest('source: the plugin name is not valid', 'source');
    const row = await plugins.requestInstall(deps.db, {
      workspaceId: w.id,
      name: pkg.name,
      version: pkg.version,
      sha256: pkg.sha256,
      source,
      files: pkg.files,
      requestId: newId(),
    });
    if (!row) throw conflict(`plugin ${pkg.name}: an install or uninstall is in progress`);
    await run(w, row, 'install');
    res.status(202).json(present(row));
  });

  r.delete('/:id/plugins/:name', async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    const name = String(req.params.name);
    if (!PLUGIN_NAME.test(name)) throw notFound('plugin');
    if (w.status === 'deleting') throw conflict(`workspace ${w.id} is being deleted`);
    const existing = await plugins.getPlugin(deps.db, w.id, name);
    if (!existing) throw notFound('plugin');
    const row = await plugins.requestUninstall(deps.db, w.id, name, newId());
    if (!row) throw conflict(`plugin ${name}: an install or uninstall is in progress`);
    await run(w, row, 'uninstall');
    res.status(202).json(present(row));
  });

  return r;
}
