import { Router } from 'express';
import { principalOf, requireAdmin } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { sweepControl } from '../sweeps.js';
import { HttpError } from '../errors.js';

/** Operator entry points of the sweeps (admin only). */
export function sweepsRouter(deps: ApiDeps): Router {
  const r = Router();
  r.get('/', async (_req, res) => {
    requireAdmin(principalOf(res));
    res.json({ items: await sweepControl(deps).list() });
  });

  r.post('/:name/run', async (req, res) => {
    requireAdmin(principalOf(res));
    const name = req.params.name;
    if (!sweepControl(deps).isSweep(name)) throw new HttpError(404, 'not_found', `no sweep named "${name}"`);
    res.json(await sweepControl(deps).run(name));
  });
  return r;
}
