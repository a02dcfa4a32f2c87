/**
 * Self-healing on both backends: the health sweep notices a resource stopped out of band, or an
 * agent that stopped answering, and the entity's restart policy brings the workspace back at a
 * new generation; one that keeps dying ends `failed` after AUTO_RESTART_MAX restarts, with the
 * reason. The sweep runs through its operator entry point (POST /v1/admin/sweeps/health/run),
 * which starts the same workflow the `sweep:health` Schedule does.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../setup/wait-for.js';
import { waitForStatus } from '../support/stack.js';
import { instancesOf, PARITY_BACKENDS, useParityStack, type ParityFixture } from './backends.js';
import { USER_DATA_PATHS } from '../../src/backends/ec2/user-data.js';

const send = (text: string) => ({
  jsonrpc: '2.0',
  id: 1,
  method: 'message/send',
  params: { message: { role: 'user', messageId: 'm1', parts: [{ kind: 'text', text }] } },
});

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- API bodies

/** Runs health sweeps until the workspace satisfies `ok`; answers the workspace and the sweeps' results. */
async function sweepUntil(t: ParityFixture, id: string, ok: (w: Json) => boolean, what: string) {
  const results: Json[] = [];
  const w = await waitFor(
    async () => {
      const sweep = await t.stack.api.callRetrying503('POST', '/v1/admin/sweeps/health/run', {
        token: t.stack.adminToken,
      });
      expect(sweep.status).toBe(200);
      results.push(sweep.body);
      const res = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key });
      return ok(res.body) ? res.body : null;
    },
    { timeoutMs: 120_000, intervalMs: 500, describe: what },
  );
  return { w, results };
}

async function create(t: ParityFixture, name: string): Promise<string> {
  const created = await t.stack.api.call('POST', '/v1/workspaces', {
    token: t.key,
    body: { name, backend: t.backend, restartPolicy: 'always' },
  });
  expect(created.status).toBe(202);
  await waitForStatus(t.stack, t.key, created.body.id, 'online');
  return created.body.id;
}

/** Freezes the agent process only, leaving its container/instance running. */
async function freezeAgent(t: ParityFixture, id: string, generation: number): Promise<void> {
  if (t.backend === 'docker') {
    // The container's main process is the agent: freezing it is the agent stopping to answer.
    await t.stack.docker.getContainer(`ws-${id}-g${generation}`).pause();
    return;
  }
  const instance = (await instancesOf(id)).find(
    (i) => i.Tags?.find((tag) => tag.Key === 'Generation')?.Value === String(generation),
  );
  if (!instance) throw new Error(`no instance for ${id} g${generation}`);
  // Inside the simulated VM (its own container): stop the agent, not the VM.
  const exec = await t.stack.docker.getContainer(`ec2-${instance.InstanceId!}`).exec({
    Cmd: ['sh', '-c', `kill -STOP "$(cat ${USER_DATA_PATHS.pidFile})"`],
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({});
  await new Promise((resolve) => stream.on('end', resolve).resume());
  expect((await exec.inspect()).ExitCode).toBe(0);
}

async function a2aAnswers(t: ParityFixture, id: string): Promise<void> {
  const res = await t.stack.api.call('POST', `/v1/workspaces/${id}/a2a`, { token: t.key, body: send('hi') });
  expect(res.status).toBe(200);
}

async function remove(t: ParityFixture, id: string): Promise<void> {
  expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
  await waitForStatus(t.stack, t.key, id, 'deleted');
}

describe.each(PARITY_BACKENDS)('%s: self-healing', (backend) => {
  const t = useParityStack(backend, {
    env: {
      AUTO_RESTART_POLICY: 'always',
      AUTO_RESTART_MAX: '1',
      AUTO_RESTART_BACKOFF_MS: '200',
      AUTO_RESTART_DEGRADED_MS: '2000',
      HEARTBEAT_STALE_MS: '4000',
    },
  });

  it('a resource stopped out of band goes offline, restarts at a new generation and answers A2A', async () => {
    const id = await create(t, 'stopped-behind-our-back');
    await t.stack.service.backends[backend].stop(id, 1);
    const { w, results } = await sweepUntil(
      t,
      id,
      (x) => x.status === 'online' && x.generation === 2,
      'the sweep to find it offline and the restart to bring it back',
    );
    expect(w.restartCount).toBe(1);
    expect(w.lastRestartReason).toBe('offline');
    // One sweep saw it: the verdict and the ids are in its result.
    const saw = results.flatMap((r) => r.signalled).filter((s: Json) => s.workspaceId === id);
    expect(saw[0]).toEqual(expect.objectContaining({ from: 'online', to: 'offline' }));
    await a2aAnswers(t, id);
    const transitions = await t.stack.service.db.pool.query(
      `SELECT status FROM workspace_transitions WHERE workspace_id = $1 ORDER BY id`,
      [id],
    );
    expect(transitions.rows.map((r) => r.status)).toContain('offline');
    await remove(t, id);
  });

  it('an agent that stops answering is degraded, then restarted at a new generation', async () => {
    const id = await create(t, 'frozen-agent');
    await freezeAgent(t, id, 1);
    const { w, results } = await sweepUntil(
      t,
      id,
      (x) => x.status === 'online' && x.generation === 2,
      'the sweep to find the agent unreachable and the restart to bring it back',
    );
    expect(w.lastRestartReason).toBe('degraded for 2000 ms');
    const saw = results.flatMap((r) => r.signalled).filter((s: Json) => s.workspaceId === id);
    expect(saw[0]).toEqual(expect.objectContaining({ from: 'online', to: 'degraded' }));
    await a2aAnswers(t, id);
    await remove(t, id);
  });

  it('a workspace that keeps dying ends failed after the maximum of restarts, with the reason', async () => {
    const id = await create(t, 'keeps-dying');
    await t.stack.service.backends[backend].stop(id, 1);
    await sweepUntil(
      t,
      id,
      (x) => x.status === 'online' && x.generation === 2,
      'the first automatic restart',
    );
    await t.stack.service.backends[backend].stop(id, 2);
    const { w } = await sweepUntil(t, id, (x) => x.status === 'failed', 'the workspace to fail');
    expect(w.generation).toBe(2);
    expect(w.restartCount).toBe(1);
    expect(w.error).toMatch(
      /^offline after 1 automatic restarts within 3600000 ms: generation 1 \(offline\)$/,
    );
    await remove(t, id);
  });
});
