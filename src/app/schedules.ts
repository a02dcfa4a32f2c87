/**
 * Workspace schedule use cases: a cron (or `@every`) and a prompt sent to the workspace's agent at
 * each firing.
 *
 * The `schedules` row is the source of truth and its Temporal Schedule a mirror
 * (src/schedules/mirror.ts). A write changes the row, then the mirror, then follows the row until
 * the mirror is what it last read (concurrent writes of one schedule may reach Temporal in either
 * order). When the mirror cannot be written (Temporal down) the row is put back, so an
 * `unavailable` refusal changed nothing, unless a later write was saved on top of it (never
 * undone). Reading the list repairs any mirror that is missing or stale (and says when it could not).
 *
 * A delete against the other writers of the mirror (a PATCH, a create, the list's repair, run-now;
 * on any API process or worker): the delete removes the mirror while it holds the row's lock, and
 * lets go only once the row is deleted (deleteScheduleAnd); every put is followed by a read of the
 * row that waits for that lock (rereadSchedule). A put that landed before the delete's removal is
 * removed by it; one that landed after is followed by a read that finds no row, and its writer
 * removes the mirror before it answers; a change that waits for the lock finds no row (404). So
 * once the requests have answered, the mirror exists iff the row does. (Without the lock, a put
 * landing between the removal and the row's delete, followed by a read of the row still there, left
 * a Temporal Schedule without a row.)
 *
 * A request's Temporal calls and its waits for a schedule's lock share one deadline (its 503 comes
 * within 5 s); cleanup after a refusal is not waited for: it runs in the background, and failing
 * that a leftover Temporal Schedule removes itself at its next firing (its row is gone, nothing is
 * sent) and the orphan sweep removes strays.
 */
import { ScheduleNotFoundError } from '@temporalio/client';
import type pg from 'pg';
import type { Logger } from 'pino';
import {
  deleteSchedule,
  deleteScheduleAnd,
  getSchedule,
  insertSchedule,
  isLockTimeout,
  listSchedules,
  rereadSchedule,
  restoreSchedule,
  updateSchedule,
  type ScheduleRow,
} from '../db/schedules.js';
import { getWorkspace, type WorkspaceRow } from '../db/workspaces.js';
import { UnsettledMirror, type MirrorState, type ScheduleMirror } from '../schedules/mirror.js';
import { ScheduleSpecError, parseCron, parseTimezone } from '../schedules/spec.js';
import { ID_PATTERN } from '../api/schemas.js';
import { newId } from '../security/tokens.js';
import {
  AppError,
  beingDeleted,
  invalid,
  missing,
  quotaExceeded,
  refuseWhileDeleting,
  temporalDown,
} from './errors.js';

/** Schedules one workspace may have. */
export const SCHEDULES_PER_WORKSPACE = 20;
/** Default least `@every` interval (cron's own resolution); SCHEDULE_MIN_INTERVAL_MS changes it. */
export const DEFAULT_MIN_INTERVAL_MS = 60_000;

export interface ScheduleDeps {
  /** A pool: a create counts the workspace's schedules in a transaction of its own. */
  db: pg.Pool;
  /** The Temporal mirrors (absent: changes are refused as unavailable; reads skip the repair). */
  schedules?: ScheduleMirror;
  entity: { requireWorker(deadline?: number): Promise<void> };
  log: Pick<Logger, 'warn'>;
  settings: { scheduleMinIntervalMs?: number };
}

export interface ScheduleInput {
  cron: string;
  timezone?: string;
  prompt: string;
  enabled?: boolean;
}

const nothingChanged = (message = 'workflow service unavailable; nothing was changed') =>
  temporalDown(message);

function mirrorOf(deps: ScheduleDeps): ScheduleMirror {
  if (!deps.schedules) {
    throw new AppError('unavailable', 'temporal_unavailable', 'schedules are not available here');
  }
  return deps.schedules;
}

