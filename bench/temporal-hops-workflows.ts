/**
 * The workflow bench/temporal-hops.ts times: one hop of each kind the entity workflow makes, each
 * ending in an activity that records when it ran (the bench's `mark`), and an Update answered
 * after a 1 ms timer, as the entity answers every Update (its answer-time check).
 */
import {
  condition,
  defineSignal,
  defineUpdate,
  proxyActivities,
  setHandler,
  sleep,
} from '@temporalio/workflow';

export interface HopActivities {
  mark(workflowId: string, step: number): Promise<void>;
}

const { mark } = proxyActivities<HopActivities>({ startToCloseTimeout: '10s' });

export const goSignal = defineSignal('go');
export const stepUpdate = defineUpdate<void>('step');

export async function hopsWorkflow(workflowId: string): Promise<void> {
  let go = false;
  let stepped = false;
  setHandler(goSignal, () => {
    go = true;
  });
  setHandler(stepUpdate, async () => {
    await sleep(1); // a new workflow task after the one that accepted it
    stepped = true;
  });
  await mark(workflowId, 1); // the start: first workflow task, an activity scheduled
  await mark(workflowId, 2); // an activity's completion: a workflow task, the next activity
  await condition(() => go);
  await mark(workflowId, 3); // a signal: a workflow task, an activity
  await condition(() => stepped); // an Update: accepted, a timer, answered
}
