/**
 * How a workflow's timer ended, found by the summary the workflow gave it (what the Temporal UI
 * shows): a wait cut short is `cancelled`, one waited out `fired`.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';

export async function timerOutcome(
  handle: WorkflowHandle,
  summary: string,
): Promise<'fired' | 'cancelled' | 'pending' | 'never started'> {
  const events = (await handle.fetchHistory()).events ?? [];
  const started = events.find(
    (e) =>
      e.timerStartedEventAttributes &&
      e.userMetadata?.summary &&
      defaultPayloadConverter.fromPayload<string>(e.userMetadata.summary) === summary,
  );
  const timerId = started?.timerStartedEventAttributes?.timerId;
  if (!timerId) return 'never started';
  if (events.some((e) => e.timerFiredEventAttributes?.timerId === timerId)) return 'fired';
  if (events.some((e) => e.timerCanceledEventAttributes?.timerId === timerId)) return 'cancelled';
  return 'pending';
}
