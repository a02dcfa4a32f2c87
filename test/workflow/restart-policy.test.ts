/**
 * The entity's restart policy on the time-skipping test server with scripted activities: offline
 * restarts by itself at a new generation with growing backoff, too many restarts end `failed` with
 * the history, a healthy period resets the count, `never` waits for the user, a user stop wins.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  agentLivenessSignal,
  deleteUpdate,
  restartPolicyUpdate,
  restartUpdate,
  startUpdate,
  stopUpdate,
  type RestartPolicyInput,
} from '../../src/workflows/messages.js';
import {
  createEnv,
  permanent,
  replayAndRecord,
  settledAt,
  skipTime,
  startEntity,
  transient,
  until,
  withWorker,
  type Harness,
} from './harness.js';

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await createEnv();
});
afterAll(async () => {
  await env?.teardown();
});

const POLICY: RestartPolicyInput = {
  max: 3,
  windowMs: 3_600_000,
  degradedAfterMs: 20_000,
  backoffInitialMs: 5_000,
  backoffMaxMs: 60_000,
  healthyResetMs: 120_000,
};

const online = (h: Harness, handle: WorkflowHandle, generation: number) =>
  until(h, handle, settledAt('online', generation), `online at generation ${generation}`);

/** What the health sweep sends when the resource of `generation` is found stopped. */
const goOffline = (handle: WorkflowHandle, generation: number) =>
  handle.signal(agentLivenessSignal, { generation, reachable: false, resourceStatus: 'stopped' });

/**
 * The agent silent and the backend reading `status` for generation 1, to the sweep (the signal)
 * and to the entity's own look before a restart (the fake) alike.
 */
async function agentSilent(
  h: Harness,
  handle: WorkflowHandle,
  status: 'running' | 'missing' | 'unknown',
): Promise<void> {
  h.fakes.resourceStatus = () => status;
  await handle.signal(agentLivenessSignal, { generation: 1, reachable: false, resourceStatus: status });
}

/** An entity allowed one automatic restart, online at generation 2 once it used it. */
async function restartUsedUp(h: Harness): Promise<WorkflowHandle> {
  const handle = await startEntity(h, { restartPolicy: { ...POLICY, max: 1 } });
  await online(h, handle, 1);
  await goOffline(handle, 1);
  await online(h, handle, 2);
  return handle;
}

/** When each generation's resource was started (workflow clock). */
const startedAt = (h: Harness, generation: number) =>
  h.fakes.calls.find((c) => c.name === 'startResource' && c.input.generation === generation)?.at ?? NaN;

/** When each automatic restart began: its `restarting` transition, in the task that decided it. */
const restartsAt = (h: Harness) =>
  h.fakes.calls
    .filter(
      (c) =>
        c.name === 'recordTransition' && c.input.status === 'restarting' && c.input.phase === 'preparing',
    )
    .map((c) => c.at);

/** Generations recorded as given up with their resource still there (discardedGeneration). */
const discardedRecords = (h: Harness): unknown[] =>
  h.fakes.calls
    .filter((c) => c.name === 'recordTransition' && c.input.discardedGeneration !== undefined)
    .map((c) => c.input.discardedGeneration);

/** Where in the calls the first `name` call for `generation` is. */
const indexOf = (h: Harness, name: 'removeResource', generation: number) =>
  h.fakes.calls.findIndex((c) => c.name === name && c.input.generation === generation);

/** Where in the calls the first `failed` transition is. */
const failedAt = (h: Harness) =>
  h.fakes.calls.findIndex((c) => c.name === 'recordTransition' && c.input.status === 'failed');

async function deleteAndComplete(h: Harness, handle: WorkflowHandle, record?: string) {
  await handle.executeUpdate(deleteUpdate);
  await until(h, handle, (s) => s.status === 'deleted', 'deleted');
  await handle.result();
  await replayAndRecord(handle, record);
}

