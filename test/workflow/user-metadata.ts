/**
 * The user metadata a history carries for the Temporal UI: each scheduled activity's and each
 * timer's summary (what the workflow says it is doing).
 */
import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';

// temporal.api.enums.v1.EventType
const ACTIVITY_TASK_SCHEDULED = 10;
const TIMER_STARTED = 17;

export interface Told {
  activities: Array<{ type: string; summary: string | undefined }>;
  timers: Array<string | undefined>;
}

const text = (p: Payload | null | undefined): string | undefined =>
  p ? defaultPayloadConverter.fromPayload<string>(p) : undefined;

/** The summaries the history carries: each scheduled activity's and each timer's. */
export async function told(handle: WorkflowHandle): Promise<Told> {
  const events = (await handle.fetchHistory()).events ?? [];
  return {
    activities: events
      .filter((e) => e.eventType === ACTIVITY_TASK_SCHEDULED)
      .map((e) => ({
        type: e.activityTaskScheduledEventAttributes?.activityType?.name ?? '',
        summary: text(e.userMetadata?.summary),
      })),
    timers: events.filter((e) => e.eventType === TIMER_STARTED).map((e) => text(e.userMetadata?.summary)),
  };
}
