/**
 * backendCall (src/activities/index.ts): a backend call runs to its end; a cancellation the
 * workflow asked for meanwhile is what the try reports, any other cancel reason is not.
 */
import { ActivityCancellationDetails, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { backendCall } from '../../src/activities/index.js';
import { BackendError } from '../../src/backends/backend.js';

/** A call held until released, with the environment cancelled while it runs. */
async function cancelledWhileRunning<T>(
  reason: 'CANCELLED' | 'WORKER_SHUTDOWN',
  details: ActivityCancellationDetails,
  outcome: () => Promise<T>,
): Promise<{ ran: boolean; result: PromiseSettledResult<T> }> {
  const env = new MockActivityEnvironment();
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  let ran = false;
  const call = env.run((): Promise<T> =>
    backendCall(async () => {
      await held;
      ran = true;
      return outcome();
    }),
  );
  env.cancel(reason, details);
  release();
  const [result] = await Promise.allSettled([call]);
  return { ran, result: result! };
}

describe('backendCall and cancellation', () => {
  it('a cancellation the workflow asked for: the call ends, then the try reports cancelled', async () => {
    for (const outcome of [
      async () => 'started',
      async () => {
        throw new Error('volume still attached');
      },
    ]) {
      const { ran, result } = await cancelledWhileRunning(
        'CANCELLED',
        new ActivityCancellationDetails({ cancelRequested: true }),
        outcome,
      );
      expect(ran).toBe(true);
      expect(result.status).toBe('rejected');
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(CancelledFailure);
    }
  });

  it('a worker shutting down is no cancellation of the try: its own outcome is reported', async () => {
    const ok = await cancelledWhileRunning(
      'WORKER_SHUTDOWN',
      new ActivityCancellationDetails({ workerShutdown: true }),
      async () => 'started',
    );
    expect(ok.result).toEqual({ status: 'fulfilled', value: 'started' });
    const refused = await cancelledWhileRunning(
      'WORKER_SHUTDOWN',
      new ActivityCancellationDetails({ workerShutdown: true }),
      async () => {
        throw new BackendError('permanent', 'no such image');
      },
    );
    expect((refused.result as PromiseRejectedResult).reason).toMatchObject({
      type: 'BackendError.permanent',
      nonRetryable: true,
    });
  });
});
