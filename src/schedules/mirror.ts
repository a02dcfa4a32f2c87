/**
 * The Temporal side of a workspace schedule: one Temporal Schedule per `schedules` row, id
 * `workspace:<workspaceId>:schedule:<scheduleId>`, starting `scheduledMessageWorkflow` at each
 * firing. The row is the source of truth; every operation here is idempotent (create-or-update,
 * delete-if-present), so repairing a missing or stale mirror is just doing it again.
 *
 * The definition carries no prompt: a run reads it from the row, so editing a prompt never touches
 * Temporal and the prompt is never in a schedule or a workflow history. The schedule's note holds a
 * fingerprint of what it was built from (cron, timezone, enabled, task queue, definition version):
 * a mirror whose note differs from its row's fingerprint is stale and rebuilt.
 *
 * Writers of one schedule do not wait for each other, so their puts may reach Temporal in another
 * order than their row changes. Every put is therefore followed by a read of the row and another
 * put until the row read is the one put (`settle`): the put that lands last is followed by a read
 * of the latest row, so the mirror ends as the row, whichever order the puts landed in. That read
 * waits for a delete of the row under way (the `Reread` given is rereadSchedule), so a put that
 * landed after the delete removed the mirror is followed by a read of no row, and removed.
 */
import { createHash } from 'node:crypto';
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
} from '@temporalio/client';
import type { ScheduleRow } from '../db/schedules.js';
import type { scheduledMessageWorkflow } from '../workflows/schedules.js';
import { scheduledRunMetadata } from '../domain/workflow-metadata.js';
import { withDeadline } from '../api/temporal-deadline.js';
import { ScheduleSpecError, temporalSpec } from './spec.js';

export const workspaceScheduleId = (workspaceId: string, scheduleId: string): string =>
  `workspace:${workspaceId}:schedule:${scheduleId}`;

const ID_SHAPE = /^workspace:([a-f0-9]{16}):schedule:([a-f0-9]{16})$/;

/** The (workspace, schedule) ids of a Temporal Schedule id of ours, or null for any other id. */
export function parseWorkspaceScheduleId(id: string): { workspaceId: string; scheduleId: string } | null {
  const m = ID_SHAPE.exec(id);
  return m ? { workspaceId: m[1]!, scheduleId: m[2]! } : null;
}

/** A run may take this long (the agent's answer included) before Temporal times it out. */
export const SCHEDULED_RUN_TIMEOUT_MS = 10 * 60_000;

type MirroredFields = Pick<ScheduleRow, 'id' | 'workspaceId' | 'cron' | 'timezone' | 'enabled'>;

/**
 * The definition's own version: bumped when what a mirror is built into changes, so mirrors built
 * before are stale and rebuilt. 2: runs start with a static summary and details (Temporal UI).
 */
const DEFINITION_VERSION = 2;

/** What a mirror is built from, as a short hash kept in the schedule's note. */
export function fingerprint(row: MirroredFields, taskQueue: string): string {
  const h = createHash('sha256')
    .update(JSON.stringify([row.cron, row.timezone, row.enabled, taskQueue, DEFINITION_VERSION]))
    .digest('hex');
  return `workspace schedule; built from ${h.slice(0, 16)}`;
}

export function scheduleDefinition(row: MirroredFields, taskQueue: string) {
  const scheduleId = workspaceScheduleId(row.workspaceId, row.id);
  return {
    scheduleId,
    spec: temporalSpec(row.cron, row.timezone),
    action: {
      type: 'startWorkflow' as const,
      workflowType: 'scheduledMessageWorkflow',
      args: [{ workspaceId: row.workspaceId, scheduleId: row.id }] as Parameters<
        typeof scheduledMessageWorkflow
      >,
      workflowId: scheduleId,
      taskQueue,
      workflowRunTimeout: SCHEDULED_RUN_TIMEOUT_MS,
      ...scheduledRunMetadata(row),
    },
    // A run still going when the next firing comes is not joined by a second one; firings missed
    // while Temporal was down are not made up beyond a minute late.
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: 60_000 },
    state: { paused: !row.enabled, note: fingerprint(row, taskQueue) },
  };
}

