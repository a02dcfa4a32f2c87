import { Router } from 'express';
import { z } from 'zod';
import { deleteSecret, listSecretKeys, putSecret } from '../../db/secrets.js';
import { getWorkspace } from '../../db/workspaces.js';
import { orgScope, principalOf } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { badRequest, notFound, parse } from '../errors.js';
import { SECRET_KEY_PATTERN, text, workspaceIdParam } from '../schemas.js';

const secretBody = z.object({ value: text({ min: 1, max: 65536 }) });

/** Secrets: write-only values (never returned), delivered to the agent at its next (re)start. */
export function secretsRouter(deps: ApiDeps): Router {
  const r = Router({ mergeParams: true });

  async function workspaceId(res: Parameters<typeof principalOf>[0], id: string): Promise<string> {
    const scope = orgScope(principalOf(res));
    const w = workspaceIdParam.safeParse(id).success ? await getWorkspace(deps.db, id, scope) : null;
    if (!w || w.status === 'deleted') throw notFound();
    return w.id;
  }

  function key(raw: string): string {
    if (!SECRET_KEY_PATTERN.test(raw)) throw badRequest('key: must match [A-Z_][A-Z0-9_]{0,127}', 'key');
    return raw;
  }

  r.get('/:id/secrets', async (req, res) => {
    const id = await workspaceId(res, req.params.id);
    const items = await listSecretKeys(deps.db, id);
    res.json({ items: items.map((s) => ({ key: s.key, updatedAt: s.updatedAt.toISOString() })) });
  });

  r.put('/:id/secrets/:key', async (req, res) => {
    const id = await workspaceId(res, req.params.id);
    const body = parse(secretBody, req.body);
    await putSecret(deps.db, deps.secrets, id, key(req.params.key), body.value);
    res.status(204).end();
  });

  r.delete('/:id/secrets/:key', async (req, res) => {
    const id = await workspaceId(res, req.params.id);
    if (!(await deleteSecret(deps.db, id, key(req.params.key)))) throw notFound('secret');
    res.status(204).end();
  });

  return r;
}
