/**
 * Eager workflow start (issue 11): with the API and a worker in one process, a create's entity is
 * started eagerly (its first workflow task comes back with the start, to this process's worker);
 * with no worker of the task queue on the client's connection, asking for it is a plain start.
 */
import { randomBytes } from 'node:crypto';
import { Client, type WorkflowHandleWithStartDetails } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { describe, expect, inject, it, vi } from 'vitest';
import { EntityClient } from '../../src/api/entity.js';
import { workspaceWorkflowId } from '../../src/workflows/messages.js';
import { useStack, waitForStatus } from '../support/stack.js';

describe('eager start, API and worker in one process', () => {
  const t = useStack();

  it('a create is started eagerly and goes online as before', async () => {
    const start = vi.spyOn(t.stack.service.temporal.workflow, 'start');
    try {
      const res = await t.stack.api.call('POST', '/v1/workspaces', {
        token: t.key,
        body: { name: `eager-${randomBytes(3).toString('hex')}`, backend: 'docker' },
      });
      expect(res.status).toBe(202);
      const id = String(res.body.id);
      const started = start.mock.results.find((r) => r.type === 'return')?.value as
        Promise<WorkflowHandleWithStartDetails> | undefined;
      const handle = await started;
      expect(handle?.workflowId).toBe(workspaceWorkflowId(id));
      expect(handle?.eagerlyStarted).toBe(true);
      await waitForStatus(t.stack, t.key, id, 'online');
    } finally {
      start.mockRestore();
    }
  });
});

describe('eager start with no worker on the connection', () => {
  it('is a plain start: the entity exists and waits for a worker', async () => {
    const connection = await NativeConnection.connect({ address: inject('TEMPORAL_ADDRESS') });
    try {
      const client = new Client({ connection, namespace: inject('TEMPORAL_NAMESPACE') });
      const queue = `nobody-${randomBytes(4).toString('hex')}`;
      const workspaceId = `eager${randomBytes(4).toString('hex')}`;
      const entity = new EntityClient(client, queue, { eagerStart: true });
      const workflowId = await entity.start({
        workspaceId,
        orgId: 'o1',
        backend: 'docker',
        bootDeadlineMs: 60_000,
      });
      const handle = client.workflow.getHandle(workflowId);
      try {
        const described = await handle.describe();
        expect(described.status.name).toBe('RUNNING');
        expect(described.taskQueue).toBe(queue);
        // Nobody took its first task: no worker polls that queue (the start was not eager).
        const history = await handle.fetchHistory();
        expect(history.events?.map((e) => e.eventType)).not.toContain(6 /* WORKFLOW_TASK_STARTED */);
      } finally {
        await handle.terminate('test over');
      }
    } finally {
      await connection.close();
    }
  });
});
