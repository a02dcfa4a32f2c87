import { Router } from 'express';
import { createOrg, forgetApiKeys, getOrg, listOrgs, markOrgDeleted } from '../../db/orgs.js';
import { inTransaction } from '../../db/queryable.js';
import { requireWorkerOrRefuse } from '../../app/workspaces.js';
import { principalOf, requireAdmin } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { sweepControl } from '../sweeps.js';
import { notFound, parse } from '../errors.js';
import { decodeIdCursor, encodeIdCursor } from '../id-cursor.js';
import { createOrgBody, idSchema, orgListQuery } from '../schemas.js';

const present = (o: { id: string; name: string; createdAt: Date }) => ({
  id: o.id,
  name: o.name,
  createdAt: o.createdAt.toISOString(),
});

export function orgsRouter(deps: ApiDeps): Router {
  const r = Router();
  r.post('/', async (req, res) => {
    requireAdmin(principalOf(res));
    const body = parse(createOrgBody, req.body);
    const { org, apiKey } = await createOrg(deps.db, body.name);
    res.status(201).json({ id: org.id, name: org.name, apiKey });
  });

  r.get('/', async (req, res) => {
    requireAdmin(principalOf(res));
    const q = parse(orgListQuery, req.query, 'query');
    const page = await listOrgs(deps.db, {
      ...(q.limit !== undefined ? { limit: q.limit } : {}),
      ...(q.cursor ? { afterId: decodeIdCursor('org', q.cursor) } : {}),
    });
    const last = page.items[page.items.length - 1];
    res.json({
      items: page.items.map(present),
      nextCursor: page.more && last ? encodeIdCursor('org', last.id) : null,
    });
  });

  r.get('/:id', async (req, res) => {
    requireAdmin(principalOf(res));
    const org = idSchema.safeParse(req.params.id).success ? await getOrg(deps.db, req.params.id) : null;
    if (!org) throw notFound('org');
    res.json(present(org));
  });

  /**
   * Marks the org deleted and drops its keys (one transaction: they fail at once), then starts the
   * cascade. Deleting a deleted org starts the cascade again (idempotent), in case a first start
   * never reached Temporal.
   */
  r.delete('/:id', async (req, res) => {
    requireAdmin(principalOf(res));
    const id = req.params.id;
    if (!idSchema.safeParse(id).success) throw notFound('org');
    // No worker to run the cascade: 503 with the org untouched (its keys still work), as for a create.
    await requireWorkerOrRefuse(deps, 'the org was not deleted');
    const outcome = await inTransaction(deps.db, (tx) => markOrgDeleted(tx, id));
    // Committed: no cached lookup may still hold one of its keys.
    forgetApiKeys();
    if (outcome === 'missing') throw notFound('org');
    const workflowId = await sweepControl(deps).startOrgDelete(id);
    res.status(202).json({ accepted: true, id, workflowId });
  });
  return r;
}
