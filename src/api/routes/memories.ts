/**
 * Memories of a workspace (`/v1/workspaces/:id/memories`): paged newest first, filtered by scope,
 * redacted before storage with the one redaction function (`redactorFor`). An org key manages its
 * workspaces' memories; a workspace token (the agent) its own workspace's only.
 */
import { Router } from 'express';
import { z } from 'zod';
import { forget, listPage, remember } from '../../app/memories.js';
import { refuseWhileDeleting } from '../../app/errors.js';
import type { ApiDeps } from '../deps.js';
import { notFound, parse } from '../errors.js';
import { presentMemory } from '../present.js';
import { decodeMemoryCursor, encodeMemoryCursor } from '../memory-cursor.js';
import { idSchema, queryInt, text } from '../schemas.js';
import { loadsWorkspace, readOwn, writeOwn, workspaceOf } from '../workspace-param.js';

/** A deleted workspace's memories can still be read, not changed. */
const READ = readOwn('this token cannot use memories');
const WRITE = writeOwn('this token cannot use memories');

/** Largest memory, in characters (the create body's `initialMemories` share it). */
export const MEMORY_MAX_CHARS = 10_000;
/** Same shape as the create body's `initialMemories[].scope`. */
const scope = text({ min: 1, max: 32 });

export const memoryBody = z.strictObject({
  content: text({ min: 1, max: MEMORY_MAX_CHARS }),
  scope: scope.optional(),
});

export const memoryListQuery = z.object({
  limit: queryInt(1, 500).default(50),
  cursor: z.string().max(200).optional(),
  scope: scope.optional(),
});

export function memoriesRouter(deps: ApiDeps): Router {
  const { db } = deps;
  const r = loadsWorkspace(Router(), db);

  r.get('/:id/memories', async (req, res) => {
    const w = workspaceOf(res, READ);
    const q = parse(memoryListQuery, req.query, 'query');
    const page = await listPage(deps, w.id, {
      limit: q.limit,
      scope: q.scope,
      after: q.cursor ? decodeMemoryCursor(q.cursor) : undefined,
    });
    res.json({
      items: page.items.map(presentMemory),
      nextCursor: page.next ? encodeMemoryCursor(page.next) : null,
    });
  });

  r.post('/:id/memories', async (req, res) => {
    const w = workspaceOf(res, WRITE);
    refuseWhileDeleting(w);
    const body = parse(memoryBody, req.body);
    res.status(201).json(presentMemory(await remember(deps, w.id, body)));
  });

  r.delete('/:id/memories/:memoryId', async (req, res) => {
    const w = workspaceOf(res, WRITE);
    const memoryId = req.params.memoryId;
    if (!idSchema.safeParse(memoryId).success) throw notFound('memory');
    await forget(deps, w.id, memoryId);
    res.status(204).end();
  });

  return r;
}