/**
 * Temporal's refusal of a spec, as the field at fault. The SDK turns INVALID_ARGUMENT "Invalid
 * schedule spec: <why>" into a TypeError of <why> (`unknown time zone US/Pacific-New`), thrown from
 * its rethrowGrpcError: only such a TypeError counts, not one of a bug (that stays a 503, logged).
 * Our crons are checked before, so anything but a time zone is put on `cron`.
 */
export function specRefusal(err: unknown): ScheduleSpecError | null {
  const grpc = (err as { cause?: { code?: unknown; details?: unknown } } | null)?.cause;
  const why =
    err instanceof TypeError && /\brethrowGrpcError\b/.test(err.stack ?? '')
      ? err.message
      : grpc?.code === GRPC_INVALID_ARGUMENT &&
          typeof grpc.details === 'string' &&
          /schedule spec/i.test(grpc.details)
        ? grpc.details
        : null;
  if (why === null) return null;
  const field = /time ?zone/i.test(why) ? 'timezone' : 'cron';
  return new ScheduleSpecError(field, `the workflow service refused it (${why})`);
}

/** gRPC status INVALID_ARGUMENT. */
const GRPC_INVALID_ARGUMENT = 3;

export interface MirrorState {
  exists: boolean;
  /** The mirror matches its row (exists, same fingerprint). */
  current: boolean;
  /** Temporal's own paused state (false when there is no mirror). */
  paused: boolean;
  nextRunAt: Date | null;
}

const GONE: MirrorState = { exists: false, current: false, paused: false, nextRunAt: null };

/** Reads the row again (null: it is gone), waiting for a delete of it under way (rereadSchedule). */
export type Reread<R> = () => Promise<R | null>;

/**
 * A put was made (it may have landed) but the row was not followed to the end: the mirror may be
 * stale, or outlive its row. The caller brings it to the row later (src/app/schedules.ts
 * settleLater); the cause says why.
 */
export class UnsettledMirror extends Error {
  constructor(cause: unknown) {
    super(
      `schedule mirror not brought to its row: ${cause instanceof Error ? cause.message : String(cause)}`,
      {
        cause,
      },
    );
  }
}

/** Puts one settle makes at most: rows changing faster than that are left to the next repair. */
const SETTLE_MAX_PUTS = 8;

/** The API's budget for one request's Temporal calls together: its 503 comes within api.md's 5 s. */
export const API_TEMPORAL_BUDGET_MS = 4000;

/**
 * Every method takes an optional `deadline` (epoch ms) shared by the calls of one request; without
 * one, a call gets the budget to itself (none at all in activities).
 */
export class ScheduleMirror {
  constructor(
    private readonly client: Client,
    private readonly taskQueue: string,
    /** Budget of one request's calls (API_TEMPORAL_BUDGET_MS in the API); none in activities. */
    private readonly budgetMs?: number,
  ) {}

  /** The deadline of a request starting now (undefined: no deadline). */
  deadline(): number | undefined {
    return this.budgetMs === undefined ? undefined : Date.now() + this.budgetMs;
  }

  private call<T>(fn: () => Promise<T>, deadline = this.deadline()): Promise<T> {
    if (deadline === undefined) return fn();
    return withDeadline(this.client, fn, deadline);
  }

  /**
   * Creates the mirror, or brings an existing one up to the row. A spec Temporal refuses (a time
   * zone its tz database lacks) is a ScheduleSpecError naming the field: asking again cannot help.
   */
  async put(row: MirroredFields, deadline?: number): Promise<void> {
    const { scheduleId, ...definition } = scheduleDefinition(row, this.taskQueue);
    await this.call(async () => {
      try {
        await this.client.schedule.create({ scheduleId, ...definition });
      } catch (err) {
        if (!(err instanceof ScheduleAlreadyRunning)) throw err;
        await this.client.schedule
          .getHandle(scheduleId)
          .update((previous) => ({ ...previous, ...definition }));
      }
    }, deadline).catch((err: unknown) => {
      throw specRefusal(err) ?? err;
    });
  }

