/**
 * The plugin workflow on the time-skipping server with scripted activities: the agent's report
 * settles the install (even when it arrives before the wait: the race the design names), a report
 * of an older install does not, no report by the deadline fails with the reason, a stopped
 * workspace leaves the install pending for its next start, an uninstall settles on the plugin's
 * absence, and a delivery that keeps failing ends failed.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activities } from '../../src/activities/index.js';
import type { PluginOutcome } from '../../src/db/plugins.js';
import {
  pluginWorkflowId,
  pluginsReportedSignal,
  type PluginWorkflowInput,
  type PluginWorkflowResult,
} from '../../src/workflows/messages.js';
import { waitFor } from '../setup/wait-for.js';
import { workflowBundle } from '../support/workflow-bundle.js';
import { createEnv } from './harness.js';

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await createEnv();
});
afterAll(async () => {
  await env?.teardown();
});

type Deliver = Activities['deliverPlugin'];

interface Script {
  deliver: Deliver;
  settled: PluginOutcome[];
  /** Called once the delivery ran (to send reports "after" it). */
  onDelivered?: () => void;
}

async function run(
  script: Omit<Script, 'settled'>,
  input: Partial<PluginWorkflowInput>,
  during: (id: string) => Promise<void> = async () => undefined,
): Promise<{ result: PluginWorkflowResult; settled: PluginOutcome[] }> {
  const settled: PluginOutcome[] = [];
  const taskQueue = `plugin-${Math.random().toString(36).slice(2)}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities: {
      deliverPlugin: script.deliver,
      settlePlugin: async (i: { outcome: PluginOutcome }) => {
        settled.push(i.outcome);
      },
    },
  });
  const full: PluginWorkflowInput = {
    workspaceId: Math.random().toString(16).slice(2, 14),
    name: 'demo',
    action: 'install',
    requestId: 'req-2',
    reportDeadlineMs: 60_000,
    ...input,
  };
  const id = pluginWorkflowId(full.workspaceId, full.name);
  const result = await worker.runUntil(async () => {
    const handle = await env.client.workflow.start('pluginWorkflow', {
      taskQueue,
      workflowId: id,
      args: [full],
    });
    await during(id);
    return (await handle.result()) as PluginWorkflowResult;
  });
  return { result, settled };
}

const report = (id: string, plugins: Array<{ name: string; installId?: string }>) =>
  env.client.workflow.getHandle(id).signal(pluginsReportedSignal, { generation: 1, plugins });

describe('pluginWorkflow', () => {
  it('installs once the agent reports this install; an older install id does not settle it', async () => {
    let delivered = false;
    const { result, settled } = await run(
      {
        deliver: async () => {
          delivered = true;
          return 'delivered';
        },
      },
      {},
      async (id) => {
        // Under load the delivery may take longer than any fixed pause: wait for it.
        expect(
          await waitFor(() => delivered, { timeoutMs: 30_000, intervalMs: 50, describe: 'the delivery' }),
        ).toBe(true);
        await report(id, [{ name: 'demo', installId: 'req-1' }]);
        await env.sleep(1000);
        await report(id, [{ name: 'other' }, { name: 'demo', installId: 'req-2' }]);
      },
    );
    expect(result).toEqual({ outcome: 'installed' });
    expect(settled).toEqual([{ kind: 'installed' }]);
  });

  it('a report that lands while the delivery is still finishing (before the wait) settles it', async () => {
    const workspaceId = 'early0report';
    const { result, settled } = await run(
      {
        deliver: async () => {
          // The agent's heartbeat beats the activity's completion to the workflow.
          await report(pluginWorkflowId(workspaceId, 'demo'), [{ name: 'demo', installId: 'req-2' }]);
          return 'delivered';
        },
      },
      { workspaceId, reportDeadlineMs: 3_600_000 },
    );
    expect(result).toEqual({ outcome: 'installed' });
    expect(settled).toEqual([{ kind: 'installed' }]);
  });

  it('a booting workspace: delivery is tried again until it runs, then the report settles it', async () => {
    const answers: Array<'booting' | 'delivered'> = ['booting', 'booting', 'delivered'];
    let calls = 0;
    const { result, settled } = await run(
      {
        deliver: async () => answers[Math.min(calls++, answers.length - 1)]!,
      },
      {},
      async (id) => {
        await env.sleep(10_000);
        await report(id, [{ name: 'demo', installId: 'req-2' }]);
      },
    );
    expect(calls).toBe(3);
    expect(result).toEqual({ outcome: 'installed' });
    expect(settled).toEqual([{ kind: 'installed' }]);
  });

  it('no report by the deadline: failed, with the reason', async () => {
    const { result, settled } = await run({ deliver: async () => 'delivered' }, { reportDeadlineMs: 30_000 });
    expect(result.outcome).toBe('failed');
    expect(settled).toEqual([{ kind: 'failed', reason: expect.stringContaining('within 30 s') }]);
  });

  it('a stopped workspace: pending for its next start; an uninstall there is simply removed', async () => {
    expect(await run({ deliver: async () => 'not-running' }, {})).toEqual({
      result: { outcome: 'pending' },
      settled: [{ kind: 'pending' }],
    });
    expect(await run({ deliver: async () => 'not-running' }, { action: 'uninstall' })).toEqual({
      result: { outcome: 'removed' },
      settled: [{ kind: 'removed' }],
    });
  });

  it('uninstall settles when the plugin is no longer reported', async () => {
    const { result, settled } = await run(
      { deliver: async () => 'delivered' },
      { action: 'uninstall' },
      async (id) => {
        await env.sleep(1000);
        await report(id, [{ name: 'demo', installId: 'req-1' }]);
        await env.sleep(1000);
        await report(id, []);
      },
    );
    expect(result).toEqual({ outcome: 'removed' });
    expect(settled).toEqual([{ kind: 'removed' }]);
  });

  it('a superseded request ends without touching the row; a delivery that keeps failing ends failed', async () => {
    expect(await run({ deliver: async () => 'superseded' }, {})).toEqual({
      result: { outcome: 'superseded' },
      settled: [],
    });
    const failing = await run(
      {
        deliver: async () => {
          throw ApplicationFailure.nonRetryable('disk full', 'BackendError.permanent');
        },
      },
      {},
    );
    expect(failing.result.outcome).toBe('failed');
    // The backend's reason, not the wrapper's "Activity task failed".
    expect(failing.settled).toEqual([{ kind: 'failed', reason: 'delivery failed: disk full' }]);
  });
});
