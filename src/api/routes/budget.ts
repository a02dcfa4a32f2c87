/**
 * A workspace's budget (`/v1/workspaces/:id/budget`): its limit, set here or at create, and what
 * its agents reported spending (heartbeat `spentCents`). At the limit the A2A proxy answers 402
 * and the `sweep:budget` Schedule stops the workspace (BUDGET_POLICY).
 */
import { Router } from 'express';
import { z } from 'zod';
import { getBudget, setLimit } from '../../app/budget.js';
import { refuseWhileDeleting } from '../../app/errors.js';
import type { ApiDeps } from '../deps.js';
import { badRequest, parse } from '../errors.js';
import { presentBudget } from '../present.js';
import { int4 } from '../schemas.js';
import { BUDGET_WRITE, MANAGE, loadsWorkspace, readOwn, workspaceOf } from '../workspace-param.js';

/** Org key or admin; a workspace token may read its own budget only (the id's shape checked first). */
const READ = readOwn(MANAGE.otherToken);

export const budgetBody = z.strictObject({
  limitCents: int4().nullable().optional(),
});

export function budgetRouter(deps: ApiDeps): Router {
  const { db } = deps;
  const r = loadsWorkspace(Router(), db);

  r.get('/:id/budget', async (req, res) => {
    const w = workspaceOf(res, READ);
    res.json(presentBudget(await getBudget(db, w.id)));
  });

  r.patch('/:id/budget', async (req, res) => {
    const w = workspaceOf(res, BUDGET_WRITE);
    refuseWhileDeleting(w);
    const body = parse(budgetBody, req.body);
    if (body.limitCents === undefined) {
      throw badRequest('limitCents: required (an integer of cents, or null for no limit)', 'limitCents');
    }
    res.json(presentBudget(await setLimit(db, w.id, body.limitCents)));
  });

  return r;
}
