/**
 * Activities of workspace schedules: one run (send the prompt through the proxy's path, record the
 * outcome), the removal of a workspace's schedules on delete, and the reconcile that repairs
 * mirrors (src/schedules/mirror.ts) that went missing or outlived their row.
 */
import { randomUUID } from 'node:crypto';
import { Context, log as activityLog } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { BackendReads } from '../a2a/backend-reads.js';
import { A2A_DEFAULTS, SERVING, deliver, logCall, probe, type ProxyLog } from '../a2a/proxy.js';
import type { BackendKind, WorkspaceBackend } from '../backends/backend.js';
import { presentedAgentCredential } from '../db/agent-credentials.js';
import type { Transactable } from '../db/queryable.js';
import {
  deleteScheduleAnd,
  getSchedule,
  recordScheduleRun,
  rereadSchedule,
  scheduleIdsOf,
  scheduleLookup,
  type ScheduleRow,
  type ScheduleRunStatus,
} from '../db/schedules.js';
import { budgetOf } from '../db/budget.js';
import { redactorFor } from '../db/secrets.js';
import { getOrg } from '../db/orgs.js';
import { getWorkspace } from '../db/workspaces.js';
import { isOverBudget } from '../domain/budget.js';
import { ScheduleMirror } from '../schedules/mirror.js';
import type { SecretBox } from '../security/secrets.js';
import { agentLivenessSignal, workspaceWorkflowId } from '../workflows/messages.js';
import { withHeartbeat } from './heartbeat.js';

export interface ScheduleActivityDeps {
  /** A pool: a schedule's delete holds its row in a transaction of its own. */
  db: Transactable;
  backends: Record<BackendKind, WorkspaceBackend>;
  secrets: SecretBox;
  /** Deletes and repairs the Temporal mirrors, signals liveness findings. */
  temporal?: Client;
}

/** Longest error text kept on a schedule's last run. */
const RUN_ERROR_CHARS = 500;

/** Mirrors handled by one reconcile run, and strays removed by one sweep (the rest wait for the next). */
export const RECONCILE_MAX = 500;

/**
 * Bound of one mirror removal made while holding its row (a workspace's delete): writers of that
 * schedule wait for the row meanwhile. Past it the activity fails and is retried.
 */
export const LOCKED_REMOVE_MS = 10_000;

