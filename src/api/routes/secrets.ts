import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import * as secrets from '../../app/secrets.js';
import type { SecretOwner } from '../../app/secrets.js';
import { refuseWhileDeleting } from '../../app/errors.js';
import { getOrg } from '../../db/orgs.js';
import { principalOf, requireAdmin } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { badRequest, notFound, parse } from '../errors.js';
import { idSchema, SECRET_KEY_PATTERN, text } from '../schemas.js';
import { MANAGE, MANAGE_LIVE, loadsWorkspace, workspaceOf } from '../workspace-param.js';

export const secretBody = z.strictObject({ value: text({ min: 1, max: 65536 }) });

function secretKey(raw: string): string {
  if (!SECRET_KEY_PATTERN.test(raw)) throw badRequest('key: must match [A-Z_][A-Z0-9_]{0,127}', 'key');
  return raw;
}

/** The three secret routes, for whichever owner `ownerOf` names (a workspace, an org). */
function secretRoutes(
  r: Router,
  deps: ApiDeps,
  ownerOf: (req: Request, res: Response) => SecretOwner | Promise<SecretOwner>,
): Router {
  r.get('/:id/secrets', async (req, res) => {
    const items = await secrets.listKeys(deps.db, await ownerOf(req, res));
    res.json({ items: items.map((s) => ({ key: s.key, updatedAt: s.updatedAt.toISOString() })) });
  });

  r.put('/:id/secrets/:key', async (req, res) => {
    const owner = await ownerOf(req, res);
    // The path before the body: with both wrong, the 400 names the key.
    const key = secretKey(req.params.key as string);
    const body = parse(secretBody, req.body);
    await secrets.setSecret(deps, owner, key, body.value);
    res.status(204).end();
  });

  r.delete('/:id/secrets/:key', async (req, res) => {
    const owner = await ownerOf(req, res);
    await secrets.removeSecret(deps, owner, secretKey(req.params.key as string));
    res.status(204).end();
  });

  return r;
}

/** Secrets: write-only values (never returned), delivered to the agent at its next (re)start. */
export function secretsRouter(deps: ApiDeps): Router {
  const r = loadsWorkspace(Router({ mergeParams: true }), deps.db);
  return secretRoutes(r, deps, (req, res) => {
    // Reads are served for a deleted workspace too (as its record, activity and boot log are: an
    // empty list once its secrets are dropped); changes answer 404.
    const read = req.method === 'GET';
    const w = workspaceOf(res, read ? MANAGE : MANAGE_LIVE);
    if (!read) refuseWhileDeleting(w);
    return { workspaceId: w.id };
  });
}

/**
 * Org-wide default secrets (`/v1/orgs/:id/secrets`), admin only like the rest of `/v1/orgs`: same
 * shapes as a workspace's; a workspace secret of the same key overrides one at delivery.
 */
export function orgSecretsRouter(deps: ApiDeps): Router {
  return secretRoutes(Router({ mergeParams: true }), deps, async (req, res) => {
    requireAdmin(principalOf(res));
    const id = req.params.id as string;
    const org = idSchema.safeParse(id).success ? await getOrg(deps.db, id) : null;
    if (!org) throw notFound('org');
    return { orgId: org.id };
  });
}
