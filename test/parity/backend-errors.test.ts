/**
 * Permanent backend errors fail the workspace at once (non-retryable, named in `error`, nothing
 * left behind); throttling is retried with backoff and the workspace still comes up with exactly
 * one resource. Docker's permanent error is a missing image; EC2's come from the API itself.
 */
import { describe, expect, test } from 'vitest';
import type { BackendKind } from '../../src/backends/backend.js';
import { workspaceWorkflowId } from '../../src/workflows/messages.js';
import type { SimKnobs } from '../ec2-sim/sim.js';
import { waitForStatus } from '../support/stack.js';
import {
  leftovers,
  CONCURRENT_BLOCK,
  PARITY_BACKENDS,
  resourcesOf,
  useParityStack,
  type ParityFixture,
} from './backends.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

interface PermanentCase {
  name: string;
  runtime?: string;
  knobs?: SimKnobs;
  error: RegExp;
}

const PERMANENT: Record<BackendKind, PermanentCase[]> = {
  docker: [
    {
      name: 'an image that does not exist',
      runtime: 'ghost',
      error: /wo-missing:none.*not found|not found.*wo-missing/i,
    },
  ],
  ec2: [
    {
      name: 'an invalid AMI',
      knobs: { launchError: 'InvalidAMIID.NotFound' },
      error: /InvalidAMIID\.NotFound/,
    },
    {
      name: 'an unauthorized call',
      knobs: { launchError: 'UnauthorizedOperation' },
      error: /UnauthorizedOperation/,
    },
    {
      name: 'insufficient capacity',
      knobs: { launchError: 'InsufficientInstanceCapacity' },
      error: /InsufficientInstanceCapacity/,
    },
  ],
};

/** Attempts Temporal made of the workflow's failed startResource activity. */
async function failedStartAttempts(t: ParityFixture, id: string): Promise<number[]> {
  const history = await t.stack.service.temporal.workflow.getHandle(workspaceWorkflowId(id)).fetchHistory();
  const events = history.events ?? [];
  const byId = new Map(events.map((e) => [Number(e.eventId), e]));
  return events
    .filter((e) => e.activityTaskFailedEventAttributes)
    .map((e) => byId.get(Number(e.activityTaskFailedEventAttributes?.startedEventId)))
    .map((started) => started?.activityTaskStartedEventAttributes?.attempt ?? -1);
}

describe.each(PARITY_BACKENDS)('%s: backend errors', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend, {
    env: { RUNTIME_IMAGES: JSON.stringify({ ghost: 'wo-missing:none' }) },
  });

  it.each(PERMANENT[backend])('$name → failed at once, error named, nothing left', async (c) => {
    const key = c.knobs ? await t.orgWithKnobs(c.knobs) : t.key;
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: key,
      body: { name: 'doomed', backend, ...(c.runtime ? { runtime: c.runtime } : {}) },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    const failed = await waitForStatus(t.stack, key, id, 'failed', 60_000);
    expect(failed.error).toMatch(c.error);
    // Non-retryable: the one failed attempt was the first.
    expect(await failedStartAttempts(t, id)).toEqual([1]);
    expect(await leftovers(backend, t.stack.docker, id, { keepVolumes: true })).toEqual([]);
    await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: key });
    await waitForStatus(t.stack, key, id, 'deleted');
    expect(await leftovers(backend, t.stack.docker, id)).toEqual([]);
  });
});

// EC2 only: Docker has no API throttling to retry.
describe('ec2: throttled launches', CONCURRENT_BLOCK, () => {
  const t = useParityStack('ec2');
  const backend = 'ec2' as const;

  it('throttling is retried with backoff: online with exactly one instance', async () => {
    const key = await t.orgWithKnobs({ throttleLaunches: 3 });
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: key,
      body: { name: 'patient', backend },
    });
    const id: string = created.body.id;
    const online = await waitForStatus(t.stack, key, id, 'online');
    expect(online.generation).toBe(1);
    expect((await resourcesOf(backend, t.stack.docker, id)).map((r) => r.name)).toEqual([`ws-${id}-g1`]);
    await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: key });
    await waitForStatus(t.stack, key, id, 'deleted');
  });
});
