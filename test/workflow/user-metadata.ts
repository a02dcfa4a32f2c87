/**
 * The user metadata a history carries for the Temporal UI: each scheduled activity's (a local
 * activity's on its marker) and each timer's summary (what the workflow says it is doing).
 */
import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';

// temporal.api.enums.v1.EventType
const ACTIVITY_TASK_SCHEDULED = 10;
const TIMER_STARTED = 17;
const MARKER_RECORDED = 25;
/** The marker core records for a local activity; its `data` detail names the activity type. */
const LOCAL_ACTIVITY_MARKER = 'core_local_activity';

export interface Told {
  activities: Array<{ type: string; summary: string | undefined }>;
  timers: Array<string | undefined>;
}

const text = (p: Payload | null | undefined): string | undefined =>
  p ? defaultPayloadConverter.fromPayload<string>(p) : undefined;

/** The summaries the history carries: each scheduled activity's (local ones too) and each timer's. */
export async function told(handle: WorkflowHandle): Promise<Told> {
  const events = (await handle.fetchHistory()).events ?? [];
  return {
    activities: events.flatMap((e) => {
      if (e.eventType === ACTIVITY_TASK_SCHEDULED) {
        return [
          {
            type: e.activityTaskScheduledEventAttributes?.activityType?.name ?? '',
            summary: text(e.userMetadata?.summary),
          },
        ];
      }
      const marker = e.markerRecordedEventAttributes;
      if (e.eventType !== MARKER_RECORDED || marker?.markerName !== LOCAL_ACTIVITY_MARKER) return [];
      const data = marker.details?.data?.payloads?.[0];
      const type = data
        ? (defaultPayloadConverter.fromPayload<{ activity_type?: string }>(data).activity_type ?? '')
        : '';
      return [{ type, summary: text(e.userMetadata?.summary) }];
    }),
    timers: events.filter((e) => e.eventType === TIMER_STARTED).map((e) => text(e.userMetadata?.summary)),
  };
}
