/**
 * The outcome interceptor (src/worker/outcome-interceptor.ts) on a time-skipping Temporal server:
 * each way an execution ends is reported once through the worker's sink, with its workflow type;
 * a failed workflow task (a bug, retried) is no outcome; a prebuilt bundle (src/worker/bundle.ts)
 * carries the interceptor.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundle, findBundle } from '../../src/worker/bundle.js';
import { OUTCOME_INTERCEPTOR, outcomeReporting } from '../../src/worker/index.js';
import { waitFor } from '../setup/wait-for.js';
import { createEnv } from './harness.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/outcome-workflows.ts', import.meta.url));

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await createEnv();
});
afterAll(async () => {
  await env?.teardown();
});

describe('workflow outcomes', () => {
  it('reports completed, failed, continued_as_new and cancelled once each, and no outcome for a failed task', async () => {
    const reported: { workflow: string; outcome: string }[] = [];
    const taskQueue = `outcomes-${randomBytes(4).toString('hex')}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: FIXTURE,
      interceptors: { workflowModules: [OUTCOME_INTERCEPTOR] },
      ...outcomeReporting(async (workflow, outcome) => {
        reported.push({ workflow, outcome });
      }),
    });
    const id = (name: string) => `${name}-${randomBytes(4).toString('hex')}`;
    const c = env.client.workflow;
    await worker.runUntil(async () => {
      await c.execute('completes', { taskQueue, workflowId: id('completes') });
      await expect(c.execute('fails', { taskQueue, workflowId: id('fails') })).rejects.toThrow();
      await c.execute('continues', { taskQueue, workflowId: id('continues'), args: [2] });
      const cancelled = await c.start('awaitsCancel', { taskQueue, workflowId: id('cancel') });
      await waitFor(async () => (await cancelled.fetchHistory()).events!.length >= 5, {
        timeoutMs: 10_000,
        describe: 'the cancellable workflow to wait on its timer',
      });
      await cancelled.cancel();
      await expect(cancelled.result()).rejects.toThrow();
      const broken = await c.start('breaksItsTask', { taskQueue, workflowId: id('broken') });
      await waitFor(
        async () =>
          (await broken.fetchHistory()).events!.some((e) => e.workflowTaskFailedEventAttributes != null),
        { timeoutMs: 10_000, describe: 'the broken workflow task to fail' },
      );
      await broken.terminate('test done');
      await waitFor(() => reported.length >= 6, { timeoutMs: 10_000, describe: 'six outcomes reported' });
    });
    expect(reported).toEqual(
      expect.arrayContaining([
        { workflow: 'completes', outcome: 'completed' },
        { workflow: 'fails', outcome: 'failed' },
        { workflow: 'continues', outcome: 'continued_as_new' },
        { workflow: 'continues', outcome: 'completed' },
        { workflow: 'awaitsCancel', outcome: 'cancelled' },
      ]),
    );
    expect(reported.filter((r) => r.workflow === 'continues')).toHaveLength(3);
    expect(reported).toHaveLength(6);
    expect(reported.some((r) => r.workflow === 'breaksItsTask')).toBe(false);
  });

  it('a prebuilt bundle carries the interceptor: a worker loading it reports outcomes', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wo-bundles-'));
    try {
      const built = await buildBundle(FIXTURE, OUTCOME_INTERCEPTOR, dir);
      expect(findBundle(FIXTURE, OUTCOME_INTERCEPTOR, dir)).toBe(built);
      const reported: { workflow: string; outcome: string }[] = [];
      const taskQueue = `outcomes-${randomBytes(4).toString('hex')}`;
      const worker = await Worker.create({
        connection: env.nativeConnection,
        taskQueue,
        workflowBundle: { codePath: built },
        ...outcomeReporting(async (workflow, outcome) => {
          reported.push({ workflow, outcome });
        }),
      });
      await worker.runUntil(async () => {
        await env.client.workflow.execute('completes', {
          taskQueue,
          workflowId: `completes-${randomBytes(4).toString('hex')}`,
        });
        await waitFor(() => reported.length >= 1, { timeoutMs: 10_000, describe: 'one outcome reported' });
      });
      expect(reported).toEqual([{ workflow: 'completes', outcome: 'completed' }]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
