/**
 * Every branch of the entity workflow on the time-skipping test server with scripted activities:
 * boot deadline, configure during boot, a permanent failure at each step (each ending failed and
 * each followed by restart/stop/delete working), delete retrying until the resource is gone,
 * continue-as-new carrying the whole state, start/restart from offline, degraded and failed.
 */
import {
  WorkflowUpdateFailedError,
  type WorkflowHandle,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FailureType,
  agentHealthSignal,
  agentLivenessSignal,
  agentReadySignal,
  configureUpdate,
  deleteUpdate,
  restartPolicyUpdate,
  restartUpdate,
  startUpdate,
  stateQuery,
  stopUpdate,
  platformStopUpdate,
  type Accepted,
  type CarriedState,
  type RequestDeadline,
  type WorkspaceWorkflowInput,
} from '../../src/workflows/messages.js';
import { DELETE_BACKOFF_INITIAL_MS, deleteBackoffMs } from '../../src/workflows/workspace/decide.js';
import {
  createEnv,
  permanent,
  pgDataError,
  replayAndRecord,
  settledAt,
  skipTime,
  startEntity,
  transient,
  until,
  withWorker,
  type Harness,
} from './harness.js';
import { waitFor } from '../setup/wait-for.js';
import { timerOutcome } from '../support/timer-outcome.js';

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await createEnv();
});
afterAll(async () => {
  await env?.teardown();
});

/** The Update's failure type, or null when it succeeded. */
async function failureOf(p: Promise<unknown>): Promise<{ type: string | undefined; field?: string } | null> {
  try {
    await p;
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    const cause = (err as WorkflowUpdateFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    const failure = cause as ApplicationFailure;
    const field = (failure.details?.[0] as { field?: string } | undefined)?.field;
    return { type: failure.type ?? undefined, ...(field ? { field } : {}) };
  }
}

async function online(h: Harness, handle: WorkflowHandle, generation: number) {
  return until(h, handle, settledAt('online', generation), `online at generation ${generation}`);
}

/** Generations the entity recorded as given up with their resource still there (discardedGeneration). */
function discardedRecords(h: Harness): unknown[] {
  return h.fakes.calls
    .filter((c) => c.name === 'recordTransition' && c.input.discardedGeneration !== undefined)
    .map((c) => c.input.discardedGeneration);
}

/** An online entity whose stop the backend refuses for good, once the first refusal is recorded. */
async function refusedStop(h: Harness): Promise<WorkflowHandle> {
  const handle = await startEntity(h);
  await online(h, handle, 1);
  h.fakes.faults.stopResource = () => permanent('stopResource');
  await handle.executeUpdate(stopUpdate);
  await until(h, handle, (s) => s.status === 'stopping' && s.error !== null && !s.busy, 'refused', 0);
  return handle;
}

/** The messages of the stop attempts the backend refused, in order. */
function stopMessages(h: Harness): string[] {
  return h.fakes.calls
    .filter((c) => c.name === 'recordTransition' && /^stop attempt/.test(String(c.input.message)))
    .map((c) => String(c.input.message));
}

/**
 * An online entity restarted with its start held (and failing as retryable for generation 2: an
 * ec2 volume that does not come free). `interrupt` asks for what cancels it; `meanwhile` runs once
 * the entity asked to cancel the start and the held try learnt of it; then the try ends.
 */
async function interruptHeldStart(
  h: Harness,
  interrupt: (handle: WorkflowHandle) => Promise<unknown>,
  meanwhile: (handle: WorkflowHandle) => Promise<void>,
): Promise<WorkflowHandle> {
  const handle = await startEntity(h);
  await online(h, handle, 1);
  let release = () => {};
  h.fakes.gates.startResource = new Promise<void>((resolve) => (release = resolve));
  h.fakes.faults.startResource = (_n, i) => (i.generation === 2 ? transient('startResource') : null);
  await handle.executeUpdate(restartUpdate);
  await until(h, handle, () => h.fakes.count('startResource') === 2, 'the start running', 0);
  await interrupt(handle);
  try {
    await cancelRequested(h, handle, 'startResource');
    await meanwhile(handle);
  } finally {
    release(); // a held activity would hold the worker's shutdown
  }
  return handle;
}

/**
 * Once the entity asked for an activity's cancellation, its workflow task is over (what it does
 * without waiting for the activity has been done by then) and the held activity learnt of it.
 */
async function cancelRequested(h: Harness, handle: WorkflowHandle, name: 'startResource'): Promise<void> {
  // temporal.api.enums.v1.EventType: ACTIVITY_TASK_CANCEL_REQUESTED = 15 (written with the task's
  // completion), WORKFLOW_TASK_SCHEDULED = 5, WORKFLOW_TASK_STARTED = 6.
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const types = ((await handle.fetchHistory()).events ?? []).map((e) => e.eventType);
    const last = types.at(-1);
    if (types.includes(15) && last !== 5 && last !== 6 && h.fakes.cancelsSeen.includes(name)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('no activity cancellation requested within 30 s');
}

/**
 * Delete converges and the workflow completes (it never fails); its history replays against the
 * current code, and is recorded as a committed replay history when named (RECORD_REPLAY=1).
 */
async function deleteAndComplete(h: Harness, handle: WorkflowHandle, record?: string) {
  await handle.executeUpdate(deleteUpdate);
  await until(h, handle, (s) => s.status === 'deleted', 'deleted');
  await handle.result();
  expect(h.fakes.transitions.at(-1)?.status).toBe('deleted');
  await replayAndRecord(handle, record);
}

describe('entity workflow: happy path and configure', () => {
  it('provisions, restarts on a saved config, and ConfigureResult names the generation that boots it', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      const result = await handle.executeUpdate(configureUpdate, {
        args: [{ config: { v: 1 }, restart: true }],
      });
      expect(result.generation).toBe(2);
      await online(h, handle, 2);
      expect(h.fakes.snapshots.get(2)?.config).toEqual({ v: 1 });
      expect(h.fakes.snapshots.get(2)?.configHash).toBe(result.configHash);
      // Without restart: the next generation runs it, whenever it comes.
      const later = await handle.executeUpdate(configureUpdate, { args: [{ config: { v: 2 } }] });
      expect(later.generation).toBe(3);
      expect((await handle.query(stateQuery)).generation).toBe(2);
      await handle.executeUpdate(restartUpdate);
      await online(h, handle, 3);
      expect(h.fakes.snapshots.get(3)?.configHash).toBe(later.configHash);
      await deleteAndComplete(h, handle, 'happy-path');
      // Each transition names its step (run and number), the same on a retry: written once.
      const steps = h.fakes.calls.filter((c) => c.name === 'recordTransition').map((c) => c.input.step);
      const { runId } = await handle.describe();
      expect(steps).toEqual(steps.map((_, i) => `${runId}/${i + 1}`));
    });
  });
});