export function createScheduleActivities(deps: ScheduleActivityDeps) {
  const { db } = deps;
  const mirror = (): ScheduleMirror | null =>
    deps.temporal ? new ScheduleMirror(deps.temporal, Context.current().info.taskQueue) : null;
  const log = proxyLog();
  // The proxy's bound on backend reads, for this worker's runs (the API processes have their own).
  const reads = new BackendReads();

  /**
   * Whether a run of a paused row was asked for (run-now): a paused Temporal Schedule starts runs
   * only when triggered (or one taken just before its pause landed). Its mirror still running while
   * the row is paused (a write whose Temporal half failed) fired on its own: that firing is not
   * sent, and the mirror is brought to the row.
   */
  const runNowOfPaused = async (row: ScheduleRow): Promise<boolean> => {
    const m = mirror();
    const state = await m?.state(row).catch((err: unknown) => {
      log.warn({ err, workspaceId: row.workspaceId, scheduleId: row.id }, 'schedule mirror not read');
      return null;
    });
    if (state?.paused) return true;
    if (m && state?.exists) {
      log.warn(
        { workspaceId: row.workspaceId, scheduleId: row.id },
        'a paused schedule fired (its Temporal Schedule was not paused): skipped, mirror repaired',
      );
      await m
        .settle(row, () => rereadSchedule(db, row.workspaceId, row.id))
        // Deleted meanwhile: the mirror this put may have brought back goes too.
        .then((now) => (now ? undefined : m.remove(row.workspaceId, row.id)))
        .catch((err: unknown) =>
          log.warn({ err, workspaceId: row.workspaceId, scheduleId: row.id }, 'schedule mirror not repaired'),
        );
    }
    return false;
  };

  return {
    /**
     * One run: the prompt as `message/send` to the workspace's agent, through the A2A proxy's path
     * (same endpoint rules, credential, limits and activity row, type `schedule`). A workspace that
     * does not serve is a `skipped` run; a mirror whose row or workspace is gone removes itself; a
     * paused row runs only when asked to (run-now), nothing recorded otherwise.
     */
    async runScheduledMessage(input: {
      workspaceId: string;
      scheduleId: string;
    }): Promise<ScheduleRunStatus> {
      const started = performance.now();
      const [row, w] = await Promise.all([
        getSchedule(db, input.workspaceId, input.scheduleId),
        getWorkspace(db, input.workspaceId),
      ]);
      if (!row || !w || w.status === 'deleting' || w.status === 'deleted') {
        await mirror()?.remove(input.workspaceId, input.scheduleId);
        return 'skipped';
      }
      // Its org deleted: nothing more is sent on its behalf (its cascade deletes the workspace and
      // this mirror; until it reaches it, the workspace may still be live).
      if (!(await getOrg(db, w.orgId))) return 'skipped';
      if (!row.enabled && !(await runNowOfPaused(row))) return 'skipped';
      const clean = await redactorFor(db, deps.secrets, w.id);
      const record = (status: ScheduleRunStatus, error: string | null) =>
        recordScheduleRun(db, {
          workspaceId: w.id,
          scheduleId: row.id,
          status,
          error: error === null ? null : clean(error).slice(0, RUN_ERROR_CHARS),
          durationMs: performance.now() - started,
        });
      const summaryPrefix = `schedule ${row.id}: `;
      // Refused as the A2A proxy would: over budget (402) before not serving (409).
      const budget = await budgetOf(db, w.id);
      const refusal =
        budget && isOverBudget(budget)
          ? { status: 402, why: `skipped: over budget (${budget.spentCents} of ${budget.limitCents} cents)` }
          : !SERVING.has(w.status) || !w.endpoint
            ? { status: 409, why: `skipped: workspace is ${w.status}` }
            : null;
      if (refusal) {
        const why = refusal.why;
        await logCall(
          { db, log },
          {
            workspaceId: w.id,
            callerId: null,
            type: 'schedule',
            method: 'message/send',
            status: refusal.status,
            durationMs: 0,
            requestText: '',
            responseText: null,
            summaryPrefix,
            note: why,
            clean,
          },
        );
        await record('skipped', why);
        return 'skipped';
      }
      const credential = await presentedAgentCredential(db, deps.secrets, w.id, w.generation);
      const body = {
        jsonrpc: '2.0',
        id: `schedule-${row.id}-${randomUUID()}`,
        method: 'message/send',
        params: {
          message: {
            role: 'user',
            messageId: randomUUID(),
            parts: [{ kind: 'text', text: row.prompt }],
            metadata: { schedule: { id: row.id } },
          },
        },
      };
      const outcome = await withHeartbeat(() =>
        deliver({ db, backends: deps.backends, log, reads }, w, body, {
          credential,
          clean,
          limits: A2A_DEFAULTS,
          type: 'schedule',
          summaryPrefix,
          // The proxy's liveness check: the backend's view plus one /health probe, to the entity.
          onUnreachable: (endpoint) =>
            reads.check(
              w,
              endpoint,
              {
                status: () => deps.backends[w.backend].status(w.id, w.generation),
                probe: (at) =>
                  probe(
                    at,
                    { workspaceId: w.id, generation: w.generation, credential },
                    A2A_DEFAULTS.probeTimeoutMs,
                  ),
              },
              async (l) => {
                await deps.temporal?.workflow
                  .getHandle(workspaceWorkflowId(w.id))
                  .signal(agentLivenessSignal, { generation: w.generation, ...l })
                  .catch((err: unknown) => log.warn({ err, workspaceId: w.id }, 'liveness signal failed'));
              },
            ),
        }),
      );
      const status: ScheduleRunStatus = outcome.ok ? 'ok' : outcome.status === 409 ? 'skipped' : 'failed';
      await record(status, outcome.error);
      return status;
    },

    /** Records a run that ended without its own record (its attempt was lost). */
    async recordScheduleRun(input: {
      workspaceId: string;
      scheduleId: string;
      status: ScheduleRunStatus;
      error: string | null;
      durationMs: number | null;
    }): Promise<void> {
      const clean = await redactorFor(db, deps.secrets, input.workspaceId);
      await recordScheduleRun(db, {
        ...input,
        error: input.error === null ? null : clean(input.error).slice(0, RUN_ERROR_CHARS),
      });
    },

    /**
     * The workspace's delete: each schedule's mirror goes, then its row, the row held meanwhile as a
     * schedule DELETE holds it (deleteScheduleAnd: a PATCH or a list's repair that loaded the
     * workspace before its delete began cannot leave a mirror behind). Idempotent (a mirror already
     * gone is fine). No row can be added meanwhile: inserts refuse a workspace that is `deleting`.
     */
    async removeWorkspaceSchedules(input: { workspaceId: string }): Promise<number> {
      const ids = await scheduleIdsOf(db, input.workspaceId);
      const m = mirror();
      let removed = 0;
      for (const id of ids) {
        const removeMirror = async () => {
          await m?.remove(input.workspaceId, id, Date.now() + LOCKED_REMOVE_MS);
        };
        if (await deleteScheduleAnd(db, input.workspaceId, id, removeMirror)) removed++;
      }
      return removed;
    },

    /**
     * Removes mirrors that outlived their row: their workspace is deleted here, or the workspace is
     * live here but has no such schedule. A mirror of a workspace this database does not know is
     * left alone (another deployment may share the namespace).
     */
    async removeStraySchedules(): Promise<Array<{ workspaceId: string; scheduleId: string }>> {
      const m = mirror();
      if (!m) return [];
      const found = await withHeartbeat(() => m.listAll());
      // Every mirror is looked at (a page at a time), and at most one page of strays is removed: a
      // cut before the look would leave a stray past the first page (Temporal lists them in the same
      // order every time) unseen for good.
      const stray: typeof found = [];
      for (let i = 0; i < found.length && stray.length < RECONCILE_MAX; i += RECONCILE_MAX) {
        const page = found.slice(i, i + RECONCILE_MAX);
        const lookup = await scheduleLookup(db, page);
        for (const f of page) {
          const l = lookup.get(`${f.workspaceId}/${f.scheduleId}`);
          if (l !== undefined && l.workspace !== 'unknown' && (l.workspace === 'deleted' || !l.row))
            stray.push(f);
        }
      }
      const removed = stray.slice(0, RECONCILE_MAX);
      for (const s of removed) await m.remove(s.workspaceId, s.scheduleId);
      return removed;
    },
  };
}

/** Temporal's activity logger in pino's call shape (what the shared proxy path logs with). */
function proxyLog(): ProxyLog {
  const at =
    (level: 'info' | 'warn' | 'error') =>
    (obj: object, msg: string): void => {
      try {
        const { err, ...rest } = obj as { err?: unknown };
        activityLog[level](msg, err instanceof Error ? { ...rest, error: err.message } : rest);
      } catch {
        // outside an activity (unit tests): nothing to log to
      }
    };
  return { info: at('info'), warn: at('warn'), error: at('error') };
}
