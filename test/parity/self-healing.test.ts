/**
 * Self-healing on both backends: the health sweep notices a resource stopped out of band
 * (`docker stop`, StopInstances), or an agent that died or stopped answering, and the entity's
 * restart policy brings the workspace back at a new generation; one that keeps dying ends `failed`
 * after AUTO_RESTART_MAX restarts, with the reason and nothing of it left on the backend (the
 * given-up generation is removed, or discarded for the orphan sweep when its removal fails). A stop
 * the backend refuses is tried again until it holds, never left `failed` with the resource running.
 * Nothing else restarts anything: a dead docker agent is not brought back in place by the daemon
 * (restart policy `no`), as an EC2 instance's is not. The sweep runs through its operator entry
 * point (POST /v1/admin/sweeps/health/run), which starts the same workflow the `sweep:health`
 * Schedule does. Backend faults are injected into the stack's own backend (its in-process worker's).
 */
import { EC2Client, StopInstancesCommand } from '@aws-sdk/client-ec2';
import { describe, expect, test } from 'vitest';
import { BackendError, type BackendKind, type WorkspaceBackend } from '../../src/backends/backend.js';
import { USER_DATA_PATHS } from '../../src/backends/ec2/user-data.js';
import { MOTO_CREDENTIALS } from '../ec2-sim/service-env.js';
import { waitFor } from '../setup/wait-for.js';
import { freezeContainerAgent, killContainerAgent } from '../support/agent-death.js';
import { orphanRemovalOf, runOrphanSweep, volumesOf, waitForStatus } from '../support/stack.js';
import {
  CONCURRENT_BLOCK,
  instancesOf,
  PARITY_BACKENDS,
  resourcesOf,
  useParityStack,
  type ParityFixture,
} from './backends.js';
import { messageSend as send } from '../support/a2a-message.js';

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
    { timeoutMs: 90_000, intervalMs: 500, describe: what },
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

async function instanceIdOf(id: string, generation: number): Promise<string> {
  const instance = (await instancesOf(id)).find(
    (i) => i.Tags?.find((tag) => tag.Key === 'Generation')?.Value === String(generation),
  );
  if (!instance?.InstanceId) throw new Error(`no instance for ${id} g${generation}`);
  return instance.InstanceId;
}