describe("entity workflow: Updates past their caller's deadline", () => {
  it('an Update the entity gets after its caller stopped waiting is refused and changes nothing', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      // Workflow time is the server's (skipped here): deadlines are taken from it.
      const late: RequestDeadline = { notAfterMs: (await env.currentTimeMs()) - 1 };
      const restartLate = handle.executeUpdate<Accepted, [RequestDeadline]>(restartUpdate.name, {
        args: [late],
      });
      expect(await failureOf(restartLate)).toEqual({ type: FailureType.Expired });
      const saveLate = handle.executeUpdate(configureUpdate, {
        args: [{ config: { v: 1 }, restart: true, ...late }],
      });
      expect(await failureOf(saveLate)).toEqual({ type: FailureType.Expired });
      const deleteLate = handle.executeUpdate<Accepted, [RequestDeadline]>(deleteUpdate.name, {
        args: [late],
      });
      expect(await failureOf(deleteLate)).toEqual({ type: FailureType.Expired });
      expect(h.fakes.count('saveConfig')).toBe(0);
      expect((await handle.query(stateQuery)).status).toBe('online');
      // Taken in time, but its change would come after the caller's answer time (the next task
      // starts past it): accepted, then Expired, nothing changed.
      const answerGone: RequestDeadline = {
        notAfterMs: (await env.currentTimeMs()) + 600_000,
        answerByMs: await env.currentTimeMs(),
      };
      for (const name of [restartUpdate.name, stopUpdate.name, deleteUpdate.name]) {
        const late = handle.executeUpdate<Accepted, [RequestDeadline]>(name, { args: [answerGone] });
        expect(await failureOf(late), name).toEqual({ type: FailureType.Expired });
      }
      const saveGone = handle.executeUpdate(configureUpdate, {
        args: [{ config: { v: 2 }, restart: true, ...answerGone }],
      });
      expect(await failureOf(saveGone)).toEqual({ type: FailureType.Expired });
      expect(h.fakes.count('saveConfig')).toBe(0);
      const afterGone = await handle.query(stateQuery);
      expect(afterGone).toMatchObject({ status: 'online', generation: 1 });
      const accepted = ((await handle.fetchHistory()).events ?? []).filter(
        (e) => e.workflowExecutionUpdateAcceptedEventAttributes,
      );
      expect(accepted).toHaveLength(4);
      // In time, the same Update is taken.
      const inTime: RequestDeadline = {
        notAfterMs: (await env.currentTimeMs()) + 600_000,
        answerByMs: (await env.currentTimeMs()) + 600_000,
      };
      const taken = await handle.executeUpdate<Accepted, [RequestDeadline]>(restartUpdate.name, {
        args: [inTime],
      });
      expect(taken.accepted).toBe(true);
      await online(h, handle, 2);
      expect(h.fakes.count('startResource', (i) => i.generation === 2)).toBe(1);
      await deleteAndComplete(h, handle, 'update-answer-time');
    });
  });
  it("the task that checks an Update's answer time writes nothing: the step after it waits for that task's commit", async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      const inTime = async (): Promise<RequestDeadline> => {
        const now = await env.currentTimeMs();
        return { notAfterMs: now + 600_000, answerByMs: now + 600_000 };
      };
      const transitions = (from: number) =>
        h.fakes.calls
          .slice(from)
          .filter((c) => c.name === 'recordTransition')
          .map((c) => ({ status: c.input.status, local: c.local }));

      // A worker killed in the task that checks the answer time: that task is taken again later,
      // past it, and refuses the Update. A local step run in it (a `stopping`, a generation
      // prepared) stayed written; the first step now runs once the check is in the history.
      let from = h.fakes.calls.length;
      await handle.executeUpdate<Accepted, [RequestDeadline]>(stopUpdate.name, { args: [await inTime()] });
      await until(h, handle, settledAt('stopped', 1), 'stopped');
      expect(transitions(from)).toEqual([
        { status: 'stopping', local: false },
        { status: 'stopped', local: true },
      ]);
      from = h.fakes.calls.length;
      await handle.executeUpdate<Accepted, [RequestDeadline]>(startUpdate.name, { args: [await inTime()] });
      await online(h, handle, 1);
      expect(transitions(from)[0]).toEqual({ status: 'provisioning', local: false });
      expect(
        transitions(from)
          .slice(1)
          .every((t) => t.local),
      ).toBe(true);
      from = h.fakes.calls.length;
      await handle.executeUpdate(restartPolicyUpdate, {
        args: [{ policy: 'never', override: 'never', ...(await inTime()) }],
      });
      expect(h.fakes.calls.slice(from).map((c) => [c.name, c.local])).toEqual([['saveRestartPolicy', false]]);

      // In the history: no local step's marker among the commands of a task that checked.
      const events = (await handle.fetchHistory()).events ?? [];
      const checkTimers = new Set(
        events
          .filter((e) => Number(e.timerStartedEventAttributes?.startToFireTimeout?.nanos ?? 0) === 1_000_000)
          .map((e) => e.timerStartedEventAttributes?.timerId),
      );
      let checks = 0;
      events.forEach((e, i) => {
        if (!checkTimers.has(e.timerFiredEventAttributes?.timerId ?? undefined)) return;
        checks++;
        const completed = events.findIndex((x, j) => j > i && x.workflowTaskCompletedEventAttributes);
        const next = events.findIndex((x, j) => j > completed && x.workflowTaskScheduledEventAttributes);
        const commands = events.slice(completed + 1, next === -1 ? undefined : next);
        expect(
          commands.some((x) => x.markerRecordedEventAttributes?.markerName === 'core_local_activity'),
        ).toBe(false);
      });
      expect(checks).toBe(3);
      await deleteAndComplete(h, handle, 'check-task-writes-nothing');
    });
  });
  it('a config save queued behind a slow one fails Expired, unsaved, when its turn comes past its answer time', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      // The first save runs 1.5 s (the clock does not skip while it runs); the second, taken and
      // checked in time, waits behind it past its own answer time (a caller told 503 meanwhile).
      h.fakes.durations.saveConfig = (n) => (n === 1 ? 1_500 : 0);
      const now = await env.currentTimeMs();
      const first = handle.executeUpdate(configureUpdate, {
        args: [{ config: { v: 1 }, notAfterMs: now + 600_000, answerByMs: now + 600_000 }],
      });
      await waitFor(() => h.fakes.count('saveConfig') === 1, {
        timeoutMs: 10_000,
        intervalMs: 5,
        describe: 'the first save under way',
      });
      const soon = await env.currentTimeMs();
      const second = failureOf(
        handle.executeUpdate(configureUpdate, {
          args: [{ config: { v: 2 }, notAfterMs: soon + 500, answerByMs: soon + 500 }],
        }),
      );
      expect((await first).generation).toBe(2);
      expect(await second).toEqual({ type: FailureType.Expired });
      expect(h.fakes.calls.filter((c) => c.name === 'saveConfig').map((c) => c.input.config)).toEqual([
        { v: 1 },
      ]);
      await deleteAndComplete(h, handle, 'queued-save-rechecks');
    });
  });
});

