/**
 * The entity workflow on Temporal's time-skipping test server with scripted activities: a fake DB
 * (config versions, generation snapshots, transitions), a fake backend whose every call can be made
 * to fail, and a fake agent that proves readiness when its resource starts (unless told not to).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { WorkflowClient, WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Activities } from '../../src/activities/index.js';
import {
  DbFailureType,
  agentReadySignal,
  stateQuery,
  workspaceWorkflowId,
  type WorkspaceState,
  type WorkspaceStatus,
  type WorkspaceWorkflowInput,
} from '../../src/workflows/messages.js';
import { REPO_ROOT } from '../support/stack.js';
import { expectEntityReplays, workflowBundle } from '../support/workflow-bundle.js';

export const TEST_SERVER = path.join(REPO_ROOT, '.venv-tools/bin/temporal-test-server');

export type ActivityName = keyof Activities;

export interface Call {
  name: ActivityName;
  input: Record<string, unknown>;
  /** When the server scheduled this attempt (a local activity: when it ran), on the skipped clock. */
  at: number;
  /** Run as a local activity (inside the workflow task), not through the server's queue. */
  local: boolean;
}

/** A failure a scripted activity throws: permanent (non-retryable, typed) or transient. */
export const permanent = (name: string) =>
  ApplicationFailure.nonRetryable(`${name} refused for good`, 'BackendError.permanent');
export const pgDataError = () =>
  ApplicationFailure.nonRetryable('unsupported Unicode escape sequence (SQLSTATE 22P05)', DbFailureType.Data);
export const transient = (name: string) => new Error(`${name} hiccup`);

export class Fakes {
  calls: Call[] = [];
  transitions: Array<{
    status: WorkspaceStatus;
    phase: string | null;
    error: string | null;
    generation: number;
  }> = [];
  configVersion = 1;
  config: Record<string, unknown> = { v: 0 };
  snapshots = new Map<
    number,
    { runtime: string; configHash: string; configVersion: number; config: unknown }
  >();
  /** What the fake backend answers for a resource's status (a restart looks first). */
  resourceStatus: (generation: number) => 'running' | 'stopped' | 'missing' | 'unknown' = () => 'missing';
  /** Generations the fake agent proves ready when their resource starts. */
  agentAnswers: (generation: number) => boolean = () => true;
  /** Per activity: throw this (or nothing) for the call number n (1-based, per activity). */
  faults: Partial<Record<ActivityName, (n: number, input: Record<string, unknown>) => Error | null>> = {};
  /** Per activity: awaited before it runs (to hold a step while the test acts). */
  gates: Partial<Record<ActivityName, Promise<void>>> = {};
  /**
   * Per activity: how long call n takes (ms of wall time), so that steps running side by side end
   * in another order than they started, as real database calls do.
   */
  durations: Partial<Record<ActivityName, (n: number, input: Record<string, unknown>) => number>> = {};
  /** Local activities running now, and the most that ever ran at once. */
  localInFlight = 0;
  maxLocalInFlight = 0;
  /** Activities that learnt of their cancellation while held (by a heartbeat's answer). */
  cancelsSeen: ActivityName[] = [];
  client: TestWorkflowEnvironment['client'] | null = null;
  /** The (skipped) workflow clock, for local activities. */
  clock: (() => Promise<number>) | null = null;

  count(name: ActivityName, pred: (input: Record<string, unknown>) => boolean = () => true): number {
    return this.calls.filter((c) => c.name === name && pred(c.input)).length;
  }

  private async enter(name: ActivityName, input: Record<string, unknown>): Promise<void> {
    const info = Context.current().info;
    // A local activity's scheduled time is the worker's clock, not the time-skipping server's.
    const at = info.isLocal && this.clock ? await this.clock() : info.currentAttemptScheduledTimestampMs;
    this.calls.push({ name, input, at, local: info.isLocal });
    // Held, it heartbeats as the real backend calls do, so a cancellation reaches it; like them it
    // runs to its end and then reports the cancellation (src/activities/index.ts, backendCall).
    const ctx = Context.current();
    const beat = info.isLocal ? undefined : setInterval(() => ctx.heartbeat(), 20);
    ctx.cancellationSignal.addEventListener('abort', () => this.cancelsSeen.push(name), { once: true });
    if (info.isLocal) this.maxLocalInFlight = Math.max(this.maxLocalInFlight, ++this.localInFlight);
    try {
      await this.gates[name];
      const ms = this.durations[name]?.(this.count(name), input) ?? 0;
      if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
    } finally {
      clearInterval(beat);
      if (info.isLocal) this.localInFlight--;
    }
    if (ctx.cancellationDetails?.cancelRequested) throw ctx.cancellationSignal.reason;
    const err = this.faults[name]?.(this.count(name), input);
    if (err) throw err;
  }

