/**
 * A workspace's budget (`/v1/workspaces/:id/budget`): its limit, set here or at create, and what
 * its agents reported spending (heartbeat `spentCents`). At the limit the A2A proxy answers 402
 * and the `sweep:budget` Schedule stops the workspace (BUDGET_POLICY).
 */
import { Router, type Response } from 'express';
import { z } from 'zod';
import { budgetOf, setBudgetLimit } from '../../db/budget.js';
import { getWorkspace } from '../../db/workspaces.js';
import { orgScope, principalOf } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { HttpError, badRequest, notFound, parse } from '../errors.js';
import { int4, workspaceIdParam } from '../schemas.js';

export const budgetBody = z.strictObject({
  limitCents: int4().nullable().optional(),
});

export function budgetRouter(deps: ApiDeps): Router {
  const { db } = deps;
  const r = Router();

  /** Org key or admin; a workspace token may read its own budget only. */
  async function load(res: Response, rawId: string, write: boolean) {
    const p = principalOf(res);
    if (!workspaceIdParam.safeParse(rawId).success) throw notFound();
    let orgId: string | null;
    if (p.kind === 'workspace' && !write) {
      if (p.workspaceId !== rawId) throw notFound();
      orgId = null;
    } else if (p.kind === 'workspace') {
      throw new HttpError(403, 'forbidden', 'a workspace cannot change its own budget');
    } else orgId = orgScope(p);
    const w = await getWorkspace(db, rawId, orgId);
    if (!w || (write && w.status === 'deleted')) throw notFound();
    return w;
  }

  const answer = async (res: Response, id: string) => {
    const b = await budgetOf(db, id);
    if (!b) throw notFound();
    res.json({ limitCents: b.limitCents, spentCents: b.spentCents });
  };

  r.get('/:id/budget', async (req, res) => {
    const w = await load(res, req.params.id, false);
    await answer(res, w.id);
  });

  r.patch('/:id/budget', async (req, res) => {
    const w = await load(res, req.params.id, true);
    const body = parse(budgetBody, req.body);
    if (body.limitCents === undefined) {
      throw badRequest('limitCents: required (an integer of cents, or null for no limit)', 'limitCents');
    }
    await setBudgetLimit(db, w.id, body.limitCents);
    await answer(res, w.id);
  });

  return r;
}