describe('entity workflow: Update handlers beside the main loop', () => {
  it("replays when a handler's DB step and the main loop's end out of their order (they run one at a time)", async () => {
    await withWorker(env, async (h) => {
      let release = () => {};
      h.fakes.gates.startResource = new Promise<void>((resolve) => (release = resolve));
      const handle = await startEntity(h);
      await waitFor(() => h.fakes.count('startResource') === 1, {
        timeoutMs: 10_000,
        intervalMs: 5,
        describe: 'the start under way',
      });
      // A slow save holds a workflow task open; the start's end and a second save arrive
      // meanwhile, so one task brings both: the main loop's `booting` transition and the handler's
      // save (the restart policy's, a local activity). Run side by side, local activities end in
      // another order than they started, and a replay resumes them in start order: a worker
      // replaying a history where that reordered the handler's answer and the main loop's commands
      // failed the task for good (seen under load, with the config save when it was local).
      h.fakes.durations.saveRestartPolicy = (n) => (n === 1 ? 400 : 80);
      const policy = (p: 'always' | 'never') =>
        handle.executeUpdate(restartPolicyUpdate, { args: [{ policy: p, override: p }] });
      const first = policy('never');
      await waitFor(() => h.fakes.count('saveRestartPolicy') === 1, {
        timeoutMs: 10_000,
        intervalMs: 5,
        describe: 'the first save under way',
      });
      release();
      const second = policy('always');
      expect((await Promise.all([first, second])).map((a) => a.restartPolicy)).toEqual(['never', 'always']);
      await online(h, handle, 1);
      // The save and the transition met in one task, and ran one after the other.
      expect(h.fakes.calls.filter((c) => c.name === 'saveRestartPolicy').every((c) => c.local)).toBe(true);
      expect(h.fakes.maxLocalInFlight).toBe(1);
      await deleteAndComplete(h, handle, 'serial-local-steps-policy');
    });
  });

  it('a config save runs once its Update is in the history (a regular activity, not inside the task)', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      const saved = await handle.executeUpdate(configureUpdate, {
        args: [{ config: { v: 1 }, restart: true }],
      });
      expect(saved.generation).toBe(2);
      await online(h, handle, 2);
      expect(h.fakes.calls.filter((c) => c.name === 'saveConfig').map((c) => c.local)).toEqual([false]);
      // The save's activity is scheduled after the Update's acceptance in the history.
      const events = (await handle.fetchHistory()).events ?? [];
      const acceptedAt = events.findIndex((e) => e.workflowExecutionUpdateAcceptedEventAttributes);
      const savedAt = events.findIndex(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'saveConfig',
      );
      expect(acceptedAt).toBeGreaterThan(-1);
      expect(savedAt).toBeGreaterThan(acceptedAt);
      await deleteAndComplete(h, handle, 'config-save-after-acceptance');
    });
  });
});

describe('entity workflow: boot', () => {
  it('boot deadline: failed with the reason, boot log kept, resource removed; restart works', async () => {
    await withWorker(
      env,
      async (h) => {
        const handle = await startEntity(h, { bootDeadlineMs: 30_000 });
        const failed = await until(h, handle, settledAt('failed', 1), 'failed');
        expect(failed.error).toMatch(/boot deadline of 30000 ms exceeded/);
        expect(h.fakes.count('captureBootLog', (i) => i.generation === 1)).toBe(1);
        expect(h.fakes.count('removeResource', (i) => i.generation === 1)).toBe(1);
        await handle.executeUpdate(restartUpdate);
        await online(h, handle, 2);
        await deleteAndComplete(h, handle, 'boot-deadline');
      },
      (f) => {
        f.agentAnswers = (g) => g > 1;
      },
    );
  });

  it('a config saved during a boot supersedes it: the answer names the generation that boots it', async () => {
    await withWorker(
      env,
      async (h) => {
        const handle = await startEntity(h);
        await until(h, handle, (s) => s.phase === 'booting', 'booting', 0);
        const saved = await handle.executeUpdate(configureUpdate, { args: [{ config: { v: 9 } }] });
        expect(saved.generation).toBe(2);
        // Generation 1 proves itself, but on an older config: the entity boots again.
        const g1 = h.fakes.snapshots.get(1)!;
        await handle.signal(agentReadySignal, { generation: 1, configHash: g1.configHash });
        await online(h, handle, 2);
        expect(h.fakes.snapshots.get(2)?.configHash).toBe(saved.configHash);
        expect(h.fakes.transitions.filter((t) => t.status === 'online').map((t) => t.generation)).toEqual([
          2,
        ]);
        await deleteAndComplete(h, handle, 'configure-during-boot');
      },
      (f) => {
        f.agentAnswers = (g) => g !== 1;
      },
    );
  });

  it('a config saved with restart while a restart prepares is booted by that restart, not a third one', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      let release = () => {};
      h.fakes.gates.removeResource = new Promise<void>((resolve) => (release = resolve));
      await handle.executeUpdate(restartUpdate);
      await until(h, handle, (s) => s.status === 'restarting' && s.phase === 'preparing', 'preparing', 0);
      const saved = await handle.executeUpdate(configureUpdate, {
        args: [{ config: { v: 3 }, restart: true }],
      });
      expect(saved.generation).toBe(2);
      release();
      await online(h, handle, 2);
      expect(h.fakes.snapshots.get(2)?.configHash).toBe(saved.configHash);
      const state = await handle.query(stateQuery);
      expect(state.restartPending).toBe(false);
      expect(h.fakes.snapshots.has(3)).toBe(false);
      await deleteAndComplete(h, handle, 'save-covered-by-snapshot');
    });
  });
});

