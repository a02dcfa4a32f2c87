/**
 * Workflow interceptor (bundled into the workflow sandbox with the workflows: imports only
 * @temporalio/workflow). Reports how each workflow execution ends to the worker through a sink, for
 * `wo_workflow_outcomes_total`. A sink call adds no command to the history, so replays and
 * determinism are unaffected, and it is not repeated when a history is replayed.
 */
import {
  ContinueAsNew,
  isCancellation,
  proxySinks,
  TemporalFailure,
  type Sinks,
  type WorkflowInterceptorsFactory,
} from '@temporalio/workflow';

export type WorkflowOutcome = 'completed' | 'failed' | 'cancelled' | 'continued_as_new';

export interface OutcomeSinks extends Sinks {
  outcomes: { record(outcome: WorkflowOutcome): void };
}

const { outcomes } = proxySinks<OutcomeSinks>();

export const interceptors: WorkflowInterceptorsFactory = () => ({
  inbound: [
    {
      async execute(input, next) {
        try {
          const result = await next(input);
          outcomes.record('completed');
          return result;
        } catch (err) {
          if (err instanceof ContinueAsNew) outcomes.record('continued_as_new');
          else if (isCancellation(err)) outcomes.record('cancelled');
          // Only a TemporalFailure fails the execution; any other error fails the workflow task,
          // which is retried: not an outcome.
          else if (err instanceof TemporalFailure) outcomes.record('failed');
          throw err;
        }
      },
    },
  ],
});
