/**
 * Every branch of the entity workflow on the time-skipping test server with scripted activities:
 * boot deadline, configure during boot, a permanent failure at each step (each ending failed and
 * each followed by restart/stop/delete working), delete retrying until the resource is gone,
 * continue-as-new carrying the whole state, start/restart from offline, degraded and failed.
 */
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FailureType,
  agentHealthSignal,
  agentLivenessSignal,
  configureUpdate,
  deleteUpdate,
  restartUpdate,
  startUpdate,
  stateQuery,
  stopUpdate,
  type CarriedState,
  type WorkspaceWorkflowInput,
} from '../../src/workflows/messages.js';
import {
  createEnv,
  permanent,
  pgDataError,
  settledAt,
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

/** Delete converges and the workflow completes (it never fails). */
async function deleteAndComplete(h: Harness, handle: WorkflowHandle) {
  await handle.executeUpdate(deleteUpdate);
  await until(h, handle, (s) => s.status === 'deleted', 'deleted');
  await handle.result();
  expect(h.fakes.transitions.at(-1)?.status).toBe('deleted');
}

describe('entity workflow: happy path and configure', () => {
  it('provisions, restarts on a saved config, and ConfigureResult names the generation that boots it', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h);
      await online(h, handle, 1);
      const result = await handle.executeUpdate(configureUpdate, { args: [{ config: { v: 1 }, restart: true }] });
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
      await deleteAndComplete(h, handle);
    });
  });
});