describe('entity workflow: a step that keeps failing ends failed, and the entity keeps working', () => {
  it('startResource: failed with the reason, compensation ran; restart brings it online', async () => {
    await withWorker(
      env,
      async (h) => {
        const handle = await startEntity(h);
        const failed = await until(h, handle, settledAt('failed', 1), 'failed');
        expect(failed.error).toMatch(/startResource refused for good/);
        expect(h.fakes.count('startResource')).toBe(1); // permanent: not retried
        expect(h.fakes.count('captureBootLog')).toBe(1);
        expect(h.fakes.count('removeResource', (i) => i.generation === 1)).toBe(1);
        await handle.executeUpdate(restartUpdate);
        await online(h, handle, 2);
        await deleteAndComplete(h, handle);
      },
      (f) => {
        f.faults.startResource = (n) => (n === 1 ? permanent('startResource') : null);
      },
    );
  });

  it('stopResource refused: stopping with the reason, tried again with backoff until it stops; start brings it back', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      h.fakes.faults.stopResource = (n) => (n <= 2 ? permanent('stopResource') : null);
      await handle.executeUpdate(stopUpdate);
      // Not `failed` with the resource running (no sweep would ever stop it): still stopping, saying why.
      const waiting = await until(
        h,
        handle,
        (s) => s.status === 'stopping' && s.error !== null,
        'refused',
        0,
      );
      expect(waiting.error).toMatch(/^stop failed: stopResource refused for good/);
      expect(waiting.halted).toBe(false);
      const stopped = await until(h, handle, settledAt('stopped', 1), 'stopped');
      expect(stopped.error).toBeNull();
      const attempts = h.fakes.calls.filter((c) => c.name === 'stopResource');
      expect(attempts).toHaveLength(3); // permanent: one call per attempt
      for (let k = 1; k < attempts.length; k++) {
        expect(attempts[k]!.at - attempts[k - 1]!.at).toBeGreaterThanOrEqual(deleteBackoffMs(k - 1));
      }
      expect(stopMessages(h)).toEqual([
        'stop attempt 1 failed: stopResource refused for good; next attempt in 2 s',
        'stop attempt 2 failed: stopResource refused for good; next attempt in 4 s',
      ]);
      expect(h.fakes.transitions.some((t) => t.status === 'failed')).toBe(false);
      await handle.executeUpdate(startUpdate);
      await online(h, handle, 1);
      // (wf-stop-failed.json is the code before the retries: failed, halted, the next stop tried again.)
      await deleteAndComplete(h, handle, 'stop-retried');
    });
  });

  it("the platform's stop says why (phase and message on stopping and stopped, a refused attempt too); a user's stop after it does not", async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      h.fakes.faults.stopResource = (n) => (n === 1 ? permanent('stopResource') : null);
      const cause = { phase: 'over-budget' as const, message: 'spent 30 of its 30 cents' };
      await handle.executeUpdate(platformStopUpdate, { args: [cause] });
      const stopped = await until(h, handle, settledAt('stopped', 1), 'stopped');
      expect(stopped.phase).toBe('over-budget');
      const stops = () =>
        h.fakes.calls
          .filter((c) => c.name === 'recordTransition' && /^stop/.test(String(c.input.status)))
          .map((c) => [c.input.status, c.input.phase, c.input.message]);
      expect(stops()).toEqual([
        ['stopping', 'over-budget', cause.message],
        ['stopping', 'over-budget', expect.stringMatching(/^stop attempt 1 failed: stopResource refused/)],
        ['stopped', 'over-budget', cause.message],
      ]);
      await handle.executeUpdate(startUpdate);
      await online(h, handle, 1);
      const before = stops().length;
      await handle.executeUpdate(stopUpdate);
      expect((await until(h, handle, settledAt('stopped', 1), 'stopped again')).phase).toBeNull();
      expect(stops().slice(before)).toEqual([
        ['stopping', null, null],
        ['stopped', null, null],
      ]);
      await deleteAndComplete(h, handle);
    });
  });

  it('stopResource failing transiently: each attempt is bounded, then it waits and tries again; never failed', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      let failing = true;
      h.fakes.faults.stopResource = () => (failing ? transient('stopResource') : null);
      await handle.executeUpdate(stopUpdate);
      await until(h, handle, () => stopMessages(h).length >= 2, 'two attempts', 5000);
      // 5 tries (the attempt's retry policy) make one attempt.
      const firstRefusal = h.fakes.calls.findIndex(
        (c) => c.name === 'recordTransition' && /^stop attempt 1 failed/.test(String(c.input.message)),
      );
      expect(h.fakes.calls.slice(0, firstRefusal).filter((c) => c.name === 'stopResource')).toHaveLength(5);
      expect(stopMessages(h)[0]).toMatch(/^stop attempt 1 failed: stopResource hiccup; next attempt in 2 s$/);
      expect((await handle.query(stateQuery)).status).toBe('stopping');
      failing = false;
      await until(h, handle, settledAt('stopped', 1), 'stopped', 5000);
      expect(h.fakes.transitions.some((t) => t.status === 'failed')).toBe(false);
      await deleteAndComplete(h, handle);
    });
  });

  it('a start while a refused stop waits boots a new generation (the old one removed first)', async () => {
    await withWorker(env, async (h) => {
      const handle = await refusedStop(h);
      await handle.executeUpdate(startUpdate);
      await online(h, handle, 2);
      expect(h.fakes.count('removeResource', (i) => i.generation === 1)).toBe(1);
      // The start took over: no stop attempt after it.
      const started = h.fakes.calls.findIndex(
        (c) => c.name === 'prepareGeneration' && c.input.generation === 2,
      );
      expect(h.fakes.calls.slice(started).some((c) => c.name === 'stopResource')).toBe(false);
      await skipTime(h, handle, 600_000);
      expect((await until(h, handle, settledAt('online', 2), 'still online')).error).toBeNull();
      await deleteAndComplete(h, handle, 'stop-retry-start');
    });
  });

  it('a start accepted while a stop attempt runs takes over once the backend refuses it', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      let release = () => {};
      h.fakes.gates.stopResource = new Promise<void>((resolve) => (release = resolve));
      h.fakes.faults.stopResource = () => permanent('stopResource');
      await handle.executeUpdate(stopUpdate);
      await until(h, handle, () => h.fakes.count('stopResource') === 1, 'stop attempt running', 0);
      await handle.executeUpdate(startUpdate);
      release();
      await online(h, handle, 2);
      // No retry was scheduled: the start decided what came next.
      expect(stopMessages(h)).toEqual(['stop attempt 1 failed: stopResource refused for good']);
      expect(h.fakes.count('stopResource')).toBe(1);
      await deleteAndComplete(h, handle);
    });
  });

  it('a delete accepted while a start is tried cancels its further tries: deleted, never failed', async () => {
    await withWorker(env, async (h) => {
      const handle = await interruptHeldStart(
        h,
        (handle) => handle.executeUpdate(deleteUpdate),
        async () => {
          // Nothing of the delete runs beside the try in flight.
          expect(h.fakes.transitions.at(-1)?.status).toBe('restarting');
          expect(h.fakes.count('removeResource', (i) => i.volumes === true)).toBe(0);
        },
      );
      await until(h, handle, (s) => s.status === 'deleted', 'deleted', 5000);
      await handle.result();
      await replayAndRecord(handle, 'delete-cancels-start');
      // The try in flight ended; none after it (the activity's policy allows 20).
      expect(h.fakes.count('startResource')).toBe(2);
      expect(h.fakes.transitions.some((t) => t.status === 'failed')).toBe(false);
      expect(h.fakes.count('captureBootLog')).toBe(0);
      expect(h.fakes.count('removeResource', (i) => i.volumes === true)).toBe(1);
    });
  });

  it('a stop accepted while a start is tried cancels its further tries once the try in flight ends: stopped, never failed', async () => {
    await withWorker(env, async (h) => {
      const handle = await interruptHeldStart(
        h,
        (handle) => handle.executeUpdate(stopUpdate),
        async () => {
          expect(h.fakes.transitions.at(-1)?.status).toBe('restarting');
          expect(h.fakes.count('stopResource')).toBe(0);
        },
      );
      await until(h, handle, (s) => s.status === 'stopped' && !s.busy, 'stopped', 0);
      expect(h.fakes.count('startResource')).toBe(2);
      expect(h.fakes.transitions.some((t) => t.status === 'failed')).toBe(false);
      expect(h.fakes.count('captureBootLog')).toBe(0);
      // A start boots the stopped generation.
      delete h.fakes.faults.startResource;
      await handle.executeUpdate(startUpdate);
      await online(h, handle, 2);
      await deleteAndComplete(h, handle, 'stop-cancels-start');
    });
  });

  it('a stop, then a start, accepted while a start is tried: a new generation boots and comes online', async () => {
    await withWorker(env, async (h) => {
      const handle = await interruptHeldStart(
        h,
        (handle) => handle.executeUpdate(stopUpdate),
        // The start withdraws the stop before it ran: the boot it interrupted must not stay idle.
        async (handle) => void (await handle.executeUpdate(startUpdate)),
      );
      await online(h, handle, 3);
      expect(h.fakes.count('removeResource', (i) => i.generation === 2)).toBe(1);
      expect(h.fakes.count('stopResource')).toBe(0);
      expect(h.fakes.transitions.some((t) => t.status === 'failed')).toBe(false);
      await deleteAndComplete(h, handle, 'resume-interrupted-boot');
    });
  });

  it('a delete while a refused stop waits converges', async () => {
    await withWorker(env, async (h) => {
      const handle = await refusedStop(h);
      await deleteAndComplete(h, handle);
      expect(h.fakes.count('removeResource', (i) => i.volumes === true)).toBe(1);
    });
  });

  it('removing the previous generation: failed; the next restart removes it and comes online', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      h.fakes.faults.removeResource = (_n, i) =>
        i.generation === 1 && h.fakes.count('removeResource', (c) => c.generation === 1) === 1
          ? permanent('removeResource')
          : null;
      await handle.executeUpdate(restartUpdate);
      const failed = await until(h, handle, settledAt('failed', 1), 'failed');
      expect(failed.error).toMatch(/^removing generation 1 failed: removeResource refused for good/);
      // Recorded as given up, so the orphan sweep removes it should nobody restart the workspace.
      expect(discardedRecords(h)).toEqual([1]);
      await handle.executeUpdate(restartUpdate);
      await online(h, handle, 2);
      expect(h.fakes.count('removeResource', (i) => i.generation === 1)).toBe(2);
      await deleteAndComplete(h, handle);
    });
  });

  it('compensation (captureBootLog, removeResource) failing is recorded, not thrown; delete still converges', async () => {
    await withWorker(
      env,
      async (h) => {
        const handle = await startEntity(h);
        const failed = await until(h, handle, settledAt('failed', 1), 'failed');
        expect(failed.error).toMatch(/startResource refused for good; removing generation 1 failed/);
        // The failed generation's resource is still there: recorded as given up (O4), so the
        // orphan sweep removes it even though it stays the current generation.
        expect(discardedRecords(h)).toEqual([1]);
        await handle.executeUpdate(stopUpdate);
        await until(h, handle, settledAt('stopped', 1), 'stopped');
        await deleteAndComplete(h, handle, 'compensation-failed');
        expect(h.fakes.count('removeResource', (i) => i.volumes === true)).toBe(1);
      },
      (f) => {
        f.faults.startResource = () => permanent('startResource');
        f.faults.captureBootLog = () => permanent('captureBootLog');
        f.faults.removeResource = (_n, i) => (i.generation === 1 ? permanent('removeResource') : null);
      },
    );
  });

  it('prepareGeneration: failed without consuming the generation; restart works', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      h.fakes.faults.prepareGeneration = (n) => (n === 2 ? permanent('prepareGeneration') : null);
      await handle.executeUpdate(restartUpdate);
      const failed = await until(h, handle, settledAt('failed', 1), 'failed');
      expect(failed.error).toMatch(/^preparing generation 2 failed/);
      await handle.executeUpdate(restartUpdate);
      await online(h, handle, 2);
      await deleteAndComplete(h, handle);
    });
  });

  it('saveConfig with a PostgreSQL data error: InvalidInput naming config, nothing wedged', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      h.fakes.faults.saveConfig = (n) => (n === 1 ? pgDataError() : null);
      const refused = await failureOf(
        handle.executeUpdate(configureUpdate, { args: [{ config: { x: 'a\u0000b' }, restart: true }] }),
      );
      expect(refused).toEqual({ type: FailureType.InvalidInput, field: 'config' });
      expect(h.fakes.count('saveConfig')).toBe(1); // non-retryable: one attempt
      const state = await handle.query(stateQuery);
      expect(state).toMatchObject({ status: 'online', restartPending: false, busy: false });
      await handle.executeUpdate(restartUpdate);
      await online(h, handle, 2);
      const ok = await handle.executeUpdate(configureUpdate, {
        args: [{ config: { x: 'ab' }, restart: true }],
      });
      expect(ok.generation).toBe(3);
      await online(h, handle, 3);
      await deleteAndComplete(h, handle, 'save-refused');
    });
  });

  it('saveConfig failing transiently past its retries: Unavailable, and the entity keeps working', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      h.fakes.faults.saveConfig = () => transient('saveConfig');
      // failureOf handles the rejection from the start: it lands while the retries are awaited.
      const update = failureOf(handle.executeUpdate(configureUpdate, { args: [{ config: { v: 2 } }] }));
      await until(h, handle, () => h.fakes.count('saveConfig') >= 10, 'saveConfig retries', 5000);
      expect(await update).toEqual({ type: FailureType.Unavailable });
      expect(h.fakes.count('saveConfig')).toBe(10);
      await handle.executeUpdate(restartUpdate);
      await online(h, handle, 2);
      await deleteAndComplete(h, handle);
    });
  });
});

