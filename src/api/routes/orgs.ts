import { Router } from 'express';
import { createOrg } from '../../db/orgs.js';
import { principalOf, requireAdmin } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { parse } from '../errors.js';
import { createOrgBody } from '../schemas.js';

export function orgsRouter(deps: ApiDeps): Router {
  const r = Router();
  r.post('/', async (req, res) => {
    requireAdmin(principalOf(res));
    const body = parse(createOrgBody, req.body);
    const { org, apiKey } = await createOrg(deps.db, body.name);
    res.status(201).json({ id: org.id, name: org.name, apiKey });
  });
  return r;
}
