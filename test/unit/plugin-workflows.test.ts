/**
 * Starting a plugin request while the plugin's previous run is still there: a run that settled its
 * request and is ending (the caller saw `installed` and uninstalled at once) is waited for and the
 * start goes through; a run that does not end within the request's deadline is busy (409).
 */
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { PluginWorkflowBusy, PluginWorkflows } from '../../src/api/plugin-workflows.js';

function fakeClient(previousRunEndsAfterMs: number | null) {
  let running = true;
  const starts: string[] = [];
  const client = {
    withDeadline: <T>(_deadline: number, fn: () => Promise<T>) => fn(),
    workflow: {
      start: async (_type: string, opts: { workflowId: string }) => {
        starts.push(opts.workflowId);
        if (running)
          throw new WorkflowExecutionAlreadyStartedError('running', opts.workflowId, 'pluginWorkflow');
        return {};
      },
      getHandle: () => ({
        result: () =>
          new Promise((resolve) => {
            if (previousRunEndsAfterMs === null) return; // never ends
            setTimeout(() => {
              running = false;
              resolve({ outcome: 'installed' });
            }, previousRunEndsAfterMs);
          }),
      }),
    },
  };
  return { client: client as unknown as Client, starts };
}

const input = {
  workspaceId: '0123456789abcdef',
  name: 'demo',
  action: 'uninstall' as const,
  requestId: 'r2',
};

describe('PluginWorkflows.start with the previous run still there', () => {
  it('waits for a run that is ending, then starts', async () => {
    const { client, starts } = fakeClient(50);
    const wf = new PluginWorkflows(client, 'q', { callTimeoutMs: 2_000 });
    await expect(wf.start(input, wf.deadline())).resolves.toBeUndefined();
    expect(starts).toHaveLength(2);
  });

  it('a run that does not end within the deadline is busy, with no second start', async () => {
    const { client, starts } = fakeClient(null);
    const wf = new PluginWorkflows(client, 'q', { callTimeoutMs: 1_300 });
    await expect(wf.start(input, wf.deadline())).rejects.toBeInstanceOf(PluginWorkflowBusy);
    expect(starts).toHaveLength(1);
  });
});
