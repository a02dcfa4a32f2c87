/**
 * Endpoints stay true (issue 7): the recorded endpoint is re-read from the backend on register,
 * heartbeat and a failed forward, so a resource restarted behind the platform's back (docker
 * restart: a new host port; an EC2 reboot) serves A2A again without a call from the user, and a
 * degraded verdict left by a failed forward is lifted once the agent answers again.
 */
import { EC2Client, RebootInstancesCommand } from '@aws-sdk/client-ec2';
import { describe, expect, test } from 'vitest';
import { agentLivenessSignal, workspaceWorkflowId } from '../../src/workflows/messages.js';
import { MOTO_CREDENTIALS } from '../ec2-sim/service-env.js';
import { waitFor } from '../setup/wait-for.js';
import { waitForStatus } from '../support/stack.js';
import { CONCURRENT_BLOCK, PARITY_BACKENDS, useParityStack, type ParityFixture } from './backends.js';
import { messageSend as send } from '../support/a2a-message.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

async function createOnline(t: ParityFixture, name: string) {
  const created = await t.stack.api.call('POST', '/v1/workspaces', {
    token: t.key,
    body: { name, backend: t.backend },
  });
  expect(created.status).toBe(202);
  return waitForStatus(t.stack, t.key, created.body.id as string, 'online');
}

/** Restarts the resource the way its platform does on its own: docker restart / EC2 reboot. */
async function restartBehindOurBack(
  t: ParityFixture,
  w: { id: string; generation: number; instanceId: string },
): Promise<void> {
  if (t.backend === 'docker') {
    await t.stack.docker.getContainer(`ws-${w.id}-g${w.generation}`).restart({ t: 1 });
    return;
  }
  // Through the simulator's endpoint (it turns RebootInstances into a restart of the VM container).
  const ec2 = new EC2Client({
    region: 'us-east-1',
    endpoint: t.sim!.endpoint,
    credentials: MOTO_CREDENTIALS,
  });
  await ec2.send(new RebootInstancesCommand({ InstanceIds: [w.instanceId] }));
}

const a2a = (t: ParityFixture, id: string, text: string) =>
  t.stack.api.call('POST', `/v1/workspaces/${id}/a2a`, { token: t.key, body: send(text) });

describe.each(PARITY_BACKENDS)('%s endpoint refresh', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  it('a resource restarted behind the platform serves A2A again and ends online', async () => {
    const w = await createOnline(t, 'restarted');
    expect((await a2a(t, w.id, 'before')).status).toBe(200);
    const containerBefore =
      backend === 'docker'
        ? await t.stack.docker.getContainer(`ws-${w.id}-g${w.generation}`).inspect()
        : null;

    await restartBehindOurBack(t, w);
    if (containerBefore) {
      // The premise of the bug: the restarted container answers on another host port.
      const after = await t.stack.docker.getContainer(`ws-${w.id}-g${w.generation}`).inspect();
      expect(after.NetworkSettings.Ports['8080/tcp']?.[0]?.HostPort).not.toBe(
        containerBefore.NetworkSettings.Ports['8080/tcp']?.[0]?.HostPort,
      );
    }
    // A call while the agent is still booting may fail (and mark the workspace degraded)...
    await a2a(t, w.id, 'during');
    // ...but the platform finds the agent again by itself: A2A answers and the status is online.
    const reply = await waitFor(
      async () => {
        const r = await a2a(t, w.id, 'after');
        return r.status === 200 ? r : null;
      },
      { timeoutMs: 90_000, intervalMs: 500, describe: `A2A of ${w.id} to answer 200 after the restart` },
    );
    expect(reply.body.result.parts[0].text).toContain('received: after');
    const final = await waitForStatus(t.stack, t.key, w.id, 'online', 30_000);
    expect(final.generation).toBe(w.generation);
    if (backend === 'docker') {
      const now = await t.stack.docker.getContainer(`ws-${w.id}-g${w.generation}`).inspect();
      expect(final.endpoint).toBe(`http://127.0.0.1:${now.NetworkSettings.Ports['8080/tcp']?.[0]?.HostPort}`);
    } else {
      // A VPC instance keeps its private IP across a reboot: the endpoint is the same.
      expect(final.endpoint).toBe(w.endpoint);
    }
  });

  it('a stale record is corrected by the next forward, and heartbeats lift a degraded verdict', async () => {
    const w = await createOnline(t, 'stale');
    const { pool } = t.stack.service.db;

    // The record points where nothing listens (what a restart leaves behind): the forward fails,
    // the proxy re-reads the backend's address and answers from there.
    await pool.query(`UPDATE workspaces SET endpoint = 'http://127.0.0.1:9' WHERE id = $1`, [w.id]);
    const fixed = await a2a(t, w.id, 'stale record');
    expect(fixed.status).toBe(200);
    const row = await pool.query<{ endpoint: string }>('SELECT endpoint FROM workspaces WHERE id = $1', [
      w.id,
    ]);
    expect(row.rows[0]!.endpoint).toBe(w.endpoint);

    // A failed forward's verdict (agent unreachable → degraded) is lifted by the next heartbeats,
    // which probe the agent at its re-read address: the workspace does not stay degraded.
    const transitions = async () =>
      (
        await pool.query<{ id: string; status: string }>(
          'SELECT id, status FROM workspace_transitions WHERE workspace_id = $1 ORDER BY id',
          [w.id],
        )
      ).rows;
    const before = (await transitions()).length;
    await t.stack.service.temporal.workflow
      .getHandle(workspaceWorkflowId(w.id))
      .signal(agentLivenessSignal, { generation: w.generation, reachable: false, resourceStatus: 'running' });
    // Read from the transition log: the degraded spell may be shorter than a status poll.
    const later = await waitFor(
      async () => {
        const rows = (await transitions()).slice(before).map((r) => r.status);
        return rows.includes('online') ? rows : null;
      },
      { timeoutMs: 30_000, intervalMs: 200, describe: `${w.id} to go degraded and back online` },
    );
    expect(later).toEqual(['degraded', 'online']);
    expect((await waitForStatus(t.stack, t.key, w.id, 'online')).generation).toBe(w.generation);
    expect((await a2a(t, w.id, 'recovered')).status).toBe(200);
  });
});
