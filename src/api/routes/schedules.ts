/**
 * Workspace schedules (`/v1/workspaces/:id/schedules`): a cron (or `@every`) and a prompt that is
 * sent to the workspace's agent as `message/send` at each firing, through the A2A proxy's path.
 * The use cases, and how the row and its Temporal mirror stay one, are in src/app/schedules.ts.
 */
import { Router } from 'express';
import { z } from 'zod';
import * as schedules from '../../app/schedules.js';
import { CRON_MAX_CHARS, TIMEZONE_MAX_CHARS } from '../../schedules/spec.js';
import type { ApiDeps } from '../deps.js';
import { parse } from '../errors.js';
import { presentSchedule } from '../present.js';
import { text } from '../schemas.js';
import { MANAGE, MANAGE_LIVE, loadsWorkspace, workspaceOf } from '../workspace-param.js';

/** Longest prompt (characters). */
export const PROMPT_MAX_CHARS = 8000;

const prompt = text({ min: 1, max: PROMPT_MAX_CHARS }).refine(
  (s) => s.trim().length > 0,
  'must not be blank',
);

export const createScheduleBody = z.strictObject({
  cron: text({ min: 1, max: CRON_MAX_CHARS }),
  timezone: text({ min: 1, max: TIMEZONE_MAX_CHARS }).optional(),
  prompt,
  enabled: z.boolean().optional(),
});

export const patchScheduleBody = z
  .strictObject({
    cron: text({ min: 1, max: CRON_MAX_CHARS }).optional(),
    timezone: text({ min: 1, max: TIMEZONE_MAX_CHARS }).optional(),
    prompt: prompt.optional(),
    enabled: z.boolean().optional(),
  })
  .refine((b) => Object.keys(b).length > 0, 'nothing to change');

export function schedulesRouter(deps: ApiDeps): Router {
  const r = loadsWorkspace(Router(), deps.db);

  r.get('/:id/schedules', async (_req, res) => {
    // Served for a deleted workspace too (empty: its schedules went with it), as its other reads are.
    const w = workspaceOf(res, MANAGE);
    const items = await schedules.listWithMirrors(deps, w);
    res.json({ items: items.map((s) => presentSchedule(s.row, s.mirror)) });
  });

  r.post('/:id/schedules', async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    const body = parse(createScheduleBody, req.body);
    res.status(201).json(presentSchedule(await schedules.createSchedule(deps, w, body)));
  });

  r.get('/:id/schedules/:sid', async (req, res) => {
    const w = workspaceOf(res, MANAGE);
    res.json(presentSchedule(await schedules.findSchedule(deps, w, req.params.sid)));
  });

  r.patch('/:id/schedules/:sid', async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    // An unknown schedule is a 404 before its body is read.
    const before = await schedules.findSchedule(deps, w, req.params.sid);
    const body = parse(patchScheduleBody, req.body);
    res.json(presentSchedule(await schedules.patchSchedule(deps, w, before, body)));
  });

  r.delete('/:id/schedules/:sid', async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    await schedules.removeSchedule(deps, w, req.params.sid);
    res.status(204).end();
  });

  r.post('/:id/schedules/:sid/run', async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    const s = await schedules.runNow(deps, w, req.params.sid);
    res.status(202).json({ id: s.id, triggered: true });
  });

  return r;
}
