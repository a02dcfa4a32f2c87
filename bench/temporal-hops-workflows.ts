/**
 * The workflow bench/temporal-hops.ts times: one hop of each kind the entity workflow makes, each
 * ending in an activity that records when it ran (the bench's `mark`).
 */
import { condition, defineSignal, proxyActivities, setHandler } from '@temporalio/workflow';

export interface HopActivities {
  mark(workflowId: string, step: number): Promise<void>;
}

const { mark } = proxyActivities<HopActivities>({ startToCloseTimeout: '10s' });

export const goSignal = defineSignal('go');

export async function hopsWorkflow(workflowId: string): Promise<void> {
  let go = false;
  setHandler(goSignal, () => {
    go = true;
  });
  await mark(workflowId, 1); // the start: first workflow task, an activity scheduled
  await mark(workflowId, 2); // an activity's completion: a workflow task, the next activity
  await condition(() => go);
  await mark(workflowId, 3); // a signal: a workflow task, an activity
}
