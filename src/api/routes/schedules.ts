/**
 * Workspace schedules (`/v1/workspaces/:id/schedules`): a cron (or `@every`) and a prompt that is
 * sent to the workspace's agent as `message/send` at each firing, through the A2A proxy's path.
 *
 * The `schedules` row is the source of truth and its Temporal Schedule a mirror
 * (src/schedules/mirror.ts). A write changes the row, then the mirror; when the mirror cannot be
 * written (Temporal down: 503) the row is put back, so a 503 changed nothing. Reading the list
 * repairs any mirror that is missing or stale (and says when it could not).
 */
import { Router } from 'express';
import { z } from 'zod';
import {
  deleteSchedule,
  getSchedule,
  insertSchedule,
  listSchedules,
  restoreSchedule,
  updateSchedule,
  type ScheduleRow,
} from '../../db/schedules.js';
import type { WorkspaceRow } from '../../db/workspaces.js';
import type { MirrorState, ScheduleMirror } from '../../schedules/mirror.js';
import {
  CRON_MAX_CHARS,
  ScheduleSpecError,
  TIMEZONE_MAX_CHARS,
  parseCron,
  parseTimezone,
} from '../../schedules/spec.js';
import { newId } from '../../security/tokens.js';
import type { ApiDeps } from '../deps.js';
import { HttpError, badRequest, notFound, parse } from '../errors.js';
import { idSchema, text } from '../schemas.js';
import { MANAGE_LIVE, loadsWorkspace, workspaceOf } from '../workspace-param.js';

/** Schedules one workspace may have. */
export const SCHEDULES_PER_WORKSPACE = 20;
/** Longest prompt (characters). */
export const PROMPT_MAX_CHARS = 8000;
/** Default least `@every` interval (cron's own resolution); SCHEDULE_MIN_INTERVAL_MS changes it. */
export const DEFAULT_MIN_INTERVAL_MS = 60_000;

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

const unavailable = (message = 'workflow service unavailable; nothing was changed') =>
  new HttpError(503, 'temporal_unavailable', message, { retryAfterSeconds: 5 });

function present(s: ScheduleRow, mirror?: MirrorState | null) {
  return {
    id: s.id,
    workspaceId: s.workspaceId,
    cron: s.cron,
    timezone: s.timezone,
    prompt: s.prompt,
    enabled: s.enabled,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
    lastRun: s.lastRun
      ? {
          at: s.lastRun.at.toISOString(),
          status: s.lastRun.status,
          ...(s.lastRun.error !== null ? { error: s.lastRun.error } : {}),
          ...(s.lastRun.durationMs !== null ? { durationMs: s.lastRun.durationMs } : {}),
        }
      : null,
    // Only when Temporal was asked: null = paused or nothing due; absent = not known now.
    ...(mirror ? { nextRunAt: mirror.nextRunAt?.toISOString() ?? null } : {}),
    ...(mirror === null ? { mirror: 'unknown' } : {}),
  };
}

