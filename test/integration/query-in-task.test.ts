/**
 * A query the Temporal server hands to a worker with a workflow task (it arrived while that task
 * was pending), in a task where the entity runs a database step (a local activity): sdk-core
 * answers the query and completes the task before the code after the step runs, so that code's
 * commands are recorded in a later task. On the real server the entity goes on (restarts, deletes)
 * and its history replays with every patch decided in the run's first task
 * (src/workflows/workspace/workflow.ts, PATCHES.decidedAtStart). Whether a patch decided after the
 * step used to replay the other way depends on when the step ends against the answer; the
 * workflow project's runs under load show that (docs/operations.md, the nondeterminism runbook).
 */
import { expect, it } from 'vitest';
import { agentLivenessSignal, stateQuery, workspaceWorkflowId } from '../../src/workflows/messages.js';
import { createOnline, useParityStack, workerProcessEnv } from '../parity/backends.js';
import { waitForStatus } from '../support/stack.js';
import { expectEntityReplays } from '../support/workflow-bundle.js';
import { spawnWorker } from '../support/worker-process.js';

const t = useParityStack('docker', { worker: false });

it('a query handed over with the task that records a transition leaves a history that replays', async () => {
  const first = await spawnWorker(workerProcessEnv(t));
  // Restarted by its policy once offline (the test stack's default is `never`).
  const { id } = await createOnline(t, 'queried', { restartPolicy: 'always' });
  await first.kill('SIGTERM');

  // The container stops while no worker polls: the sweep's verdict (offline) waits in a pending
  // task, and a query asked now is handed over with that task instead of on its own.
  await t.stack.docker.getContainer(`ws-${id}-g1`).stop();
  const handle = t.stack.service.temporal.workflow.getHandle(workspaceWorkflowId(id));
  await handle.signal(agentLivenessSignal, { generation: 1, reachable: false, resourceStatus: 'stopped' });
  const asked = handle.query(stateQuery);
  const second = await spawnWorker(workerProcessEnv(t));
  try {
    // The task records `offline` (a local activity); the automatic restart follows it, in the next.
    expect((await asked).generation).toBe(1);
    await waitForStatus(t.stack, t.key, id, (w) => w.status === 'online' && w.generation === 2);
    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
  } finally {
    await second.kill('SIGTERM');
  }
  const history = await handle.fetchHistory();
  await expectEntityReplays(history, handle.workflowId);
});
