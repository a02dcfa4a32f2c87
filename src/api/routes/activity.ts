/**
 * Activity log and chat history (`/v1/workspaces/:id/activity`, `/chat-history`).
 *
 * Paging: items are newest first, ordered by (ts, id) descending; `ts` is ISO-8601 UTC with
 * microseconds (the column's precision). `nextBeforeTs` is the `ts` of the page's last item, and
 * `before_ts` returns only rows strictly older. A page never ends inside a group of rows sharing one
 * timestamp (it is cut short before the group instead), so following `nextBeforeTs` returns every row
 * exactly once. `nextBeforeTs` is null on the last page.
 */
import { Router } from 'express';
import { z } from 'zod';
import { activityLog, chatHistory } from '../../app/activity.js';
import { ACTIVITY_TYPES } from '../../db/activity.js';
import type { ApiDeps } from '../deps.js';
import { parse } from '../errors.js';
import { presentActivity, presentTurn } from '../present.js';
import { isoTimestamp, queryInt, workspaceIdParam } from '../schemas.js';
import { loadsWorkspace, readOwn, workspaceOf } from '../workspace-param.js';

/** Org key or admin; a workspace token reads its own log only. */
const ACTIVITY = readOwn('this token cannot read activity');

const limit = (max: number, dflt: number) => queryInt(1, max).default(dflt);

export const activityQuery = z.object({
  limit: limit(500, 50),
  before_ts: isoTimestamp.optional(),
  peer_id: workspaceIdParam.optional(),
  // A type no row can have is a mistake in the query, not an empty log.
  type: z.enum(ACTIVITY_TYPES).optional(),
});

export const chatQuery = z.object({
  peer_id: workspaceIdParam,
  limit: limit(500, 50),
  before_ts: isoTimestamp.optional(),
});

export function activityRouter(deps: ApiDeps): Router {
  const { db } = deps;
  const r = loadsWorkspace(Router(), db);

  r.get('/:id/activity', async (req, res) => {
    const w = workspaceOf(res, ACTIVITY);
    const q = parse(activityQuery, req.query, 'query');
    const page = await activityLog(db, w.id, {
      limit: q.limit,
      beforeTs: q.before_ts,
      peerId: q.peer_id,
      type: q.type,
    });
    res.json({ items: page.items.map(presentActivity), nextBeforeTs: page.nextBeforeTs });
  });

  r.get('/:id/chat-history', async (req, res) => {
    const w = workspaceOf(res, ACTIVITY);
    const q = parse(chatQuery, req.query, 'query');
    const page = await chatHistory(db, w.id, { peerId: q.peer_id, limit: q.limit, beforeTs: q.before_ts });
    res.json({ items: page.items.map(presentTurn), nextBeforeTs: page.nextBeforeTs });
  });

  return r;
}