/** Runs `script` inside the simulated VM (its own container) of an ec2 workspace's generation. */
async function inVm(t: ParityFixture, id: string, generation: number, script: string): Promise<void> {
  const exec = await t.stack.docker.getContainer(`ec2-${await instanceIdOf(id, generation)}`).exec({
    Cmd: ['sh', '-c', script],
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({});
  await new Promise((resolve) => stream.on('end', resolve).resume());
  expect((await exec.inspect()).ExitCode).toBe(0);
}

/**
 * Stops the resource behind the platform's back: `docker stop` of the container, or StopInstances
 * at the EC2 endpoint the service itself talks to (ec2-sim's, which stops the VM as moto says).
 */
async function stopOutOfBand(t: ParityFixture, id: string, generation: number): Promise<void> {
  if (t.backend === 'docker') {
    await t.stack.docker.getContainer(`ws-${id}-g${generation}`).stop({ t: 1 });
    return;
  }
  const ec2 = new EC2Client({
    region: t.stack.config.ec2Region,
    endpoint: t.env.EC2_ENDPOINT,
    credentials: MOTO_CREDENTIALS,
  });
  await ec2.send(new StopInstancesCommand({ InstanceIds: [await instanceIdOf(id, generation)] }));
}

/** Freezes the agent process only, leaving its container/instance running. */
async function freezeAgent(t: ParityFixture, id: string, generation: number): Promise<void> {
  if (t.backend === 'docker') {
    // The container holds only the agent (and its init): freezing them is the agent stopping to answer.
    await freezeContainerAgent(t.stack.docker, `ws-${id}-g${generation}`, true);
    return;
  }
  // Inside the simulated VM: stop the agent, not the VM.
  await inVm(t, id, generation, `kill -STOP "$(cat ${USER_DATA_PATHS.pidFile})"`);
}

/** Kills the agent process only (SIGKILL, as a crash or the OOM killer would), nothing else. */
async function killAgent(t: ParityFixture, id: string, generation: number): Promise<void> {
  // docker: the agent is the container's main process, so the container exits with it.
  if (t.backend === 'docker') await killContainerAgent(t.stack.docker, `ws-${id}-g${generation}`);
  // ec2: the agent dies inside a VM that keeps running.
  else await inVm(t, id, generation, `kill -KILL "$(cat ${USER_DATA_PATHS.pidFile})"`);
}

/** How often the agent of a generation booted (its `boot` phase): more than once = restarted in place. */
async function bootsOf(t: ParityFixture, id: string, generation: number): Promise<number> {
  const res = await t.stack.service.db.pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM boot_events WHERE workspace_id = $1 AND generation = $2 AND phase = 'boot'`,
    [id, generation],
  );
  return Number(res.rows[0]!.n);
}

const verdictsFor = (results: Json[], id: string): Json[] =>
  results.flatMap((r) => r.signalled).filter((s: Json) => s.workspaceId === id);

async function a2aAnswers(t: ParityFixture, id: string): Promise<void> {
  const res = await t.stack.api.call('POST', `/v1/workspaces/${id}/a2a`, { token: t.key, body: send('hi') });
  expect(res.status).toBe(200);
}

/**
 * Makes the stack's backend refuse `method` for the workspace `id` the next `times` calls (its
 * in-process worker calls this very object); the returned function puts the method back.
 */
function refuse(t: ParityFixture, method: 'stop' | 'remove', id: string, times: number): () => void {
  const backend: WorkspaceBackend = t.stack.service.backends[t.backend];
  const original = backend[method];
  let left = times;
  backend[method] = async (workspaceId: string, ...rest: unknown[]) => {
    if (workspaceId === id && left > 0) {
      left--;
      throw new BackendError('permanent', `injected: ${method} refused`);
    }
    // The original's own arguments, passed through as they came.
    return (original as (...a: unknown[]) => Promise<void>).call(backend, workspaceId, ...rest);
  };
  return () => {
    backend[method] = original;
  };
}

/** What of the workspace is left on the backend (containers / instances not terminated). */
const left = (t: ParityFixture, id: string) => resourcesOf(t.backend, t.stack.docker, id);

/** Freezes the agent at generation 1, lets the policy restart it, then freezes generation 2. */
async function freezeTwice(t: ParityFixture, id: string): Promise<void> {
  await freezeAgent(t, id, 1);
  await sweepUntil(t, id, (x) => x.status === 'online' && x.generation === 2, 'the automatic restart');
  await freezeAgent(t, id, 2);
}

const GIVEN_UP =
  /^degraded for 2000 ms after 1 automatic restarts within 3600000 ms: generation 1 \(degraded for 2000 ms\)/;

async function remove(t: ParityFixture, id: string): Promise<void> {
  expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
  await waitForStatus(t.stack, t.key, id, 'deleted');
}

// Two blocks per backend, all four at the same time (CONCURRENT_BLOCK), each on a stack and a
// database of its own: the health and orphan sweeps they run look at every row of their database,
// and would judge another block's. The tests of one block share its stack and run one after another.
const it = test.sequential;

function healingStack(backend: BackendKind): ParityFixture {
  return useParityStack(backend, {
    ownDatabase: true,
    env: {
      AUTO_RESTART_POLICY: 'always',
      AUTO_RESTART_MAX: '1',
      AUTO_RESTART_BACKOFF_MS: '200',
      AUTO_RESTART_DEGRADED_MS: '2000',
      HEARTBEAT_STALE_MS: '4000',
      // Sweeps run only when a test asks; a discarded generation is seconds old when it does.
      ORPHAN_GRACE_MS: '1000',
    },
  });
}

describe.each(PARITY_BACKENDS)('%s: self-healing', CONCURRENT_BLOCK, (backend) => {
  const t = healingStack(backend);

  it('a resource stopped out of band goes offline, restarts at a new generation and answers A2A', async () => {
    const id = await create(t, 'stopped-behind-our-back');
    await stopOutOfBand(t, id, 1);
    const { w, results } = await sweepUntil(
      t,
      id,
      (x) => x.status === 'online' && x.generation === 2,
      'the sweep to find it offline and the restart to bring it back',
    );
    expect(w.restartCount).toBe(1);
    expect(w.lastRestartReason).toBe('offline');
    // One sweep saw it: the verdict and the ids are in its result.
    expect(verdictsFor(results, id)[0]).toEqual(expect.objectContaining({ from: 'online', to: 'offline' }));
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
    expect(verdictsFor(results, id)[0]).toEqual(expect.objectContaining({ from: 'online', to: 'degraded' }));
    await a2aAnswers(t, id);
    await remove(t, id);
  });

  it('an agent process killed is detected, restarted at a new generation, and answers A2A', async () => {
    const id = await create(t, 'killed-agent');
    await killAgent(t, id, 1);
    const { w, results } = await sweepUntil(
      t,
      id,
      (x) => x.status === 'online' && x.generation === 2,
      'the sweep to find the agent dead and the restart to bring it back',
    );
    // docker: the container died with its agent (stopped → offline); ec2: the VM runs on without
    // it (unreachable → degraded, restarted after AUTO_RESTART_DEGRADED_MS). Either way the entity
    // restarted it, once, at a new generation.
    const expected =
      backend === 'docker'
        ? { to: 'offline', reason: 'offline' }
        : { to: 'degraded', reason: 'degraded for 2000 ms' };
    expect(verdictsFor(results, id)[0]).toEqual(expect.objectContaining({ from: 'online', to: expected.to }));
    expect(w.restartCount).toBe(1);
    expect(w.lastRestartReason).toBe(expected.reason);
    // Nothing brought the killed generation back in place behind the entity's back.
    expect(await bootsOf(t, id, 1)).toBe(1);
    await a2aAnswers(t, id);
    await remove(t, id);
  });

  it('a workspace the user stopped is left stopped by the sweep; start brings it back', async () => {
    const id = await create(t, 'stopped-by-the-user');
    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/stop`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'stopped');
    // Its heartbeat goes stale and its resource is stopped: what an offline workspace looks like.
    await waitFor(
      async () => {
        const res = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key });
        const beat = Date.parse(res.body.lastHeartbeatAt ?? '');
        return Date.now() - beat > Number(t.env.HEARTBEAT_STALE_MS);
      },
      { timeoutMs: 30_000, intervalMs: 250, describe: `the heartbeat of ${id} to go stale` },
    );
    const sweep = await t.stack.api.callRetrying503('POST', '/v1/admin/sweeps/health/run', {
      token: t.stack.adminToken,
    });
    expect(sweep.status).toBe(200);
    expect(verdictsFor([sweep.body], id)).toEqual([]);
    const after = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key });
    expect(after.body).toEqual(
      expect.objectContaining({ status: 'stopped', generation: 1, restartCount: 0 }),
    );
    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/start`, { token: t.key })).status).toBe(202);
    expect((await waitForStatus(t.stack, t.key, id, 'online')).generation).toBe(1);
    await a2aAnswers(t, id);
    await remove(t, id);
  });

  it('a stop the backend refuses stays stopping with the reason and is tried again until the resource is stopped', async () => {
    const id = await create(t, 'stop-refused');
    const restore = refuse(t, 'stop', id, 2);
    try {
      expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/stop`, { token: t.key })).status).toBe(
        202,
      );
      const refused = await waitForStatus(t.stack, t.key, id, (x) => x.status === 'stopping' && !!x.error);
      expect(refused.error).toMatch(/^stop failed: .*injected: stop refused/);
      const stopped = await waitForStatus(t.stack, t.key, id, 'stopped');
      expect(stopped.generation).toBe(1);
      expect(stopped.error ?? null).toBeNull();
    } finally {
      restore();
    }
    // Stopped for real: the same generation's resource is there, not running.
    const resources = await left(t, id);
    expect(resources.map((r) => [r.name, r.running])).toEqual([[`ws-${id}-g1`, false]]);
    const transitions = await t.stack.service.db.pool.query<{ status: string; message: string | null }>(
      `SELECT status, message FROM workspace_transitions WHERE workspace_id = $1 ORDER BY id`,
      [id],
    );
    expect(transitions.rows.map((r) => r.status)).not.toContain('failed');
    expect(transitions.rows.filter((r) => /^stop attempt \d failed/.test(r.message ?? ''))).toHaveLength(2);
    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/start`, { token: t.key })).status).toBe(202);
    expect((await waitForStatus(t.stack, t.key, id, 'online')).generation).toBe(1);
    await a2aAnswers(t, id);
    await remove(t, id);
  });
});

describe.each(PARITY_BACKENDS)('%s: self-healing that gives up', CONCURRENT_BLOCK, (backend) => {
  const t = healingStack(backend);

  it('a workspace that keeps dying ends failed after the maximum of restarts, with the reason', async () => {
    const id = await create(t, 'keeps-dying');
    await stopOutOfBand(t, id, 1);
    await sweepUntil(
      t,
      id,
      (x) => x.status === 'online' && x.generation === 2,
      'the first automatic restart',
    );
    await stopOutOfBand(t, id, 2);
    const { w } = await sweepUntil(t, id, (x) => x.status === 'failed', 'the workspace to fail');
    expect(w.generation).toBe(2);
    expect(w.restartCount).toBe(1);
    expect(w.error).toMatch(
      /^offline after 1 automatic restarts within 3600000 ms: generation 1 \(offline\)$/,
    );
    // Given up: its generation went with it (a stopped container or instance still holds, and bills).
    expect(await left(t, id)).toEqual([]);
    await remove(t, id);
  });

  it('a workspace given up while its resource runs keeps nothing of it: removed, console kept', async () => {
    const id = await create(t, 'given-up-running');
    await freezeTwice(t, id);
    const { w } = await sweepUntil(t, id, (x) => x.status === 'failed', 'the restart policy to give up');
    expect(w.generation).toBe(2);
    expect(w.error).toMatch(new RegExp(`${GIVEN_UP.source}$`));
    // Nothing of generation 2 runs on (its agent frozen, the container or instance up): it is gone,
    // and no sweep would have taken it (the health sweep skips `failed`, the orphan sweep a current one).
    expect(await left(t, id)).toEqual([]);
    const orphans = await runOrphanSweep(t.stack);
    expect(orphans.removed.filter((r) => r.workspaceId === id)).toEqual([]);
    // Its console was kept before it went (the boot log's `generation=2`).
    const log = await t.stack.api.call('GET', `/v1/workspaces/${id}/boot-log?generation=2`, { token: t.key });
    expect(log.status).toBe(200);
    expect(log.body.console).toEqual(expect.stringMatching(/\S/));
    if (t.backend === 'docker') expect((await volumesOf(t.stack.docker, id)).length).toBeGreaterThan(0);
    // `start` boots a new generation from there.
    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/start`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, (x) => x.status === 'online' && x.generation === 3);
    await a2aAnswers(t, id);
    await remove(t, id);
  });

  it('a given-up generation whose removal fails is discarded, and the orphan sweep removes it', async () => {
    const id = await create(t, 'given-up-stuck');
    await freezeTwice(t, id);
    const restore = refuse(t, 'remove', id, 1);
    try {
      const { w } = await sweepUntil(t, id, (x) => x.status === 'failed', 'the restart policy to give up');
      expect(w.generation).toBe(2);
      expect(w.error).toMatch(
        new RegExp(`${GIVEN_UP.source}; removing generation 2 failed: injected: remove refused$`),
      );
      expect((await left(t, id)).map((r) => r.name)).toEqual([`ws-${id}-g2`]);
    } finally {
      restore();
    }
    // The current generation of a `failed` workspace, marked discarded: the orphan sweep's to remove.
    const removal = await orphanRemovalOf(t.stack, id, 60_000);
    expect(removal).toMatchObject({ generation: 2, reason: 'discarded' });
    expect(await left(t, id)).toEqual([]);
    const after = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key });
    expect(after.body).toEqual(expect.objectContaining({ status: 'failed', generation: 2 }));
    await remove(t, id);
  });
});