  /** Deletes the mirror; one that is not there is fine. */
  async remove(workspaceId: string, scheduleId: string, deadline?: number): Promise<void> {
    await this.call(async () => {
      try {
        await this.client.schedule.getHandle(workspaceScheduleId(workspaceId, scheduleId)).delete();
      } catch (err) {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      }
    }, deadline);
  }

  async state(row: MirroredFields, deadline?: number): Promise<MirrorState> {
    return this.call(async () => {
      try {
        const d = await this.client.schedule
          .getHandle(workspaceScheduleId(row.workspaceId, row.id))
          .describe();
        return {
          exists: true,
          current: d.state.note === fingerprint(row, this.taskQueue),
          paused: d.state.paused,
          nextRunAt: d.state.paused ? null : (d.info.nextActionTimes[0] ?? null),
        };
      } catch (err) {
        if (err instanceof ScheduleNotFoundError) return GONE;
        throw err;
      }
    }, deadline);
  }

  /**
   * After a put of `row` landed: reads the row again and puts what it read until that is what was
   * last put. Answers the row last read (null: it is gone; a put here may have brought its mirror
   * back, which the caller removes).
   */
  async follow<R extends MirroredFields>(row: R, reread: Reread<R>, deadline?: number): Promise<R | null> {
    let put = row;
    for (let puts = 1; ; puts++) {
      const fresh = await reread();
      if (!fresh || fingerprint(fresh, this.taskQueue) === fingerprint(put, this.taskQueue)) return fresh;
      if (puts >= SETTLE_MAX_PUTS) throw new Error('schedule changed on every read; left to the next repair');
      await this.put(fresh, deadline);
      put = fresh;
    }
  }

  /**
   * Puts `row`, then follows the row (see follow). A failure after the put was sent is an
   * UnsettledMirror (that put may land), unless Temporal refused the spec (nothing was written).
   */
  async settle<R extends MirroredFields>(row: R, reread: Reread<R>, deadline?: number): Promise<R | null> {
    try {
      await this.put(row, deadline);
      return await this.follow(row, reread, deadline);
    } catch (err) {
      throw err instanceof ScheduleSpecError || err instanceof UnsettledMirror
        ? err
        : new UnsettledMirror(err);
    }
  }

  /** Repairs a missing or stale mirror; answers the (repaired) state. */
  async ensure<R extends MirroredFields>(row: R, reread: Reread<R>, deadline?: number): Promise<MirrorState> {
    const state = await this.state(row, deadline);
    if (state.current) return state;
    const settled = await this.settle(row, reread, deadline);
    if (settled) return this.state(settled, deadline);
    await this.removePut(row, deadline);
    return GONE;
  }

  /** Removes a mirror this writer put back after its row was deleted (UnsettledMirror on failure). */
  private async removePut(row: MirroredFields, deadline?: number): Promise<void> {
    await this.remove(row.workspaceId, row.id, deadline).catch((err: unknown) => {
      throw new UnsettledMirror(err);
    });
  }

  /**
   * One run now, through the schedule's own action (a missing mirror is repaired first; a
   * ScheduleNotFoundError when the row is gone too).
   */
  async trigger<R extends MirroredFields>(row: R, reread: Reread<R>, deadline?: number): Promise<void> {
    const handle = this.client.schedule.getHandle(workspaceScheduleId(row.workspaceId, row.id));
    try {
      // Run-now is an explicit request: it runs even when a scheduled run is still going.
      await this.call(() => handle.trigger(ScheduleOverlapPolicy.ALLOW_ALL), deadline);
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
      if (!(await this.settle(row, reread, deadline))) {
        await this.removePut(row, deadline);
        throw err;
      }
      await this.call(() => handle.trigger(ScheduleOverlapPolicy.ALLOW_ALL), deadline);
    }
  }

  /** Every workspace schedule mirror in the namespace (listing is eventually consistent). */
  async listAll(): Promise<Array<{ workspaceId: string; scheduleId: string }>> {
    const out: Array<{ workspaceId: string; scheduleId: string }> = [];
    for await (const s of this.client.schedule.list()) {
      const ids = parseWorkspaceScheduleId(s.scheduleId);
      if (ids) out.push(ids);
    }
    return out;
  }
}