/** How long a request may still wait for a schedule's row lock (undefined: no deadline). */
const lockWaitOf = (deadline: number | undefined): number | undefined =>
  deadline === undefined ? undefined : deadline - Date.now();

/** Reads a schedule's row again behind a delete of it under way (the mirror follows it). */
const rereadOf =
  (deps: ScheduleDeps, s: { workspaceId: string; id: string }, deadline: number | undefined) => () =>
    rereadSchedule(deps.db, s.workspaceId, s.id, lockWaitOf(deadline));

/** Removes a mirror without the answer waiting for it (with a deadline of its own). */
function removeLater(
  deps: ScheduleDeps,
  mirror: ScheduleMirror,
  workspaceId: string,
  scheduleId: string,
): void {
  mirror.remove(workspaceId, scheduleId).catch((err: unknown) => {
    deps.log.warn(
      { err, workspaceId, scheduleId },
      'leftover schedule mirror not removed (its next firing will)',
    );
  });
}

/**
 * Brings the mirror to the row as it now is, without the answer waiting (with a deadline of its
 * own): after a row write whose mirror write failed or ran out of time, since that put may have
 * landed all the same. Failing that, the next GET of the list repairs it.
 */
function settleLater(deps: ScheduleDeps, mirror: ScheduleMirror, s: ScheduleRow): void {
  const settle = async () => {
    const deadline = mirror.deadline();
    const reread = rereadOf(deps, s, deadline);
    const row = await reread();
    if (!row || !(await mirror.settle(row, reread, deadline))) {
      await mirror.remove(s.workspaceId, s.id, deadline);
    }
  };
  settle().catch((err: unknown) => {
    deps.log.warn(
      { err, workspaceId: s.workspaceId, scheduleId: s.id },
      'schedule mirror not brought to its row (the next list will)',
    );
  });
}

/**
 * Follows the row after this request's own put landed (see ScheduleMirror.follow). Null when the row
 * is gone: a delete ran meanwhile, and the mirror this put may have brought back is removed before
 * the answer (in the background if Temporal fails that now). When Temporal fails the follow now,
 * the request's own change is in both: the rest is done in the background.
 */
async function followRow(
  deps: ScheduleDeps,
  mirror: ScheduleMirror,
  row: ScheduleRow,
  deadline: number | undefined,
): Promise<ScheduleRow | null | undefined> {
  try {
    const now = await mirror.follow(row, rereadOf(deps, row, deadline), deadline);
    if (!now) {
      await mirror.remove(row.workspaceId, row.id, deadline).catch(() => {
        removeLater(deps, mirror, row.workspaceId, row.id);
      });
    }
    return now;
  } catch (err) {
    deps.log.warn({ err, workspaceId: row.workspaceId, scheduleId: row.id }, 'schedule mirror follows later');
    settleLater(deps, mirror, row);
    return undefined;
  }
}

/** The checked cron (normalized) and canonical timezone of a body, or an `invalid` naming the field. */
function checked(
  deps: ScheduleDeps,
  b: { cron?: string; timezone?: string },
): { cron?: string; timezone?: string } {
  const minIntervalMs = deps.settings.scheduleMinIntervalMs ?? DEFAULT_MIN_INTERVAL_MS;
  try {
    return {
      cron: b.cron === undefined ? undefined : specOf(parseCron(b.cron, minIntervalMs), b.cron),
      timezone: b.timezone === undefined ? undefined : parseTimezone(b.timezone),
    };
  } catch (err) {
    if (err instanceof ScheduleSpecError) throw invalid(err.message, err.field);
    throw err;
  }
}

/** The stored form of a checked cron: its normalized text. */
function specOf(parsed: ReturnType<typeof parseCron>, raw: string): string {
  if (parsed.kind === 'cron') return parsed.expression;
  return raw.trim().replace(/\s+/g, ' ');
}

