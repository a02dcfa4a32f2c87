/**
 * Plugins: the catalog (`GET /v1/plugins`) and a workspace's plugin set. An install is validated
 * whole here (manifest, sha256, size, every archive entry) before anything is stored or delivered;
 * a refusal is a 400 naming the field, and the workspace is untouched. Accepted requests are
 * carried out by the plugin workflow (`workspace:<id>:plugin:<name>`), hence 202.
 */
import express, { Router } from 'express';
import { z } from 'zod';
import * as app from '../../app/plugins.js';
import { PLUGIN_MAX_ARCHIVE_BYTES } from '../../plugins/schema.js';
import { orgScope, principalOf } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { parse } from '../errors.js';
import { presentPlugin } from '../present.js';
import { MANAGE, MANAGE_LIVE, loadsWorkspace, workspaceOf } from '../workspace-param.js';

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

  r.get('/:id/plugins', async (_req, res) => {
    // Served for a deleted workspace too, as its other reads are.
    const w = workspaceOf(res, MANAGE);
    res.json({ items: (await app.listInstalled(deps, w)).map(presentPlugin) });
  });

  r.post('/:id/plugins', json, async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    const body = parse(installPluginBody, req.body);
    res.status(202).json(presentPlugin(await app.install(deps, w, body)));
  });

  r.delete('/:id/plugins/:name', async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    res.status(202).json(presentPlugin(await app.uninstall(deps, w, String(req.params.name))));
  });

  return r;
}