describe('entity workflow: delete always converges', () => {
  it('retries with growing waits until the backend confirms the resource gone, answering Updates meanwhile', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      h.fakes.faults.removeResource = (n, i) => (i.volumes && n <= 4 ? permanent('removeResource') : null);
      h.fakes.faults.finalizeDelete = (n) => (n === 1 ? permanent('finalizeDelete') : null);
      await handle.executeUpdate(deleteUpdate);
      await until(
        h,
        handle,
        () => h.fakes.count('removeResource', (i) => i.volumes === true) >= 2,
        'retry',
        0,
      );
      const during = await handle.query(stateQuery);
      expect(during).toMatchObject({ status: 'deleting', deleteRequested: true });
      // The workspace says why it is still deleting (as a refused stop does), until it is deleted.
      expect(during.error).toMatch(/^delete failed: removeResource/);
      expect(await failureOf(handle.executeUpdate(restartUpdate))).toEqual({ type: FailureType.Deleted });
      await until(h, handle, (s) => s.status === 'deleted', 'deleted', 5000);
      await handle.result();
      await replayAndRecord(handle, 'delete-backoff');
      const attempts = h.fakes.calls.filter((c) => c.name === 'removeResource' && c.input.volumes === true);
      expect(attempts).toHaveLength(6); // 4 refused, 1 whose finalize failed, 1 that converged
      expect(h.fakes.count('finalizeDelete')).toBe(2);
      const retries = h.fakes.transitions.filter((t) => t.status === 'deleting').length;
      expect(retries).toBe(1 + 5); // the first `deleting`, then one per failed attempt
      // Backoff on the workflow clock: each wait longer than the one before.
      const gaps = attempts.slice(1).map((c, i) => c.at - attempts[i]!.at);
      for (let i = 1; i < gaps.length; i++) expect(gaps[i]!).toBeGreaterThan(gaps[i - 1]!);
      expect(h.fakes.transitions.at(-1)).toMatchObject({ status: 'deleted', error: null });
    });
  });
});

