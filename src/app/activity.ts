/**
 * Activity use cases: a workspace's activity log, and its chat history with one peer (the A2A
 * calls between them, with their redacted excerpts). Both page newest first by `before_ts`.
 */
import { listActivity, type ActivityRow } from '../db/activity.js';
import type { Queryable } from '../db/queryable.js';

export interface ActivityPage {
  items: ActivityRow[];
  /** The `before_ts` of the next page; null on the last. */
  nextBeforeTs: string | null;
}

export function activityLog(
  db: Queryable,
  workspaceId: string,
  q: { limit: number; beforeTs?: string; peerId?: string; type?: string },
): Promise<ActivityPage> {
  return listActivity(db, { workspaceId, ...q });
}

export function chatHistory(
  db: Queryable,
  workspaceId: string,
  q: { peerId: string; limit: number; beforeTs?: string },
): Promise<ActivityPage> {
  return listActivity(db, { workspaceId, ...q, type: 'a2a' });
}