describe('entity workflow: restart policy', () => {
  it('restarts an offline workspace at a new generation, with a growing backoff between restarts', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h, { restartPolicy: POLICY });
      await online(h, handle, 1);
      await goOffline(handle, 1);
      const second = await online(h, handle, 2);
      expect(second.restartCount).toBe(1);
      expect(second.lastRestartReason).toBe('offline');
      await goOffline(handle, 2);
      await online(h, handle, 3);
      await goOffline(handle, 3);
      const fourth = await online(h, handle, 4);
      expect(fourth.restartCount).toBe(3);
      // The second restart waited ≥ 5 s after the first, the third ≥ 10 s after the second.
      const [r1, r2, r3] = restartsAt(h);
      expect(restartsAt(h)).toHaveLength(3);
      // Backoff 5 s then 10 s, measured from the decision's workflow time; these timestamps are
      // when the first activity after it was scheduled, which trails the decision by its workflow
      // task's processing time (milliseconds, more on a loaded machine): allow for that.
      const TASK_SLACK_MS = 200;
      expect(r2! - r1!).toBeGreaterThanOrEqual(5_000 - TASK_SLACK_MS);
      expect(r3! - r2!).toBeGreaterThanOrEqual(10_000 - TASK_SLACK_MS);
      // The old generation goes before the new one boots; the DB got the counters.
      expect(h.fakes.count('removeResource', (i) => i.generation === 1)).toBe(1);
      const counted = h.fakes.calls.filter((c) => c.name === 'recordTransition' && c.input.restart);
      expect(counted.at(-1)?.input.restart).toEqual({ count: 3, lastReason: 'offline' });
      await deleteAndComplete(h, handle, 'auto-restart');
    });
  });

  it('goes failed after the maximum of restarts in the window, naming them', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h, { restartPolicy: { ...POLICY, max: 2 } });
      await online(h, handle, 1);
      await goOffline(handle, 1);
      await online(h, handle, 2);
      await goOffline(handle, 2);
      await online(h, handle, 3);
      await goOffline(handle, 3);
      const failed = await until(h, handle, settledAt('failed', 3), 'failed');
      expect(failed.error).toBe(
        'offline after 2 automatic restarts within 3600000 ms: generation 1 (offline), generation 2 (offline)',
      );
      expect(failed.restartCount).toBe(2);
      expect(h.fakes.count('startResource', (i) => i.generation === 4)).toBe(0);
      expect(h.fakes.transitions.at(-1)).toEqual(
        expect.objectContaining({ status: 'failed', generation: 3 }),
      );
      // Nothing uses the given-up generation again: it goes as a failed boot's does (console kept,
      // resource removed) before the workspace is `failed`, so nothing of it runs on unseen.
      expect(h.fakes.count('captureBootLog', (i) => i.generation === 3)).toBe(1);
      expect(h.fakes.count('removeResource', (i) => i.generation === 3)).toBe(1);
      expect(indexOf(h, 'removeResource', 3)).toBeLessThan(failedAt(h));
      expect(discardedRecords(h)).toEqual([]);
      // (wf-auto-restart-failed.json is this story as the code before the teardown recorded it.)
      await deleteAndComplete(h, handle, 'auto-restart-give-up');
    });
  });

  it('a given-up generation whose removal fails is recorded discarded (the orphan sweep takes it); restart works', async () => {
    await withWorker(env, async (h) => {
      const handle = await restartUsedUp(h);
      h.fakes.faults.removeResource = (_n, i) =>
        i.generation === 2 && h.fakes.count('removeResource', (c) => c.generation === 2) === 1
          ? permanent('removeResource')
          : null;
      await goOffline(handle, 2);
      const failed = await until(h, handle, settledAt('failed', 2), 'failed');
      expect(failed.error).toBe(
        'offline after 1 automatic restarts within 3600000 ms: generation 1 (offline); ' +
          'removing generation 2 failed: removeResource refused for good',
      );
      expect(h.fakes.count('captureBootLog', (i) => i.generation === 2)).toBe(1);
      // Still there, and current: only the discarded mark lets the orphan sweep remove it.
      expect(discardedRecords(h)).toEqual([2]);
      await handle.executeUpdate(restartUpdate);
      await online(h, handle, 3);
      expect(h.fakes.count('removeResource', (i) => i.generation === 2)).toBe(2);
      await deleteAndComplete(h, handle, 'auto-restart-give-up-discarded');
    });
  });

  it('a start accepted while the given-up generation is torn down boots a new generation after it', async () => {
    await withWorker(env, async (h) => {
      const handle = await restartUsedUp(h);
      let release = () => {};
      h.fakes.gates.removeResource = new Promise<void>((resolve) => (release = resolve));
      await goOffline(handle, 2);
      await until(
        h,
        handle,
        () => h.fakes.count('removeResource', (i) => i.generation === 2) === 1,
        'teardown',
        0,
      );
      await handle.executeUpdate(startUpdate);
      release();
      const back = await online(h, handle, 3);
      // The start came after the give-up: a new streak.
      expect(back.restartCount).toBe(0);
      expect(h.fakes.transitions.filter((t) => t.status === 'failed').map((t) => t.generation)).toEqual([2]);
      // Recorded as the first history whose run decided every patch in its first task.
      await deleteAndComplete(h, handle, 'patches-decided-at-start');
    });
  });

  it('resets the count after a healthy period', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h, { restartPolicy: { ...POLICY, max: 1 } });
      await online(h, handle, 1);
      await goOffline(handle, 1);
      expect((await online(h, handle, 2)).restartCount).toBe(1);
      // Healthy for healthyResetMs: the streak is over, so the next outage restarts again.
      await until(h, handle, (s) => s.restartCount === 0, 'restart count reset', 10_000, 30);
      await goOffline(handle, 2);
      const third = await online(h, handle, 3);
      expect(third.restartCount).toBe(1);
      await deleteAndComplete(h, handle);
    });
  });

  it('restarts a workspace degraded past the threshold, not before', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h, { restartPolicy: POLICY });
      await online(h, handle, 1);
      // Its resource running: the restart's own look finds it running too.
      await agentSilent(h, handle, 'running');
      const degraded = await until(h, handle, settledAt('degraded', 1), 'degraded', 0);
      // The workspace says why, not only its transition.
      expect(degraded.error).toBe('agent unreachable');
      expect(h.fakes.transitions.at(-1)).toMatchObject({ status: 'degraded', error: 'agent unreachable' });
      const degradedAt = h.fakes.calls.filter((c) => c.name === 'recordTransition').at(-1)!.at;
      const back = await online(h, handle, 2);
      expect(back.error).toBeNull();
      expect(back.lastRestartReason).toBe('degraded for 20000 ms');
      expect(startedAt(h, 2) - degradedAt).toBeGreaterThanOrEqual(20_000);
      await deleteAndComplete(h, handle);
    });
  });

  it('a restart due while the backend cannot be read is held, and goes ahead once a listing answers', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h, { restartPolicy: POLICY });
      await online(h, handle, 1);
      // The backend's API is down and the agent silent: the sweep can only say `unknown`.
      await agentSilent(h, handle, 'unknown');
      await until(h, handle, settledAt('degraded', 1), 'degraded', 0);
      await skipTime(h, handle, 5 * POLICY.degradedAfterMs!);
      const held = await until(h, handle, settledAt('degraded', 1), 'still degraded');
      expect(held.restartCount).toBe(0);
      // It looked at the backend each time the restart came due, and did not boot into the outage.
      expect(h.fakes.count('resourceStatus')).toBeGreaterThanOrEqual(2);
      expect(h.fakes.count('removeResource')).toBe(0);
      expect(h.fakes.count('prepareGeneration', (i) => i.generation === 2)).toBe(0);

      // The API answers again and the next sweep finds the resource gone: restarted at once.
      await agentSilent(h, handle, 'missing');
      const back = await online(h, handle, 2);
      expect(back.restartCount).toBe(1);
      expect(back.lastRestartReason).toBe('offline');
      await deleteAndComplete(h, handle, 'auto-restart-held');
    });
  });

  // Readable again, but no sweep says so (its verdict, degraded, did not change): the entity's own
  // second look finds it and restarts. Found running, the restart is for the degraded agent; found
  // gone (the backend came back from its outage without the instance: moto restarted), it is for
  // an offline workspace, as the sweep's verdict would have said.
  it.each([
    ['running', 'degraded for 20000 ms'],
    ['missing', 'offline'],
  ] as const)(
    'a held restart looks at the backend again after another degraded period (%s: %s)',
    async (found, reason) => {
      await withWorker(env, async (h) => {
        const handle = await startEntity(h, { restartPolicy: POLICY });
        await online(h, handle, 1);
        await agentSilent(h, handle, 'unknown');
        await until(
          h,
          handle,
          (s) => s.status === 'degraded' && h.fakes.count('resourceStatus') >= 1,
          'held',
        );
        h.fakes.resourceStatus = () => found;
        const back = await online(h, handle, 2);
        expect(back.lastRestartReason).toBe(reason);
        expect(back.restartCount).toBe(1);
        expect(h.fakes.count('resourceStatus')).toBe(2);
        await deleteAndComplete(h, handle);
      });
    },
  );

  it('a look at the backend that fails (a hung endpoint) holds the restart too', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h, { restartPolicy: POLICY });
      await online(h, handle, 1);
      let failing = true;
      h.fakes.faults.resourceStatus = () => (failing ? transient('resourceStatus') : null);
      await goOffline(handle, 1);
      // Three attempts (the probe's retry policy), then held: nothing removed, nothing booted.
      await until(h, handle, (s) => s.status === 'offline' && h.fakes.count('resourceStatus') >= 3, 'held');
      expect(h.fakes.count('removeResource')).toBe(0);
      failing = false;
      const back = await online(h, handle, 2);
      expect(back.restartCount).toBe(1);
      expect(h.fakes.count('resourceStatus')).toBe(4);
      await deleteAndComplete(h, handle);
    });
  });

  it('policy never: an offline workspace waits for the user', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h, { restartPolicy: { ...POLICY, policy: 'never' } });
      await online(h, handle, 1);
      await goOffline(handle, 1);
      await until(h, handle, settledAt('offline', 1), 'offline');
      await skipTime(h, handle, 600_000);
      const still = await until(h, handle, settledAt('offline', 1), 'still offline');
      expect(still.restartCount).toBe(0);
      expect(h.fakes.count('prepareGeneration', (i) => i.generation === 2)).toBe(0);
      await deleteAndComplete(h, handle);
    });
  });

  it('a policy changed on a live entity applies to its next decision, with no restart of the workspace', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h, { restartPolicy: { ...POLICY, policy: 'always' } });
      await online(h, handle, 1);
      // never: saved through the entity, then an offline workspace waits for the user.
      expect(
        await handle.executeUpdate(restartPolicyUpdate, { args: [{ policy: 'never', override: 'never' }] }),
      ).toEqual({ restartPolicy: 'never' });
      expect(
        h.fakes.calls.filter((c) => c.name === 'saveRestartPolicy').map((c) => c.input.override),
      ).toEqual(['never']);
      expect(h.fakes.count('prepareGeneration')).toBe(1);
      await goOffline(handle, 1);
      await until(h, handle, settledAt('offline', 1), 'offline');
      await skipTime(h, handle, 600_000);
      await until(h, handle, settledAt('offline', 1), 'still offline');
      expect(h.fakes.count('prepareGeneration', (i) => i.generation === 2)).toBe(0);
      // always (null: back to the default): the waiting offline workspace restarts on its own.
      await handle.executeUpdate(restartPolicyUpdate, { args: [{ policy: 'always', override: null }] });
      const back = await online(h, handle, 2);
      expect(back.restartCount).toBe(1);
      expect(back.lastRestartReason).toBe('offline');
      await deleteAndComplete(h, handle, 'restart-policy-update');
    });
  });

  it('a user stop during the backoff wins over the automatic restart', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h, { restartPolicy: { ...POLICY, backoffInitialMs: 600_000 } });
      await online(h, handle, 1);
      await goOffline(handle, 1);
      await online(h, handle, 2);
      await goOffline(handle, 2);
      await until(h, handle, settledAt('offline', 2), 'offline', 0);
      await handle.executeUpdate(stopUpdate);
      await until(h, handle, settledAt('stopped', 2), 'stopped');
      await skipTime(h, handle, 1_200_000);
      expect((await until(h, handle, settledAt('stopped', 2), 'still stopped')).restartCount).toBe(0);
      expect(h.fakes.count('prepareGeneration', (i) => i.generation === 3)).toBe(0);
      await deleteAndComplete(h, handle, 'auto-restart-stop-wins');
    });
  });
});
