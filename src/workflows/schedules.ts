/**
 * One run of a workspace schedule, started by its Temporal Schedule (or its run-now trigger). The
 * send is one activity attempt: a `message/send` is not idempotent, so a run never sends twice; a
 * run whose attempt was lost (worker died) is recorded failed instead.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

export interface ScheduledRunInput {
  workspaceId: string;
  scheduleId: string;
}

export type ScheduledRunStatus = 'ok' | 'failed' | 'skipped';

const send = proxyActivities<Activities>({
  // The proxy's own limits end a call long before this (connect 10 s, idle 30 s per byte).
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30s',
  retry: { maximumAttempts: 1 },
});
const db = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 10 },
});

export async function scheduledMessageWorkflow(input: ScheduledRunInput): Promise<ScheduledRunStatus> {
  try {
    return await send.runScheduledMessage.executeWithOptions(
      {
        summary: `send schedule ${input.scheduleId}'s message to workspace ${input.workspaceId} (message/send)`,
      },
      [input],
    );
  } catch (err) {
    // An ActivityFailure's own message is generic ("activity task timed out"); its cause says why.
    const cause = (err as { cause?: unknown }).cause;
    const message = cause instanceof Error ? cause.message : err instanceof Error ? err.message : String(err);
    await db.recordScheduleRun.executeWithOptions(
      { summary: `record schedule ${input.scheduleId}'s run failed` },
      [{ ...input, status: 'failed', error: `run failed: ${message}`, durationMs: null }],
    );
    return 'failed';
  }
}