  runtime = 'claude-code';

  activities(): Activities {
    const fake = {
      saveConfig: async (input: {
        workspaceId: string;
        runtime?: string;
        config?: Record<string, unknown>;
      }) => {
        await this.enter('saveConfig', input);
        this.runtime = input.runtime ?? this.runtime;
        this.config = input.config ?? this.config;
        this.configVersion++;
        return {
          configHash: `${this.configVersion}`.padStart(16, '0'),
          configVersion: this.configVersion,
          runtime: this.runtime,
        };
      },
      prepareGeneration: async (input: { workspaceId: string; generation: number }) => {
        await this.enter('prepareGeneration', input);
        const existing = this.snapshots.get(input.generation);
        if (existing) return existing;
        const snap = {
          runtime: this.runtime,
          configHash: `${this.configVersion}`.padStart(16, '0'),
          configVersion: this.configVersion,
          config: this.config,
        };
        this.snapshots.set(input.generation, snap);
        return snap;
      },
      recordTransition: async (input: {
        workspaceId: string;
        generation: number;
        status: WorkspaceStatus;
        phase: string | null;
        message: string | null;
        error: string | null;
      }) => {
        await this.enter('recordTransition', input);
        this.transitions.push(input);
      },
      startResource: async (input: { workspaceId: string; generation: number }) => {
        await this.enter('startResource', input);
        const snap = this.snapshots.get(input.generation);
        if (snap && this.agentAnswers(input.generation)) {
          // The agent boots and proves itself (the registry's signal), while the start returns.
          const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
          void this.client!.workflow.getHandle(workflowId).signal(agentReadySignal, {
            generation: input.generation,
            configHash: snap.configHash,
          });
        }
      },
      resourceStatus: async (input: { workspaceId: string; generation: number }) => {
        await this.enter('resourceStatus', input);
        return this.resourceStatus(input.generation);
      },
      stopResource: async (input: { workspaceId: string; generation: number }) => {
        await this.enter('stopResource', input);
      },
      removeResource: async (input: { workspaceId: string; generation?: number; volumes?: boolean }) => {
        await this.enter('removeResource', input);
      },
      captureBootLog: async (input: { workspaceId: string; generation: number }) => {
        await this.enter('captureBootLog', input);
      },
      finalizeDelete: async (input: { workspaceId: string }) => {
        await this.enter('finalizeDelete', input);
      },
      saveRestartPolicy: async (input: { workspaceId: string; override: string | null }) => {
        await this.enter('saveRestartPolicy', input);
      },
    };
    // The fake implements every activity the workflow calls, with the same inputs and results.
    return fake as unknown as Activities;
  }
}

export interface Harness {
  env: TestWorkflowEnvironment;
  fakes: Fakes;
  worker: Worker;
  taskQueue: string;
  /**
   * Starts a workflow as `env.client.workflow.start` does, and remembers its run: any still
   * running when the test ends is terminated (withWorker).
   */
  start: WorkflowClient['start'];
}

export async function createEnv(): Promise<TestWorkflowEnvironment> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: TEST_SERVER } },
  });
  // The search attributes the entity upserts (registered by ./dev on the dev server);
  // IndexedValueType 2 = KEYWORD, 6 = DATETIME, 3 = INT.
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: {
      WorkspaceStatus: 2,
      WorkspaceStatusSince: 6,
      WorkspaceRestarts: 3,
    },
  });
  return env;
}