describe('entity workflow: a DELETE again', () => {
  it('while a failed attempt waits is accepted and tries again now, not after the backoff', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      let refuse = true;
      h.fakes.faults.removeResource = (_n, i) => (i.volumes && refuse ? permanent('removeResource') : null);
      const removals = () =>
        h.fakes.calls.filter((c) => c.name === 'removeResource' && c.input.volumes === true);
      const deletings = () => h.fakes.transitions.filter((t) => t.status === 'deleting').length;
      await handle.executeUpdate(deleteUpdate);
      // Four attempts refused, each recorded: the wait after the fourth is deleteBackoffMs(3).
      await until(h, handle, () => removals().length === 4 && deletings() === 1 + 4, 'four refused');
      refuse = false;
      // A DELETE again taken past its answer time fails `Expired`, changes nothing, and takes no
      // turn: the next DELETE may still ask.
      const now = await env.currentTimeMs();
      const late = handle.executeUpdate<Accepted, [RequestDeadline]>(deleteUpdate.name, {
        args: [{ notAfterMs: now + 600_000, answerByMs: now }],
      });
      expect(await failureOf(late)).toEqual({ type: FailureType.Expired });
      expect(removals()).toHaveLength(4);
      // One of five at once is accepted (it used to be refused, answered 202 by the API all the
      // same), the others refused as before: a DELETE loop adds one Update per attempt to the history.
      const five = Array.from({ length: 5 }, () => handle.executeUpdate(deleteUpdate));
      const failures = await Promise.all(five.map(failureOf));
      expect(failures.filter((f) => f === null)).toHaveLength(1);
      expect(failures.filter((f) => f !== null)).toEqual(Array(4).fill({ type: FailureType.Deleted }));
      expect(await Promise.any(five)).toEqual({ accepted: true, status: 'deleting' });
      // The clock stands still from here: only the DELETE can bring the fifth attempt.
      await until(h, handle, (s) => s.status === 'deleted', 'deleted', 0);
      await handle.result();
      const attempts = removals();
      expect(attempts).toHaveLength(5);
      const gap = attempts[4]!.at - attempts[3]!.at;
      expect(gap).toBeLessThan(deleteBackoffMs(3));
      // Never sooner than the first backoff after a failed attempt (a DELETE loop is no busy loop).
      expect(gap).toBeGreaterThanOrEqual(DELETE_BACKOFF_INITIAL_MS);
      // The wait's timer was cancelled, not fired.
      expect(await timerOutcome(handle, 'wait 16 s before delete attempt 5 (or at a DELETE again)')).toBe(
        'cancelled',
      );
      expect(h.fakes.transitions.at(-1)).toMatchObject({ status: 'deleted', error: null });
      // The workspace said when its next attempt was due, and how to bring it forward.
      const said = h.fakes.calls.filter(
        (c) => c.name === 'recordTransition' && c.input.status === 'deleting',
      );
      expect(said.at(-1)?.input.message).toBe(
        'delete attempt 4 failed: removeResource refused for good; next attempt in 16 s, or at a DELETE again',
      );
      const events = (await handle.fetchHistory()).events ?? [];
      // The first DELETE, the late one, and one of the five.
      expect(events.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes)).toHaveLength(3);
      await replayAndRecord(handle, 'delete-again-retries-now');
    });
  });
});