/** One of the workspace's schedules; any other id is not found. */
export async function findSchedule(deps: ScheduleDeps, w: WorkspaceRow, sid: string): Promise<ScheduleRow> {
  const s = ID_PATTERN.test(sid) ? await getSchedule(deps.db, w.id, sid) : null;
  if (!s) throw missing('schedule');
  return s;
}

/**
 * The workspace's schedules, each with its mirror's state: repaired when missing or stale; null
 * when Temporal could not be asked (or the workspace is being deleted).
 */
export async function listWithMirrors(
  deps: ScheduleDeps,
  w: WorkspaceRow,
): Promise<Array<{ row: ScheduleRow; mirror: MirrorState | null }>> {
  const rows = await listSchedules(deps.db, w.id);
  const mirror = deps.schedules;
  const deadline = mirror?.deadline();
  const states = await Promise.all(
    rows.map((s) =>
      mirror && w.status !== 'deleting'
        ? mirror.ensure(s, rereadOf(deps, s, deadline), deadline).catch((err: unknown) => {
            deps.log.warn({ err, workspaceId: w.id, scheduleId: s.id }, 'schedule mirror not checked');
            // Its repair's put may land: the mirror follows the row (or goes with it).
            if (err instanceof UnsettledMirror) settleLater(deps, mirror, s);
            return null;
          })
        : Promise.resolve(null),
    ),
  );
  return rows.map((row, i) => ({ row, mirror: states[i] ?? null }));
}

export async function createSchedule(
  deps: ScheduleDeps,
  w: WorkspaceRow,
  body: ScheduleInput,
): Promise<ScheduleRow> {
  const spec = checked(deps, { cron: body.cron, timezone: body.timezone ?? 'UTC' });
  const mirror = mirrorOf(deps);
  const deadline = mirror.deadline();
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
      throw quotaExceeded(`a workspace has at most ${SCHEDULES_PER_WORKSPACE} schedules`);
    }
    throw beingDeleted();
  }
  const row = inserted.row;
  try {
    await mirror.put(row, deadline);
  } catch (err) {
    await deleteSchedule(deps.db, w.id, row.id);
    // Temporal refused the spec: nothing was created, and asking again would not help.
    if (err instanceof ScheduleSpecError) throw invalid(err.message, err.field);
    deps.log.warn({ err, workspaceId: w.id }, 'schedule mirror not created');
    // The put may have landed all the same (its answer lost).
    removeLater(deps, mirror, w.id, row.id);
    throw nothingChanged();
  }
  // Null: a delete that ran meanwhile removed the row (and the mirror went too). A delete of the
  // schedule came after this create (it found the row): created, then deleted. A workspace delete
  // refuses it as any create it beats.
  if ((await followRow(deps, mirror, row, deadline)) === null && !(await workspaceLive(deps, w.id))) {
    throw beingDeleted();
  }
  return row;
}

async function workspaceLive(deps: ScheduleDeps, workspaceId: string): Promise<boolean> {
  const now = await getWorkspace(deps.db, workspaceId);
  return now !== null && now.status !== 'deleting' && now.status !== 'deleted';
}

