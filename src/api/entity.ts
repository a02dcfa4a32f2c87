/**
 * The API's side of the entity workflow: start it, send it Updates and Signals, and turn Temporal's
 * errors into the HTTP contract's answers. Every call has a deadline, and an Update is sent only
 * when a worker polls the task queue, so a caller gets 503 + Retry-After quickly instead of a hang
 * (and that 503 does not later take effect).
 */
import {
  ApplicationFailure,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import {
  FailureType,
  agentHealthSignal,
  agentLivenessSignal,
  agentReadySignal,
  configureUpdate,
  deleteUpdate,
  restartPolicyUpdate,
  workspaceWorkflowId,
  type ConfigureInput,
  type ConfigureResult,
  type AgentHealth,
  type AgentLiveness,
  type AgentReady,
  type BackendName,
  type RequestDeadline,
  type RestartPolicyChange,
  type WorkspaceStatus,
  type WorkspaceWorkflowInput,
} from '../workflows/messages.js';
import type { workspaceWorkflow } from '../workflows/workspace/workflow.js';
import { deleteOnlyCarry, entityStartOptions } from '../domain/entity-start.js';
import type { WorkspaceAbout } from '../domain/workflow-metadata.js';
import { NoWorkerPolling, temporalDown } from '../app/errors.js';
import type { HttpError } from './errors.js';
import { badRequest, conflict, fromApp } from './errors.js';
import { withDeadline } from './temporal-deadline.js';

export interface EntityClientOptions {
  /**
   * Time budget of one API request's Temporal calls together (gRPC deadlines plus a timer
   * backstop): the contract's 503 comes within 5 s.
   */
  callTimeoutMs?: number;
  /** How long a "a worker polls" answer is reused. */
  pollerCacheMs?: number;
  /** A poller last seen longer ago than this is gone (an idle worker re-polls about every minute). */
  pollerStaleMs?: number;
  /**
   * Ask for eager workflow start: the server hands a create's first workflow task straight back to
   * a worker in this process (no task queue round trip). Only for a client on the worker's
   * NativeConnection (API and worker in one process); with no free slot there it is a plain start.
   */
  eagerStart?: boolean;
  /**
   * Whether a worker of this task queue runs in this process: then it polls, whatever the server's
   * poller list says yet (its first poll may not have arrived when the first request does).
   */
  localWorkerRunning?: () => boolean;
}

/** How long past its 4 s budget an Update's answer is still awaited (the contract: 503 within 5 s). */
const ANSWER_GRACE_MS = 500;

// temporal.api.enums.v1 values (the proto package is not a direct dependency).
const TASK_QUEUE_KIND_NORMAL = 1;
const TASK_QUEUE_TYPE_WORKFLOW = 1;

/** Temporal down, too slow, or no worker: the use cases' refusal, as the API answers it. */
export const temporalUnavailable = (message?: string): HttpError => fromApp(temporalDown(message))!;

export class EntityClient {
  private readonly callTimeoutMs: number;
  private readonly pollerCacheMs: number;
  private readonly pollerStaleMs: number;
  private readonly eagerStart: boolean;
  private readonly localWorkerRunning: () => boolean;
  private pollers: { at: number; polling: Promise<boolean> } | null = null;

  constructor(
    private readonly client: Client,
    private readonly taskQueue: string,
    opts: EntityClientOptions = {},
  ) {
    this.callTimeoutMs = opts.callTimeoutMs ?? 4000;
    this.pollerCacheMs = opts.pollerCacheMs ?? 2000;
    this.pollerStaleMs = opts.pollerStaleMs ?? 90_000;
    this.eagerStart = opts.eagerStart ?? false;
    this.localWorkerRunning = opts.localWorkerRunning ?? (() => false);
  }

  /**
   * Starts the entity workflow; throws whatever Temporal answered (or a deadline error). A create's
   * start (`firstStart`, the default) is refused when any workflow ever ran under the id: then a
   * delete-only entity (org cascade, DELETE) got there first and the workspace is deleted.
   */
  async start(
    input: WorkspaceWorkflowInput,
    opts: { firstStart: boolean } = { firstStart: true },
    about: WorkspaceAbout = {},
  ): Promise<string> {
    const options = {
      ...entityStartOptions(input, this.taskQueue, opts, about),
      ...(this.eagerStart ? { requestEagerStart: true } : {}),
    };
    // Leaves a fifth of the budget for the exists() check that follows a failed start.
    await this.withDeadline(
      () => this.client.workflow.start<typeof workspaceWorkflow>('workspaceWorkflow', options),
      Date.now() + (this.callTimeoutMs * 4) / 5,
    );
    return options.workflowId;
  }

  /**
   * Whether the workspace's workflow exists: true or false when Temporal says so, null when it
   * could not be asked (then nobody can know, and nothing may be cleaned up on that basis).
   */
  async exists(workspaceId: string): Promise<boolean | null> {
    try {
      await this.withDeadline(() => this.handle(workspaceId).describe(), Date.now() + this.callTimeoutMs / 5);
      return true;
    } catch (err) {
      return err instanceof WorkflowNotFoundError ? false : null;
    }
  }

  /** Temporal answers (for /readyz). */
  async ping(): Promise<void> {
    await this.withDeadline(() => this.client.workflowService.getSystemInfo({}));
  }

  /**
   * Throws unless a worker polls the task queue (for /readyz, before every Update, before a plugin
   * workflow's start): NoWorkerPolling when none does, Temporal's error when it cannot be asked.
   */
  async requireWorker(deadline = Date.now() + this.callTimeoutMs): Promise<void> {
    if (!(await this.workerPolling(deadline))) {
      throw new NoWorkerPolling(`no worker polls task queue ${this.taskQueue}`);
    }
  }

  private async workerPolling(deadline = Date.now() + this.callTimeoutMs): Promise<boolean> {
    if (this.localWorkerRunning()) return true;
    const now = Date.now();
    if (this.pollers && now - this.pollers.at < this.pollerCacheMs) return this.pollers.polling;
    const polling = this.withDeadline(async () => {
      const res = await this.client.workflowService.describeTaskQueue({
        namespace: this.client.options.namespace,
        taskQueue: { name: this.taskQueue, kind: TASK_QUEUE_KIND_NORMAL },
        taskQueueType: TASK_QUEUE_TYPE_WORKFLOW,
      });
      return (res.pollers ?? []).some((p) => {
        const seconds = Number(p.lastAccessTime?.seconds ?? 0);
        return Date.now() - seconds * 1000 < this.pollerStaleMs;
      });
    }, deadline);
    this.pollers = { at: now, polling };
    // A failed probe is not cached: the next call asks again.
    polling.catch(() => {
      if (this.pollers?.polling === polling) this.pollers = null;
    });
    return polling;
  }

  private handle(workspaceId: string): WorkflowHandle {
    return this.client.workflow.getHandle(workspaceWorkflowId(workspaceId));
  }

  /** Saves config through the entity (serialized with restarts); answers once it is in the DB. */
  async configure(workspaceId: string, input: ConfigureInput): Promise<ConfigureResult> {
    return this.sendUpdate((d) =>
      this.handle(workspaceId).executeUpdate(configureUpdate, { args: [{ ...input, ...d }] }),
    );
  }

  /** Sets the restart policy the entity applies from its next decision (saved by the entity). */
  async setRestartPolicy(
    workspaceId: string,
    change: RestartPolicyChange,
  ): Promise<{ restartPolicy: string }> {
    return this.sendUpdate((d) =>
      this.handle(workspaceId).executeUpdate(restartPolicyUpdate, { args: [{ ...change, ...d }] }),
    );
  }

  /** Runs a lifecycle Update; a validator rejection or a finished entity answers 409. */
  async update<Ret>(workspaceId: string, def: UpdateDefinition<Ret, []>): Promise<Ret> {
    return this.sendUpdate((d) => this.sendLifecycle<Ret>(workspaceId, def, d));
  }

  /** A lifecycle Update with the caller's deadline (its definition is typed without one). */
  private sendLifecycle<Ret>(workspaceId: string, def: UpdateDefinition<Ret, []>, d: RequestDeadline) {
    return this.handle(workspaceId).executeUpdate<Ret, [RequestDeadline]>(def.name, { args: [d] });
  }

  /**
   * Deletes through the entity. A row that is not `deleted` but has no running entity (a create
   * whose workflow start failed ambiguously and never landed, or an entity that ended without
   * recording `deleted`) would otherwise answer "workspace is deleted" for ever while it still
   * shows, counts against the quota and may hold resources: such a row gets an entity that only
   * deletes (continue-as-new's `deleting` carry), which converges like any delete.
   */
  async delete(
    w: { id: string; orgId: string; backend: BackendName; status: WorkspaceStatus; generation: number } & {
      name?: string;
      template?: string | null;
      runtime?: string;
    },
    settings: { bootDeadlineMs: number; continueAsNewAfterEvents?: number },
  ): Promise<{ accepted: true; status: WorkspaceStatus }> {
    return this.sendUpdate(
      (d) => this.sendLifecycle(w.id, deleteUpdate, d).catch(deleteUnderWay),
      async () => {
        try {
          await this.start(
            {
              workspaceId: w.id,
              orgId: w.orgId,
              backend: w.backend,
              ...settings,
              carried: deleteOnlyCarry(w),
            },
            { firstStart: false },
            { name: w.name, template: w.template, runtime: w.runtime },
          );
        } catch (err) {
          // Someone else started it meanwhile (a second DELETE, the create's own late start).
          if (err instanceof WorkflowExecutionAlreadyStartedError) return this.update(w.id, deleteUpdate);
          throw temporalUnavailable();
        }
        return { accepted: true, status: 'deleting' };
      },
    );
  }

  /**
   * Sends an Update with the call's budget as its deadline (RequestDeadline): the entity refuses it
   * when the task that takes it starts later, and makes its change only in the task after the one
   * that accepted it, failing it `Expired` with nothing changed when that one starts past the budget
   * (a worker back from a crash replays the whole history in the first: seconds). The answer is
   * awaited a little past the budget (within the contract's 5 s), so a 503 means nothing changed.
   */
  private async sendUpdate<T>(
    call: (d: RequestDeadline) => Promise<T>,
    onGone?: () => Promise<T>,
  ): Promise<T> {
    const deadline = Date.now() + this.callTimeoutMs;
    let polling: boolean;
    try {
      polling = await this.workerPolling(deadline);
    } catch {
      throw temporalUnavailable();
    }
    if (!polling) throw temporalUnavailable('no worker is polling the task queue; nothing was changed');
    try {
      return await this.withDeadline(
        () => call({ notAfterMs: deadline, answerByMs: deadline }),
        deadline + Math.min(ANSWER_GRACE_MS, this.callTimeoutMs / 4),
      );
    } catch (err) {
      if (onGone && (err instanceof WorkflowNotFoundError || isCompleted(err))) return onGone();
      throw toHttpError(err);
    }
  }

  private async withDeadline<T>(
    call: () => Promise<T>,
    deadline = Date.now() + this.callTimeoutMs,
  ): Promise<T> {
    return withDeadline(this.client, call, deadline);
  }

  /** Signals are best effort: an entity that already finished (deleted) has nothing to learn. */
  async signalReady(workspaceId: string, ready: AgentReady): Promise<void> {
    await this.signal(() => this.handle(workspaceId).signal(agentReadySignal, ready));
  }

  async signalHealth(workspaceId: string, health: AgentHealth): Promise<void> {
    await this.signal(() => this.handle(workspaceId).signal(agentHealthSignal, health));
  }

  async signalLiveness(workspaceId: string, liveness: AgentLiveness): Promise<void> {
    await this.signal(() => this.handle(workspaceId).signal(agentLivenessSignal, liveness));
  }

  private async signal(send: () => Promise<void>): Promise<void> {
    try {
      await this.withDeadline(send);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || isCompleted(err)) return;
      // The agent retries a 503; a raw gRPC error would be a 500.
      throw temporalUnavailable();
    }
  }
}