describe('entity workflow: a DELETE while it continues-as-new', () => {
  it('taken while continue-as-new waits for an Update in flight, it is carried out, not dropped', async () => {
    await withWorker(env, async (h) => {
      const limit = 10;
      const first = await startEntity(h, { continueAsNewAfterEvents: limit });
      await online(h, first, 1);
      // Past the limit, idle: it continued-as-new at once.
      const latest = h.env.client.workflow.getHandle(first.workflowId);
      const firstRun = (first as WorkflowHandleWithFirstExecutionRunId).firstExecutionRunId;
      await waitFor(async () => (await latest.describe()).runId !== firstRun, {
        timeoutMs: 30_000,
        describe: 'the first continue-as-new',
      });
      const run = (await latest.describe()).runId;
      // A config save held in its activity keeps its Update handler unfinished…
      let release = () => {};
      h.fakes.gates.saveConfig = new Promise<void>((resolve) => (release = resolve));
      const save = latest.executeUpdate(configureUpdate, { args: [{ config: { v: 1 } }] });
      await until(h, latest, () => h.fakes.count('saveConfig') === 1, 'save held', 0);
      // …while signals take the run past its limit: continue-as-new is due, and waits for the save.
      for (let i = 0; i < 3; i++)
        await latest.signal(agentHealthSignal, { generation: 1, runtimeState: 'ok' });
      await waitFor(
        async () => {
          const events = (await latest.fetchHistory()).events ?? [];
          // The last task completed with the history past the limit: the loop saw it.
          return events.length > limit + 2 && events.at(-1)?.workflowTaskCompletedEventAttributes;
        },
        { timeoutMs: 30_000, describe: 'the run past its limit, between tasks' },
      );
      expect(await latest.executeUpdate(deleteUpdate)).toEqual({ accepted: true, status: 'online' });
      release();
      await save;
      await until(h, latest, (s) => s.status === 'deleted', 'deleted', 1000, 120);
      await latest.result();
      // Deleted by the run that took the DELETE, which never continued-as-new without it.
      expect((await latest.describe()).runId).toBe(run);
      expect(h.fakes.count('removeResource', (i) => i.volumes === true)).toBe(1);
      expect(h.fakes.count('finalizeDelete')).toBe(1);
      expect(h.fakes.transitions.at(-1)).toMatchObject({ status: 'deleted', error: null });
      await replayAndRecord(latest, 'delete-while-continuing-as-new');
    });
  });
});

describe('entity workflow: a long delete continues-as-new', () => {
  it('past the history limit it continues-as-new, still deleting with the same backoff, and converges', async () => {
    await withWorker(env, async (h) => {
      const limit = 150;
      const handle = await startEntity(h, { continueAsNewAfterEvents: limit });
      await online(h, handle, 1);
      const failures = 14;
      h.fakes.faults.removeResource = (n, i) =>
        i.volumes && n <= failures ? permanent('removeResource') : null;
      await handle.executeUpdate(deleteUpdate);
      const latest = h.env.client.workflow.getHandle(handle.workflowId);
      const deleteRun = (await latest.describe()).runId;
      // Meanwhile no Update undoes the delete, in whichever run it is.
      await until(
        h,
        latest,
        () => h.fakes.count('removeResource', (i) => i.volumes === true) > 8,
        'retries',
        5000,
      );
      expect(await failureOf(latest.executeUpdate(restartUpdate))).toEqual({ type: FailureType.Deleted });
      await until(h, latest, (s) => s.status === 'deleted', 'deleted', 5000);
      await latest.result();

      // The delete did not keep one ever-growing history: the run that took it continued-as-new.
      const lastRun = (await latest.describe()).runId;
      expect(lastRun).not.toBe(deleteRun);
      const first = await h.env.client.workflow.getHandle(handle.workflowId, deleteRun).fetchHistory();
      expect(first.events!.length).toBeLessThan(limit + 40);
      const started = (await latest.fetchHistory()).events?.[0]?.workflowExecutionStartedEventAttributes;
      const carried = JSON.parse(
        Buffer.from(started!.input!.payloads![0]!.data!).toString('utf8'),
      ) as WorkspaceWorkflowInput;
      expect(carried.carried).toMatchObject({ status: 'deleting', deleting: {} });
      expect(carried.carried!.deleting!.attempts).toBeGreaterThan(0);

      const attempts = h.fakes.calls.filter((c) => c.name === 'removeResource' && c.input.volumes === true);
      expect(attempts).toHaveLength(failures + 1);
      // The backoff went on across runs: no wait shorter than its attempt's (none restarted at 2 s).
      for (let k = 1; k < attempts.length; k++) {
        expect(attempts[k]!.at - attempts[k - 1]!.at).toBeGreaterThanOrEqual(deleteBackoffMs(k - 1));
      }
      expect(h.fakes.count('finalizeDelete')).toBe(1);
      expect(h.fakes.transitions.at(-1)?.status).toBe('deleted');
      // Both sides replay: the run that continued-as-new (patch marker) and the run it carried into.
      await replayAndRecord(
        h.env.client.workflow.getHandle(handle.workflowId, deleteRun),
        'delete-continues-as-new',
      );
      await replayAndRecord(latest, 'delete-continued');
    });
  });
});

describe('entity workflow: a long refused stop continues-as-new', () => {
  it('past the history limit it continues-as-new, still stopping with the same backoff, and stops', async () => {
    await withWorker(env, async (h) => {
      const limit = 120;
      const handle = await startEntity(h, { continueAsNewAfterEvents: limit });
      await online(h, handle, 1);
      const firstRun = (await handle.describe()).runId;
      const failures = 10;
      h.fakes.faults.stopResource = (n) => (n <= failures ? permanent('stopResource') : null);
      await handle.executeUpdate(stopUpdate);
      const latest = h.env.client.workflow.getHandle(handle.workflowId);
      await until(h, latest, settledAt('stopped', 1), 'stopped', 5000);
      expect((await latest.describe()).runId).not.toBe(firstRun);
      const first = await h.env.client.workflow.getHandle(handle.workflowId, firstRun).fetchHistory();
      expect(first.events!.length).toBeLessThan(limit + 40);
      const attempts = h.fakes.calls.filter((c) => c.name === 'stopResource');
      expect(attempts).toHaveLength(failures + 1);
      // The backoff went on across runs (carried attempts): no wait shorter than its attempt's.
      for (let k = 1; k < attempts.length; k++) {
        expect(attempts[k]!.at - attempts[k - 1]!.at).toBeGreaterThanOrEqual(deleteBackoffMs(k - 1));
      }
      expect(stopMessages(h)).toHaveLength(failures);
      expect(h.fakes.transitions.some((t) => t.status === 'failed')).toBe(false);
      await replayAndRecord(
        h.env.client.workflow.getHandle(handle.workflowId, firstRun),
        'stop-retry-continues-as-new',
      );
      await deleteAndComplete(h, latest, 'stop-retry-continued');
    });
  });
});