/** Changes a schedule (found first, with findSchedule); the row as this change left it. */
export async function patchSchedule(
  deps: ScheduleDeps,
  w: WorkspaceRow,
  found: ScheduleRow,
  body: Partial<ScheduleInput>,
): Promise<ScheduleRow> {
  // Its delete is removing the schedules: a mirror written now could outlive them.
  refuseWhileDeleting(w);
  const spec = checked(deps, body);
  const mirror = mirrorOf(deps);
  const deadline = mirror.deadline();
  const changed = await updateSchedule(
    deps.db,
    w.id,
    found.id,
    { ...body, ...spec },
    lockWaitOf(deadline),
  ).catch((err: unknown) => {
    // A delete of it holds the row, waiting on Temporal past this request's deadline.
    if (isLockTimeout(err)) throw nothingChanged();
    throw err;
  });
  // Deleted meanwhile (a delete that held the row: this change waited for it).
  if (!changed) throw missing('schedule');
  const { before, after } = changed;
  try {
    await mirror.put(after, deadline);
  } catch (err) {
    // A delete of it removed the mirror while this put was updating it. Read after that delete's
    // lock: its row gone, this change went with it (404, as for a change that waited for the
    // delete), not a Temporal outage.
    if (err instanceof ScheduleNotFoundError) {
      const now = await rereadSchedule(deps.db, w.id, after.id, lockWaitOf(deadline)).catch(() => undefined);
      if (now === null) throw missing('schedule');
    }
    const restored = await restoreSchedule(deps.db, before, after);
    // Temporal refused the spec: the mirror is as it was.
    if (err instanceof ScheduleSpecError) throw invalid(err.message, err.field);
    deps.log.warn({ err, workspaceId: w.id, scheduleId: after.id }, 'schedule mirror not updated');
    // The put may have landed all the same (its answer lost): the mirror follows the row.
    settleLater(deps, mirror, after);
    throw nothingChanged(
      restored
        ? undefined
        : 'workflow service unavailable; a later change to this schedule was saved on top of this one, so it was not undone',
    );
  }
  // A delete that came after this change is fine: followRow removes the mirror its put brought back.
  await followRow(deps, mirror, after, deadline);
  return after;
}

/**
 * Deletes a schedule: its mirror first, under the row's lock until the row is gone (see the top of
 * this file). A refusal leaves the row as it was.
 */
export async function removeSchedule(deps: ScheduleDeps, w: WorkspaceRow, sid: string): Promise<void> {
  const s = await findSchedule(deps, w, sid);
  const mirror = mirrorOf(deps);
  const deadline = mirror.deadline();
  let removing = false;
  let removeFailed = false;
  const removeMirror = async () => {
    removing = true;
    await mirror.remove(w.id, s.id, deadline).catch((err: unknown) => {
      removeFailed = true;
      throw err;
    });
  };
  let deleted: boolean;
  try {
    deleted = await deleteScheduleAnd(deps.db, w.id, s.id, removeMirror, lockWaitOf(deadline));
  } catch (err) {
    // The removal may have landed all the same (its answer lost), or the row's delete failed after
    // it: the mirror follows the row, which is as it was.
    if (removing) settleLater(deps, mirror, s);
    if (removeFailed) {
      deps.log.warn({ err, workspaceId: w.id, scheduleId: s.id }, 'schedule mirror not removed');
      throw nothingChanged();
    }
    // Another delete of it holds the row, waiting on Temporal past this request's deadline.
    if (isLockTimeout(err)) throw nothingChanged();
    throw err;
  }
  // Deleted meanwhile by another request (this one waited for it).
  if (!deleted) throw missing('schedule');
}

/** Run now: one run through the schedule's own Temporal action; its outcome shows as lastRun. */
export async function runNow(deps: ScheduleDeps, w: WorkspaceRow, sid: string): Promise<ScheduleRow> {
  refuseWhileDeleting(w);
  const s = await findSchedule(deps, w, sid);
  const mirror = mirrorOf(deps);
  const deadline = mirror.deadline();
  try {
    await deps.entity.requireWorker(deadline);
  } catch {
    throw nothingChanged('no worker is polling the task queue; nothing was started');
  }
  try {
    // A paused schedule's run is told from a firing by its mirror being paused (the activity skips
    // firings of a paused row): a mirror left running by a failed write is paused first.
    if (!s.enabled) await mirror.ensure(s, rereadOf(deps, s, deadline), deadline);
    await mirror.trigger(s, rereadOf(deps, s, deadline), deadline);
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) throw missing('schedule');
    // Its repair's put may land: the mirror follows the row (or goes with it).
    if (err instanceof UnsettledMirror) settleLater(deps, mirror, s);
    throw nothingChanged('workflow service unavailable; nothing was started');
  }
  return s;
}
