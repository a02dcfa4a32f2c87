import { Router } from 'express';
import { z } from 'zod';
import { deleteSecret, listSecretKeys, putSecret } from '../../db/secrets.js';
import { getOrg } from '../../db/orgs.js';
import { principalOf, requireAdmin } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { badRequest, notFound, parse } from '../errors.js';
import { idSchema, SECRET_KEY_PATTERN, text } from '../schemas.js';
import { MANAGE_LIVE, loadsWorkspace, workspaceOf } from '../workspace-param.js';

const secretBody = z.object({ value: text({ min: 1, max: 65536 }) });

function secretKey(raw: string): string {
  if (!SECRET_KEY_PATTERN.test(raw)) throw badRequest('key: must match [A-Z_][A-Z0-9_]{0,127}', 'key');
  return raw;
}

/** Secrets: write-only values (never returned), delivered to the agent at its next (re)start. */
export function secretsRouter(deps: ApiDeps): Router {
  const r = loadsWorkspace(Router({ mergeParams: true }), deps.db);

  r.get('/:id/secrets', async (req, res) => {
    const { id } = workspaceOf(res, MANAGE_LIVE);
    const items = await listSecretKeys(deps.db, { workspaceId: id });
    res.json({ items: items.map((s) => ({ key: s.key, updatedAt: s.updatedAt.toISOString() })) });
  });

  r.put('/:id/secrets/:key', async (req, res) => {
    const { id } = workspaceOf(res, MANAGE_LIVE);
    const body = parse(secretBody, req.body);
    await putSecret(deps.db, deps.secrets, { workspaceId: id }, secretKey(req.params.key), body.value);
    res.status(204).end();
  });

  r.delete('/:id/secrets/:key', async (req, res) => {
    const { id } = workspaceOf(res, MANAGE_LIVE);
    if (!(await deleteSecret(deps.db, { workspaceId: id }, secretKey(req.params.key))))
      throw notFound('secret');
    res.status(204).end();
  });

  return r;
}

/**
 * Org-wide default secrets (`/v1/orgs/:id/secrets`), admin only like the rest of `/v1/orgs`: same
 * shapes as a workspace's; a workspace secret of the same key overrides one at delivery.
 */
export function orgSecretsRouter(deps: ApiDeps): Router {
  const r = Router({ mergeParams: true });

  async function orgId(res: Parameters<typeof principalOf>[0], id: string): Promise<string> {
    requireAdmin(principalOf(res));
    const org = idSchema.safeParse(id).success ? await getOrg(deps.db, id) : null;
    if (!org) throw notFound('org');
    return org.id;
  }

  r.get('/:id/secrets', async (req, res) => {
    const id = await orgId(res, req.params.id);
    const items = await listSecretKeys(deps.db, { orgId: id });
    res.json({ items: items.map((s) => ({ key: s.key, updatedAt: s.updatedAt.toISOString() })) });
  });

  r.put('/:id/secrets/:key', async (req, res) => {
    const id = await orgId(res, req.params.id);
    const body = parse(secretBody, req.body);
    await putSecret(deps.db, deps.secrets, { orgId: id }, secretKey(req.params.key), body.value);
    res.status(204).end();
  });

  r.delete('/:id/secrets/:key', async (req, res) => {
    const id = await orgId(res, req.params.id);
    if (!(await deleteSecret(deps.db, { orgId: id }, secretKey(req.params.key)))) throw notFound('secret');
    res.status(204).end();
  });

  return r;
}
