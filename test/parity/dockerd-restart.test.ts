/**
 * The Docker daemon restarts (an upgrade, a crash, a host reboot) under online workspaces of both
 * backends: a docker workspace's container (restart policy) and an ec2 workspace's instance, which
 * ec2-sim plays as a container, are stopped with the daemon and come back when it does. Without any
 * call from the user, both must serve A2A again: the docker container comes back on a NEW host port
 * that the platform has to learn from the backend; the rebooted instance re-registers with its
 * workspace token.
 *
 * This restarts the machine's dockerd, so it runs alone and last, holding both locks:
 *   flock /tmp/wo-ec2.lock flock /tmp/wo-docker-restart.lock npx vitest run test/parity/dockerd-restart.test.ts
 * Before the restart it waits (best effort) until no container of anyone else is being created.
 */
import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import type { BackendKind } from '../../src/backends/backend.js';
import { restartDockerd } from '../setup/services.js';
import { waitFor } from '../setup/wait-for.js';
import { holdings } from '../support/faults.js';
import { waitForStatus } from '../support/stack.js';
import { useParityStack, type ParityFixture } from './backends.js';

const AGENT = { agent: {} };

const send = (text: string) => ({
  jsonrpc: '2.0',
  id: 1,
  method: 'message/send',
  params: { message: { role: 'user', messageId: 'm1', parts: [{ kind: 'text', text }] } },
});

interface Online {
  id: string;
  backend: BackendKind;
  generation: number;
  endpoint: string;
}

async function createOnline(t: ParityFixture, backend: BackendKind): Promise<Online> {
  const created = await t.stack.api.call('POST', '/v1/workspaces', {
    token: t.key,
    body: { name: `survivor-${backend}`, backend, config: AGENT },
  });
  expect(created.status).toBe(202);
  const w = await waitForStatus(t.stack, t.key, created.body.id as string, 'online', 180_000);
  return { id: w.id, backend, generation: w.generation, endpoint: w.endpoint };
}

async function a2aStatus(t: ParityFixture, w: Online, text: string): Promise<number> {
  const res = await t.stack.api.call('POST', `/v1/workspaces/${w.id}/a2a`, {
    token: t.key,
    body: send(text),
  });
  return res.status;
}

/**
 * Best effort: other helpers' docker tests may run beside this one. Wait until no container that
 * is not ours was created in the last few seconds (or sits in `created`), so the restart does not
 * land in the middle of someone's create; after the deadline go on regardless (and say so).
 */
async function quietDocker(docker: Dockerode, ours: Set<string>, log: (s: string) => void): Promise<void> {
  const busy = async () => {
    const now = Date.now() / 1000;
    const all = await docker.listContainers({ all: true });
    return all.filter(
      (c) => !ours.has(c.Labels['wo.workspace-id'] ?? '') && (c.State === 'created' || now - c.Created < 5),
    );
  };
  try {
    await waitFor(async () => (await busy()).length === 0, {
      timeoutMs: 60_000,
      intervalMs: 500,
      describe: 'no other container being created',
    });
  } catch {
    log(`restarting dockerd while others create: ${(await busy()).map((c) => c.Names[0]).join(', ')}`);
  }
}

describe('dockerd restart with online docker and ec2 workspaces', () => {
  // The ec2 fixture enables both backends (and runs ec2-sim); the worker runs in this process.
  const t = useParityStack('ec2');

  // Two boots, a daemon restart (containers stop with a 10 s grace) and the healing: minutes.
  it('every workspace serves A2A again without a call from the user', { timeout: 480_000 }, async () => {
    const log = (s: string) => console.log(`[dockerd] ${s}`);
    const workspaces = await Promise.all([createOnline(t, 'docker'), createOnline(t, 'ec2')]);
    for (const w of workspaces) expect(await a2aStatus(t, w, 'before')).toBe(200);

    await quietDocker(t.stack.docker, new Set(workspaces.map((w) => w.id)), log);
    const restartedAt = Date.now();
    await restartDockerd({ log });
    const daemonBackMs = Date.now() - restartedAt;

    // No A2A call, no restart: only reads, until the platform's record matches the backend's
    // truth and the agent heartbeats again. Then one call each must succeed. Both workspaces are
    // watched at once, so a failure names every one that did not heal.
    const healing = await Promise.allSettled(
      workspaces.map(async (w) => {
        const backend = t.stack.service.backends[w.backend];
        const healed = await waitFor(
          async () => {
            const res = await t.stack.api.call('GET', `/v1/workspaces/${w.id}`, { token: t.key });
            const now = res.body as { status: string; endpoint?: string; lastHeartbeatAt?: string };
            const info = await backend.describe(w.id, w.generation);
            const beat = now.lastHeartbeatAt ? Date.parse(now.lastHeartbeatAt) : 0;
            if (now.status !== 'online' || info?.status !== 'running' || beat <= restartedAt) {
              throw new Error(
                `${now.status}, resource ${info?.status ?? 'missing'}, last heartbeat ${now.lastHeartbeatAt ?? '-'} (restart began ${new Date(restartedAt).toISOString()})`,
              );
            }
            if (now.endpoint !== info.endpoint) {
              throw new Error(`recorded endpoint ${now.endpoint} but the backend says ${info.endpoint}`);
            }
            return now;
          },
          {
            timeoutMs: 150_000,
            intervalMs: 250,
            describe: `${w.backend} workspace ${w.id} to heal by itself`,
          },
        );
        return { w, endpoint: healed.endpoint, healedMs: Date.now() - restartedAt };
      }),
    );
    expect(healing.flatMap((h) => (h.status === 'rejected' ? [String(h.reason)] : []))).toEqual([]);

    for (const h of healing) {
      if (h.status !== 'fulfilled') continue;
      const { w, endpoint, healedMs } = h.value;
      expect(await a2aStatus(t, w, 'after')).toBe(200);
      const held = await holdings(w.backend, t.stack.docker, w.id);
      const compute = held.filter((x) => x.kind === 'container' || x.kind === 'instance');
      expect(compute.map((x) => [x.generation, x.state])).toEqual([[w.generation, 'running']]);
      log(
        `${w.backend} | online g${w.generation} | endpoint ${w.endpoint} → ${endpoint ?? '-'} | daemon back in ${(daemonBackMs / 1000).toFixed(1)} s | serving again ${(healedMs / 1000).toFixed(1)} s after the restart began`,
      );
    }
  });
});
