/**
 * The Docker daemon restarts (an upgrade, a crash, a host reboot) under online workspaces of both
 * backends; every container stops with it. Without any call from the user, both must serve A2A
 * again, each the way its platform recovers:
 * - ec2: the instance stays `running` in moto and its VM comes back by itself, as EC2's automatic
 *   recovery reboots an instance whose host failed (ec2-sim's containers carry `unless-stopped`);
 *   the agent re-registers with its workspace token, same generation, same private IP;
 * - docker: the container stays exited (restart policy `no`: the entity owns every restart), so one
 *   health sweep finds it stopped with a stale heartbeat → `offline`, and the restart policy boots
 *   a new generation: back within one sweep plus one boot.
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
import { messageSend as send } from '../support/a2a-message.js';

const AGENT = { agent: {} };

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

/** A heartbeat older than this is stale (what the health sweep reads as "the agent stopped"). */
const STALE_MS = 3_000;

interface Healed {
  w: Online;
  generation: number;
  endpoint: string | undefined;
  healedMs: number;
}

describe('dockerd restart with online docker and ec2 workspaces', () => {
  // The ec2 fixture enables both backends (and runs ec2-sim); the worker runs in this process.
  // Sweeps run only when the test asks (SWEEP_SCHEDULES=off). A sweep that finds the ec2 workspace
  // mid-reboot may call it degraded; its next heartbeat lifts that, long before a degraded restart.
  const t = useParityStack('ec2', {
    env: {
      AUTO_RESTART_POLICY: 'always',
      HEARTBEAT_STALE_MS: String(STALE_MS),
      AUTO_RESTART_DEGRADED_MS: '300000',
    },
  });

  /** Reads only, until the workspace is online at `generation`, heartbeating, at the backend's endpoint. */
  async function healed(w: Online, generation: number, restartedAt: number): Promise<Healed> {
    const backend = t.stack.service.backends[w.backend];
    const now = await waitFor(
      async () => {
        const res = await t.stack.api.call('GET', `/v1/workspaces/${w.id}`, { token: t.key });
        const body = res.body as {
          status: string;
          generation: number;
          endpoint?: string;
          lastHeartbeatAt?: string;
        };
        const info = await backend.describe(w.id, generation);
        const beat = body.lastHeartbeatAt ? Date.parse(body.lastHeartbeatAt) : 0;
        if (
          body.status !== 'online' ||
          body.generation !== generation ||
          info?.status !== 'running' ||
          beat <= restartedAt
        ) {
          throw new Error(
            `${body.status} g${body.generation}, resource g${generation} ${info?.status ?? 'missing'}, last heartbeat ${body.lastHeartbeatAt ?? '-'} (restart began ${new Date(restartedAt).toISOString()})`,
          );
        }
        if (body.endpoint !== info.endpoint) {
          throw new Error(`recorded endpoint ${body.endpoint} but the backend says ${info.endpoint}`);
        }
        return body;
      },
      { timeoutMs: 150_000, intervalMs: 250, describe: `${w.backend} workspace ${w.id} to heal by itself` },
    );
    return { w, generation, endpoint: now.endpoint, healedMs: Date.now() - restartedAt };
  }

  /**
   * docker: waits until the container is seen exited and the heartbeat stale, runs ONE health
   * sweep, which must call the workspace offline, then only reads until the new generation serves.
   */
  async function healedBySweep(w: Online, restartedAt: number): Promise<Healed> {
    const backend = t.stack.service.backends[w.backend];
    await waitFor(
      async () => {
        const info = await backend.describe(w.id, w.generation);
        const res = await t.stack.api.call('GET', `/v1/workspaces/${w.id}`, { token: t.key });
        const beat = Date.parse((res.body as { lastHeartbeatAt?: string }).lastHeartbeatAt ?? '');
        // No in-place restart: the daemon leaves the container exited.
        if (info?.status !== 'stopped') throw new Error(`container ${info?.status ?? 'missing'}`);
        return Date.now() - beat > STALE_MS;
      },
      { timeoutMs: 120_000, intervalMs: 250, describe: `${w.id}: container exited, heartbeat stale` },
    );
    const sweep = await t.stack.api.callRetrying503('POST', '/v1/admin/sweeps/health/run', {
      token: t.stack.adminToken,
    });
    expect(sweep.status).toBe(200);
    expect(sweep.body.listErrors).toEqual([]);
    expect(
      (sweep.body.signalled as Array<{ workspaceId: string }>).filter((s) => s.workspaceId === w.id),
    ).toEqual([expect.objectContaining({ from: 'online', to: 'offline' })]);
    return healed(w, w.generation + 1, restartedAt);
  }

  // Two boots, a daemon restart (containers stop with a 10 s grace) and the healing: minutes.
  it('every workspace serves A2A again without a call from the user', { timeout: 480_000 }, async () => {
    const log = (s: string) => console.log(`[dockerd] ${s}`);
    const workspaces = await Promise.all([createOnline(t, 'docker'), createOnline(t, 'ec2')]);
    for (const w of workspaces) expect(await a2aStatus(t, w, 'before')).toBe(200);

    await quietDocker(t.stack.docker, new Set(workspaces.map((w) => w.id)), log);
    const restartedAt = Date.now();
    await restartDockerd({ log });
    const daemonBackMs = Date.now() - restartedAt;

    // No A2A call, no start or restart: reads, and for docker the one sweep the schedule would
    // run. Both workspaces are watched at once, so a failure names every one that did not heal.
    const healing = await Promise.allSettled(
      workspaces.map((w) =>
        w.backend === 'docker' ? healedBySweep(w, restartedAt) : healed(w, w.generation, restartedAt),
      ),
    );
    expect(healing.flatMap((h) => (h.status === 'rejected' ? [String(h.reason)] : []))).toEqual([]);

    for (const h of healing) {
      if (h.status !== 'fulfilled') continue;
      const { w, generation, endpoint, healedMs } = h.value;
      expect(await a2aStatus(t, w, 'after')).toBe(200);
      const held = await holdings(w.backend, t.stack.docker, w.id);
      const compute = held.filter((x) => x.kind === 'container' || x.kind === 'instance');
      expect(compute.map((x) => [x.generation, x.state])).toEqual([[generation, 'running']]);
      const res = await t.stack.api.call('GET', `/v1/workspaces/${w.id}`, { token: t.key });
      // docker: one automatic restart (offline); ec2: none, the instance rebooted in place.
      expect(res.body.restartCount).toBe(w.backend === 'docker' ? 1 : 0);
      log(
        `${w.backend} | online g${w.generation} → g${generation} | endpoint ${w.endpoint} → ${endpoint ?? '-'} | daemon back in ${(daemonBackMs / 1000).toFixed(1)} s | serving again ${(healedMs / 1000).toFixed(1)} s after the restart began`,
      );
    }
  });
});
