import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker, type ActivityInterceptors, type InjectedSinks } from '@temporalio/worker';
import type { Context as ActivityContext } from '@temporalio/activity';
import type { Activities } from '../activities/index.js';
import { logContext, type LogContext } from '../log.js';
import { findBundle } from './bundle.js';
import type { OutcomeSinks, WorkflowOutcome } from './outcome-interceptor.js';

/** A module of this package, as the .ts source under tsx/vitest or the .js build under node. */
function modulePath(relative: string): string {
  for (const ext of ['ts', 'js']) {
    const p = fileURLToPath(new URL(`${relative}.${ext}`, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error(`module ${relative} not found`);
}

/** The workflow entry module: the .ts source under tsx/vitest, the .js build under node. */
export function workflowsPath(): string {
  return modulePath('../workflows/index');
}

export interface WorkerOptions {
  address: string;
  namespace: string;
  taskQueue: string;
  activities: Activities;
  /** Where each workflow execution's outcome is counted (wo_workflow_outcomes_total). */
  recordOutcome?: (workflowType: string, outcome: WorkflowOutcome) => Promise<void>;
  /** A connection to use instead of a new one (shared with the API's client in one process). */
  connection?: NativeConnection;
}

export async function createWorker(
  opts: WorkerOptions,
): Promise<{ worker: Worker; connection: NativeConnection; workflowBundle: string | null }> {
  const connection = opts.connection ?? (await NativeConnection.connect({ address: opts.address }));
  // The prebuilt bundle holds the outcome interceptor: only for a worker that reports outcomes.
  const codePath = opts.recordOutcome ? findBundle(workflowsPath(), OUTCOME_INTERCEPTOR) : null;
  const worker = await Worker.create({
    connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    ...(codePath ? { workflowBundle: { codePath } } : { workflowsPath: workflowsPath() }),
    activities: opts.activities,
    ...(opts.recordOutcome ? outcomeReporting(opts.recordOutcome) : {}),
    interceptors: {
      // A prebuilt bundle has the interceptor inside (the SDK ignores these modules then).
      workflowModules: opts.recordOutcome && !codePath ? [OUTCOME_INTERCEPTOR] : [],
      activity: [activityLogContext],
    },
    // A crashed worker's sticky tasks move back to the shared queue quickly.
    stickyQueueScheduleToStartTimeout: '3s',
  });
  return { worker, connection, workflowBundle: codePath };
}

/** The workflow interceptor module that reports outcomes (bundled with the workflows). */
export const OUTCOME_INTERCEPTOR = modulePath('./outcome-interceptor');

/** The sink the outcome interceptor reports to: each execution's end, to `record`. */
export function outcomeReporting(record: (workflowType: string, outcome: WorkflowOutcome) => Promise<void>): {
  sinks: InjectedSinks<OutcomeSinks>;
} {
  return {
    sinks: {
      outcomes: {
        record: {
          fn: (info, outcome) => record(info.workflowType, outcome),
          // A replayed history ended long ago: counted when it ended.
          callDuringReplay: false,
        },
      },
    },
  };
}

/**
 * Every line an activity writes carries the workflow that scheduled it and the workspace it works
 * on (its input's `workspaceId`): the activity context logger's lines through its log attributes
 * (next to the activity fields the SDK adds), the service logger's (e.g. the EC2 backend's)
 * through the log context the activity runs in.
 */
export function activityLogContext(ctx: Pick<ActivityContext, 'info'>): ActivityInterceptors {
  const bound: LogContext = {};
  const workflowId = ctx.info.workflowExecution?.workflowId;
  if (workflowId) bound.workflowId = workflowId;
  return {
    inbound: {
      async execute(input, next) {
        const first = input.args[0] as { workspaceId?: unknown } | undefined;
        if (typeof first?.workspaceId === 'string') bound.workspaceId = first.workspaceId;
        return logContext.run(bound, () => next(input));
      },
    },
    outbound: {
      getLogAttributes(attrs, next) {
        return next(bound.workspaceId ? { ...attrs, workspaceId: bound.workspaceId } : attrs);
      },
    },
  };
}