/** Runs `fn` with a worker over fresh fakes on its own task queue. */
export async function withWorker<T>(
  env: TestWorkflowEnvironment,
  fn: (h: Harness) => Promise<T>,
  setup: (f: Fakes) => void = () => undefined,
): Promise<T> {
  const fakes = new Fakes();
  fakes.client = env.client;
  fakes.clock = () => env.currentTimeMs();
  setup(fakes);
  const taskQueue = `wf-${randomBytes(4).toString('hex')}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities: fakes.activities(),
    // A held activity's heartbeats bring a cancellation at once (the default waits 8 s of the 10 s
    // heartbeat timeout between two).
    defaultHeartbeatThrottleInterval: '50ms',
    maxHeartbeatThrottleInterval: '50ms',
  });
  const started: WorkflowHandle[] = [];
  const start: WorkflowClient['start'] = async (workflowTypeOrFunc, options) => {
    const handle = await env.client.workflow.start(workflowTypeOrFunc, options);
    started.push(handle);
    return handle;
  };
  try {
    return await worker.runUntil(fn({ env, fakes, worker, taskQueue, start }));
  } finally {
    // A test that failed half-way leaves its entity running with no worker: its pending workflow
    // task would keep the time-skipping server from skipping time for every test after it (each
    // then waited in real time, and timed out). A run that already ended refuses: ignored.
    await Promise.all(started.map((w) => w.terminate('test over').catch(() => undefined)));
  }
}

export async function startEntity(
  h: Harness,
  extra: Partial<WorkspaceWorkflowInput> = {},
): Promise<WorkflowHandle> {
  const workspaceId = randomBytes(6).toString('hex');
  return h.start('workspaceWorkflow', {
    taskQueue: h.taskQueue,
    workflowId: workspaceWorkflowId(workspaceId),
    args: [{ workspaceId, orgId: 'org', backend: 'docker', bootDeadlineMs: 60_000, ...extra }],
  });
}

/**
 * Queries until the state satisfies `ok`, skipping time between tries (timers and activity retry
 * backoffs fire on the skipped clock). Bounded by a number of tries, not by wall time.
 */
/**
 * Waits (a few seconds at most) until no workflow task of the run is in flight, read from its
 * history (the test server's describe never reports a pending one). A clock skip during a task
 * that cancels a timer can fire that timer, and the time-skipping server then refuses the task's
 * completion and never redelivers it (temporalio/sdk-java#3088, #2606): the run would hang.
 */
async function workflowTaskSettled(handle: WorkflowHandle): Promise<void> {
  // temporal.api.enums.v1.EventType: WORKFLOW_TASK_SCHEDULED = 5, WORKFLOW_TASK_STARTED = 6.
  const inFlight = new Set([5, 6]);
  // Wall time, generous: on a loaded machine (the whole suite on 2 CPUs) a task can take seconds,
  // and skipping the clock under it is exactly the hang this avoids.
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const events = (await handle.fetchHistory()).events ?? [];
    const last = events.at(-1)?.eventType;
    if (last === undefined || last === null || !inFlight.has(last)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Skips the test server's clock by `ms`, once no workflow task of the run is in flight (above). */
export async function skipTime(h: Harness, handle: WorkflowHandle, ms: number): Promise<void> {
  await workflowTaskSettled(handle);
  await h.env.sleep(ms);
}

export async function until(
  h: Harness,
  handle: WorkflowHandle,
  ok: (s: WorkspaceState) => boolean,
  what: string,
  stepMs = 1000,
  tries = 2000,
): Promise<WorkspaceState> {
  let last: WorkspaceState | undefined;
  for (let i = 0; i < tries; i++) {
    // Asked at any moment, tasks in flight or not: a query handed over with a task can split that
    // task (sdk-core answers it first), and the entity's history replays all the same
    // (PATCHES.decidedAtStart).
    last = await handle.query(stateQuery);
    if (ok(last)) return last;
    // stepMs 0: do not move the clock (a gated activity must not hit its heartbeat timeout).
    if (stepMs > 0) await skipTime(h, handle, stepMs);
    else await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what}: never reached; last state ${JSON.stringify(last)}`);
}

export const settledAt = (status: WorkspaceStatus, generation?: number) => (s: WorkspaceState) =>
  s.status === status && !s.busy && (generation === undefined || s.generation === generation);

/**
 * Replays the entity's history against the current code (determinism), checks that the run decided
 * its patches in its first task (test/support/patch-markers.ts), and with RECORD_REPLAY=1
 * commits it under test/replay/histories as `wf-<name>.json`, so later changes must replay it too.
 */
export async function replayAndRecord(handle: WorkflowHandle, name?: string): Promise<void> {
  const history = await handle.fetchHistory();
  await expectEntityReplays(history, handle.workflowId);
  if (name && process.env.RECORD_REPLAY === '1') {
    writeFileSync(path.join(REPO_ROOT, `test/replay/histories/wf-${name}.json`), historyToJSON(history));
  }
}