describe('entity workflow: start and restart from offline, degraded, failed', () => {
  const offline = async (h: Harness, handle: WorkflowHandle) => {
    await online(h, handle, 1);
    await handle.signal(agentLivenessSignal, { generation: 1, reachable: false, resourceStatus: 'stopped' });
    return until(h, handle, settledAt('offline', 1), 'offline');
  };

  it('offline → start boots the same generation again', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h, { restartPolicy: { policy: 'never' } });
      await offline(h, handle);
      await handle.executeUpdate(startUpdate);
      await online(h, handle, 1);
      expect(h.fakes.count('startResource', (i) => i.generation === 1)).toBe(2);
      await deleteAndComplete(h, handle, 'offline-start');
    });
  });

  it('a start taken before the stop ahead of it began comes after it: the workspace stops, then boots the config saved meanwhile', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      const saved = await handle.executeUpdate(configureUpdate, { args: [{ config: { v: 'edited' } }] });
      expect(saved.generation).toBe(2);
      // The automatic restart's look at the backend held: the main loop is in it, so a stop
      // accepted now cannot begin, and a start comes before it does.
      let release = () => {};
      h.fakes.gates.resourceStatus = new Promise<void>((resolve) => (release = resolve));
      await offline(h, handle);
      try {
        await until(h, handle, () => h.fakes.count('resourceStatus') === 1, 'the look held', 0);
        await handle.executeUpdate(stopUpdate);
        // Taken in its order, after the stop (it withdrew the stop before: nothing stopped).
        await handle.executeUpdate(startUpdate);
        expect((await handle.query(stateQuery)).desired).toBe('stopped');
      } finally {
        release();
      }
      const on = await online(h, handle, 2);
      expect(on.configHash).toBe(saved.configHash);
      expect(h.fakes.snapshots.get(2)?.config).toEqual({ v: 'edited' });
      expect(h.fakes.count('stopResource', (i) => i.generation === 1)).toBe(1);
      const statuses = h.fakes.calls
        .filter((c) => c.name === 'recordTransition')
        .map((c) => c.input.status)
        .filter((status, i, all) => status !== all[i - 1]);
      expect(statuses.slice(statuses.indexOf('offline'))).toEqual([
        'offline',
        'stopping',
        'stopped',
        'restarting',
        'online',
      ]);
      // A stop after such a start still wins (the latest request decides).
      await handle.executeUpdate(stopUpdate);
      await until(h, handle, (s) => s.status === 'stopped' && !s.busy, 'stopped');
      await deleteAndComplete(h, handle, 'start-after-pending-stop');
    });
  });

  it('stopped, a config saved without restart, then start: the generation the save named boots it', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      await handle.executeUpdate(stopUpdate);
      await until(h, handle, (s) => s.status === 'stopped' && !s.busy, 'stopped');
      const saved = await handle.executeUpdate(configureUpdate, { args: [{ config: { v: 'edited' } }] });
      expect(saved.generation).toBe(2);
      await handle.executeUpdate(startUpdate);
      const on = await online(h, handle, 2);
      expect(on.configHash).toBe(saved.configHash);
      expect(h.fakes.snapshots.get(2)?.config).toEqual({ v: 'edited' });
      expect(h.fakes.count('removeResource', (i) => i.generation === 1)).toBe(1);
      // Stopped again with nothing saved since: the same generation starts.
      await handle.executeUpdate(stopUpdate);
      await until(h, handle, (s) => s.status === 'stopped' && !s.busy, 'stopped again');
      await handle.executeUpdate(startUpdate);
      await online(h, handle, 2);
      expect(h.fakes.count('startResource', (i) => i.generation === 2)).toBe(2);
      await deleteAndComplete(h, handle, 'start-boots-saved-config');
    });
  });

  it('offline → restart boots a new generation', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h, { restartPolicy: { policy: 'never' } });
      await offline(h, handle);
      await handle.executeUpdate(restartUpdate);
      await online(h, handle, 2);
      await deleteAndComplete(h, handle);
    });
  });

  it('degraded → start boots a new generation', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      await handle.signal(agentHealthSignal, { generation: 1, runtimeState: 'wedged' });
      await until(h, handle, settledAt('degraded', 1), 'degraded');
      await handle.executeUpdate(startUpdate);
      await online(h, handle, 2);
      await deleteAndComplete(h, handle, 'degraded-start');
    });
  });

  it('failed → start boots a new generation', async () => {
    await withWorker(
      env,
      async (h) => {
        const handle = await startEntity(h, { bootDeadlineMs: 10_000 });
        await until(h, handle, settledAt('failed', 1), 'failed');
        await handle.executeUpdate(startUpdate);
        await online(h, handle, 2);
        await deleteAndComplete(h, handle);
      },
      (f) => {
        f.agentAnswers = (g) => g > 1;
      },
    );
  });
});

describe('entity workflow: continue-as-new', () => {
  it('carries the whole state, health and liveness included', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h, { continueAsNewAfterEvents: 60 });
      const firstRun = (await handle.describe()).runId;
      await online(h, handle, 1);
      await handle.signal(agentHealthSignal, { generation: 1, runtimeState: 'wedged' });
      await until(h, handle, settledAt('degraded', 1), 'degraded');
      await handle.signal(agentLivenessSignal, {
        generation: 1,
        reachable: false,
        resourceStatus: 'running',
      });
      // Small configs without restart grow the history past the limit while degraded.
      let runId = firstRun;
      for (let i = 0; runId === firstRun && i < 40; i++) {
        await handle.executeUpdate(configureUpdate, { args: [{ config: { i } }] });
        runId = (await h.env.client.workflow.getHandle(handle.workflowId).describe()).runId;
      }
      expect(runId).not.toBe(firstRun);
      const latest = h.env.client.workflow.getHandle(handle.workflowId);
      const history = await latest.fetchHistory();
      const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
      const payload = started?.input?.payloads?.[0]?.data;
      const input = JSON.parse(Buffer.from(payload!).toString('utf8')) as WorkspaceWorkflowInput;
      const carried = input.carried as CarriedState;
      expect(carried).toMatchObject({
        status: 'degraded',
        generation: 1,
        desired: 'running',
        health: { generation: 1, runtimeState: 'wedged' },
        liveness: { generation: 1, reachable: false, resourceStatus: 'running' },
        halted: false,
        startPending: false,
      });
      expect(carried.latestSavedVersion).toBeGreaterThan(1);
      // Health carried: the agent says ok again, but the carried liveness still says unreachable.
      await latest.signal(agentHealthSignal, { generation: 1, runtimeState: 'ok' });
      // An Update after the signal: once it answers, the signal has been folded in.
      await latest.executeUpdate(configureUpdate, { args: [{ config: { barrier: true } }] });
      expect((await latest.query(stateQuery)).status).toBe('degraded');
      await latest.signal(agentLivenessSignal, { generation: 1, reachable: true, resourceStatus: 'running' });
      await until(h, latest, settledAt('online', 1), 'online after recovery');
      // The continued run still serves updates: the next generation boots the last config.
      const saved = await latest.executeUpdate(configureUpdate, { args: [{ config: { last: true } }] });
      await latest.executeUpdate(restartUpdate);
      await online(h, latest, saved.generation);
      await deleteAndComplete(h, latest, 'continue-as-new');
    });
  });
});