/**
 * A delete Update the entity refused because the workspace is deleted (one under way takes it and
 * tries at once): DELETE is idempotent, so the repeat is accepted as the first was, with the status
 * the entity gave.
 */
function deleteUnderWay(err: unknown): { accepted: true; status: WorkspaceStatus } {
  const cause = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
  if (!(cause instanceof ApplicationFailure) || cause.type !== FailureType.Deleted) throw err;
  const status = (cause.details?.[0] as { status?: unknown } | undefined)?.status;
  return { accepted: true, status: status === 'deleted' ? 'deleted' : 'deleting' };
}

/** An Update's failure, by its type (never its message): the HTTP answer. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof WorkflowUpdateFailedError) {
    const cause = err.cause;
    const message = cause?.message ?? err.message;
    if (cause instanceof ApplicationFailure) {
      switch (cause.type) {
        case FailureType.InvalidInput:
          return badRequest(message, fieldOf(cause) ?? 'body');
        case FailureType.Unavailable:
        case FailureType.Expired:
          return temporalUnavailable(message);
        case FailureType.Deleted:
        case FailureType.Conflict:
          return conflict(message);
      }
    }
    return conflict(message);
  }
  if (err instanceof WorkflowNotFoundError || isCompleted(err)) return conflict('workspace is deleted');
  return temporalUnavailable();
}

function fieldOf(failure: ApplicationFailure): string | undefined {
  const first = failure.details?.[0] as { field?: unknown } | undefined;
  return typeof first?.field === 'string' ? first.field : undefined;
}

function isCompleted(err: unknown): boolean {
  return err instanceof Error && /already completed|workflow execution already completed/i.test(err.message);
}
