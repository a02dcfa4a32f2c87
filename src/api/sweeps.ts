/**
 * The API's side of the sweeps: run one now (the same workflow the Schedule starts, under its own
 * id), and describe the Schedules with their last result.
 */
import { randomUUID } from 'node:crypto';
import { ScheduleNotFoundError, WorkflowFailedError, type Client } from '@temporalio/client';
import type { OrphanSweepResult } from '../domain/orphans.js';
import { SWEEP_NAMES, sweepDefinition, type SweepName, type SweepSettings } from '../worker/schedules.js';
import type { HealthSweepResult, orgDeleteWorkflow } from '../workflows/sweeps.js';
import { HttpError } from './errors.js';
import { withDeadline } from './temporal-deadline.js';
import { orgDeleteStartOptions, orgDeleteWorkflowId } from '../domain/org-delete-start.js';
import { sweepMetadata } from '../domain/workflow-metadata.js';

/** The deps' sweep control, or 503 when this API was built without one. */
export function sweepControl(deps: { sweeps?: SweepControl }): SweepControl {
  if (!deps.sweeps) throw new HttpError(503, 'temporal_unavailable', 'sweeps are not available here');
  return deps.sweeps;
}

export interface SweepSummary {
  name: SweepName;
  scheduleId: string;
  intervalMs: number | null;
  paused: boolean;
  nextRunAt: string | null;
  lastRun: { workflowId: string; runId: string; startedAt: string; status: string; result: unknown } | null;
}

/** Budget of one Temporal call of these routes (the contract's 503 comes within 5 s). */
const CALL_TIMEOUT_MS = 4000;

const unavailable = (message = 'workflow service unavailable') =>
  new HttpError(503, 'temporal_unavailable', message, { retryAfterSeconds: 5 });

export class SweepControl {
  constructor(
    private readonly client: Client,
    private readonly settings: SweepSettings & { orgDeleteWaitMs: number },
    /** Throws unless a worker polls the task queue (EntityClient.requireWorker). */
    private readonly requireWorker: () => Promise<void> = async () => undefined,
  ) {}

  /** A Temporal call under a gRPC deadline, with a timer as backstop (a dead server never hangs us). */
  private withDeadline<T>(call: () => Promise<T>, deadline = Date.now() + CALL_TIMEOUT_MS): Promise<T> {
    return withDeadline(this.client, call, deadline);
  }

  isSweep(name: string): name is SweepName {
    return (SWEEP_NAMES as readonly string[]).includes(name);
  }

  /** Runs one orphan sweep now and answers its result. */
  runOrphans(): Promise<OrphanSweepResult> {
    return this.run('orphans') as Promise<OrphanSweepResult>;
  }

  /** Runs one health sweep now and answers its result. */
  runHealth(): Promise<HealthSweepResult> {
    return this.run('health') as Promise<HealthSweepResult>;
  }

  /** Runs the sweep's workflow now, as its Schedule would, under an id of its own. */
  async run(name: SweepName): Promise<unknown> {
    const { scheduleId, action } = sweepDefinition(this.settings, name);
    // With no worker the run would sit in the queue until its run timeout: say so at once instead.
    try {
      await this.withDeadline(() => this.requireWorker());
    } catch {
      throw unavailable('no worker is polling the task queue; no sweep was started');
    }
    let handle;
    try {
      handle = await this.withDeadline(() =>
        this.client.workflow.start(action.workflowType, {
          taskQueue: action.taskQueue,
          workflowId: `${scheduleId}:run-${randomUUID()}`,
          args: action.args,
          workflowRunTimeout: action.workflowRunTimeout,
          ...sweepMetadata(name, action.args[0], null),
        }),
      );
    } catch {
      throw unavailable();
    }
    // The run itself is bounded by its run timeout; its answer is the contract's 200.
    try {
      return await handle.result();
    } catch (err) {
      if (err instanceof WorkflowFailedError) {
        throw new HttpError(500, 'sweep_failed', err.cause?.message ?? 'the sweep failed');
      }
      throw unavailable();
    }
  }

  /** The sweeps' Schedules that exist, each with its interval and its most recent run's outcome. */
  async list(): Promise<SweepSummary[]> {
    // One deadline for the whole answer (up to three calls per sweep), the sweeps side by side: a
    // slow Temporal still gets its 503 within the contract's 5 s.
    const deadline = Date.now() + CALL_TIMEOUT_MS;
    const summaries = await Promise.all(SWEEP_NAMES.map((name) => this.summary(name, deadline)));
    return summaries.filter((s): s is SweepSummary => s !== null);
  }

  /** One sweep's Schedule and last run; null when its Schedule does not exist. */
  private async summary(name: SweepName, deadline: number): Promise<SweepSummary | null> {
    const { scheduleId } = sweepDefinition(this.settings, name);
    let description;
    try {
      description = await this.withDeadline(
        () => this.client.schedule.getHandle(scheduleId).describe(),
        deadline,
      );
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return null;
      throw unavailable();
    }
    const every = description.spec.intervals?.[0]?.every;
    const last = description.info.recentActions.at(-1);
    let lastRun: SweepSummary['lastRun'] = null;
    if (last) {
      const { workflowId, firstExecutionRunId: runId } = last.action.workflow;
      const handle = this.client.workflow.getHandle(workflowId, runId);
      const info = await this.withDeadline(() => handle.describe(), deadline).catch(() => null);
      const status = info?.status.name ?? 'UNKNOWN';
      const result =
        status === 'COMPLETED'
          ? await this.withDeadline(() => handle.result(), deadline).catch(() => null)
          : null;
      lastRun = { workflowId, runId, startedAt: last.takenAt.toISOString(), status, result };
    }
    return {
      name,
      scheduleId,
      intervalMs: typeof every === 'number' ? every : null,
      paused: description.state.paused,
      nextRunAt: description.info.nextActionTimes[0]?.toISOString() ?? null,
      lastRun,
    };
  }

  /** Starts the org cascade; a second delete of the same org finds it already started. */
  async startOrgDelete(orgId: string): Promise<string> {
    const workflowId = orgDeleteWorkflowId(orgId);
    try {
      await this.withDeadline(() =>
        this.client.workflow.start<typeof orgDeleteWorkflow>(
          'orgDeleteWorkflow',
          orgDeleteStartOptions(orgId, this.settings.orgDeleteWaitMs, this.settings.taskQueue),
        ),
      );
    } catch (err) {
      if (err instanceof Error && err.name === 'WorkflowExecutionAlreadyStartedError') return workflowId;
      // The org is marked deleted already; a DELETE again starts the cascade (idempotent).
      throw unavailable();
    }
    return workflowId;
  }
}