export function schedulesRouter(deps: ApiDeps): Router {
  const r = loadsWorkspace(Router(), deps.db);
  const minIntervalMs = () => deps.settings.scheduleMinIntervalMs ?? DEFAULT_MIN_INTERVAL_MS;

  function mirrorOf(): ScheduleMirror {
    if (!deps.schedules) throw new HttpError(503, 'temporal_unavailable', 'schedules are not available here');
    return deps.schedules;
  }

  async function loadSchedule(w: WorkspaceRow, sid: string): Promise<ScheduleRow> {
    const s = idSchema.safeParse(sid).success ? await getSchedule(deps.db, w.id, sid) : null;
    if (!s) throw notFound('schedule');
    return s;
  }

  /** The checked cron and canonical timezone of a body, or a 400 naming the field. */
  function checked(b: { cron?: string; timezone?: string }): { cron?: string; timezone?: string } {
    try {
      return {
        cron: b.cron === undefined ? undefined : specOf(parseCron(b.cron, minIntervalMs()), b.cron),
        timezone: b.timezone === undefined ? undefined : parseTimezone(b.timezone),
      };
    } catch (err) {
      if (err instanceof ScheduleSpecError) throw badRequest(err.message, err.field);
      throw err;
    }
  }

  r.get('/:id/schedules', async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    const rows = await listSchedules(deps.db, w.id);
    const mirror = deps.schedules;
    // Reading repairs: a mirror that is missing or stale is rebuilt from its row.
    const states = await Promise.all(
      rows.map((s) =>
        mirror && w.status !== 'deleting'
          ? mirror.ensure(s).catch((err: unknown) => {
              deps.log.warn({ err, workspaceId: w.id, scheduleId: s.id }, 'schedule mirror not checked');
              return null;
            })
          : Promise.resolve(null),
      ),
    );
    res.json({ items: rows.map((s, i) => present(s, states[i])) });
  });

  r.post('/:id/schedules', async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    const body = parse(createScheduleBody, req.body);
    const spec = checked({ cron: body.cron, timezone: body.timezone ?? 'UTC' });
    const mirror = mirrorOf();
    const inserted = await insertSchedule(
      deps.db,
      {
        id: newId(),
        workspaceId: w.id,
        cron: spec.cron!,
        timezone: spec.timezone!,
        prompt: body.prompt,
        enabled: body.enabled ?? true,
      },
      SCHEDULES_PER_WORKSPACE,
    );
    if ('refused' in inserted) {
      if (inserted.refused === 'quota') {
        throw new HttpError(
          403,
          'quota_exceeded',
          `a workspace has at most ${SCHEDULES_PER_WORKSPACE} schedules`,
        );
      }
      throw new HttpError(409, 'conflict', 'workspace is being deleted');
    }
    const row = inserted.row;
    try {
      await mirror.put(row);
    } catch (err) {
      deps.log.warn({ err, workspaceId: w.id }, 'schedule mirror not created');
      await deleteSchedule(deps.db, w.id, row.id);
      await mirror.remove(w.id, row.id).catch(() => undefined);
      throw unavailable();
    }
    // A workspace delete that ran meanwhile removed the row before this mirror existed: undo it.
    if (!(await getSchedule(deps.db, w.id, row.id))) {
      await mirror.remove(w.id, row.id).catch(() => undefined);
      throw new HttpError(409, 'conflict', 'workspace is being deleted');
    }
    res.status(201).json(present(row));
  });

  r.get('/:id/schedules/:sid', async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    res.json(present(await loadSchedule(w, req.params.sid)));
  });

  r.patch('/:id/schedules/:sid', async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    const before = await loadSchedule(w, req.params.sid);
    const body = parse(patchScheduleBody, req.body);
    // Its delete is removing the schedules: a mirror written now could outlive them.
    if (w.status === 'deleting') throw new HttpError(409, 'conflict', 'workspace is being deleted');
    const spec = checked(body);
    const mirror = mirrorOf();
    const after = await updateSchedule(deps.db, w.id, before.id, { ...body, ...spec });
    if (!after) throw notFound('schedule');
    try {
      await mirror.put(after);
    } catch (err) {
      deps.log.warn({ err, workspaceId: w.id, scheduleId: before.id }, 'schedule mirror not updated');
      await restoreSchedule(deps.db, before);
      throw unavailable();
    }
    res.json(present(after));
  });

  r.delete('/:id/schedules/:sid', async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    const s = await loadSchedule(w, req.params.sid);
    // Mirror first: a 503 leaves both as they were.
    try {
      await mirrorOf().remove(w.id, s.id);
    } catch (err) {
      if (err instanceof HttpError) throw err;
      throw unavailable();
    }
    await deleteSchedule(deps.db, w.id, s.id);
    res.status(204).end();
  });

  /** Run now: one run through the schedule's own Temporal action; its outcome shows as lastRun. */
  r.post('/:id/schedules/:sid/run', async (req, res) => {
    const w = workspaceOf(res, MANAGE_LIVE);
    if (w.status === 'deleting') throw new HttpError(409, 'conflict', 'workspace is being deleted');
    const s = await loadSchedule(w, req.params.sid);
    const mirror = mirrorOf();
    try {
      await deps.entity.requireWorker();
    } catch {
      throw unavailable('no worker is polling the task queue; nothing was started');
    }
    try {
      await mirror.trigger(s);
    } catch {
      throw unavailable('workflow service unavailable; nothing was started');
    }
    res.status(202).json({ id: s.id, triggered: true });
  });

  return r;
}

/** The stored form of a checked cron: its normalized text. */
function specOf(parsed: ReturnType<typeof parseCron>, raw: string): string {
  if (parsed.kind === 'cron') return parsed.expression;
  return raw.trim().replace(/\s+/g, ' ');
}
