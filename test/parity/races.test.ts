/**
 * The races the seed system lost, on the real stack and on each backend: a config save racing a
 * restart, a stale boot trying to flip the workspace, and a boot that never proves readiness.
 */
import { describe, expect, test } from 'vitest';
import type { BackendKind } from '../../src/backends/backend.js';
import type { SimKnobs } from '../ec2-sim/sim.js';
import { stateQuery, workspaceWorkflowId } from '../../src/workflows/messages.js';
import { waitFor } from '../setup/wait-for.js';
import { waitForStatus } from '../support/stack.js';
import {
  bootstrapTokenOf,
  createOnline,
  leftovers,
  CONCURRENT_BLOCK,
  PARITY_BACKENDS,
  resourcesOf,
  stateFileOf,
  useParityStack,
} from './backends.js';

// The race blocks of both backends run at the same time (CONCURRENT_BLOCK); the tests of one block
// share its stack and run one after another.
const it = test.sequential;

const RUNTIMES = ['claude-code', 'langgraph', 'crewai', 'autogen'];

describe.each(PARITY_BACKENDS)('%s: config/restart race and stale boots', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  /** Waits until the entity has nothing left to do and the workspace is online. */
  async function settled(id: string) {
    const handle = t.stack.service.temporal.workflow.getHandle(workspaceWorkflowId(id));
    return waitFor(
      async () => {
        const s = await handle.query(stateQuery);
        return s.status === 'online' && !s.busy && !s.restartPending ? s : false;
      },
      { timeoutMs: 90_000, intervalMs: 100, describe: `workspace ${id} to settle online` },
    );
  }

  it('20 rounds of a config save racing a restart: the running workspace has the last saved config', async () => {
    const { id } = await createOnline(t, 'racer', { config: { round: 0 } });
    for (let round = 1; round <= 20; round++) {
      const runtime = RUNTIMES[round % RUNTIMES.length]!;
      // Half the rounds send the restart first, half the save first; both fly concurrently.
      const save = () =>
        t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
          token: t.key,
          body: { runtime, config: { round } },
        });
      const restart = () => t.stack.api.call('POST', `/v1/workspaces/${id}/restart`, { token: t.key });
      const [a, b] =
        round % 2 ? await Promise.all([save(), restart()]) : await Promise.all([restart(), save()]);
      expect([a.status, b.status].sort()).toEqual([200, 202]);
      const state = await settled(id);
      const w = (await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key })).body;
      expect(w.runtime, `round ${round}`).toBe(runtime);
      expect(state.configHash, `round ${round}`).toBe(w.configHash);
      const yaml = (
        await t.stack.service.backends[backend].readFile(id, state.generation, '/configs', 'config.yaml')
      ).toString();
      expect(yaml, `round ${round}`).toMatch(new RegExp(`^round: ${round}$`, 'm'));
      expect(yaml, `round ${round}`).toMatch(new RegExp(`^runtime: ${runtime}$`, 'm'));
      expect((await resourcesOf(backend, t.stack.docker, id)).length, `round ${round}`).toBe(1);
    }
    await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });

  it('a boot of an older generation is refused and cannot change the workspace', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'fenced', backend },
    });
    const id: string = created.body.id;
    await waitForStatus(t.stack, t.key, id, 'online');
    // What generation 1 was started with (container env / user-data) and what its agent holds.
    const bootstrapToken = await bootstrapTokenOf(backend, t.stack.docker, id, 1);
    const platformUrl = `http://host.docker.internal:${t.stack.service.port}`;
    const bundle = JSON.parse(
      (await stateFileOf(backend, t.stack.docker, id, 1, 'bundle.json')).content.toString(),
    );
    const oldToken: string = bundle.workspaceToken;

    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/restart`, { token: t.key })).status).toBe(
      202,
    );
    const current = await waitForStatus(
      t.stack,
      t.key,
      id,
      (w) => w.status === 'online' && w.generation === 2,
    );
    const eventsBefore = (await t.stack.api.call('GET', `/v1/workspaces/${id}/boot-log`, { token: t.key }))
      .body.events.length;

    // The old agent's workspace token was revoked when generation 2 was prepared: every registry
    // call is refused at authentication.
    const g1Body = { workspaceId: id, generation: 1, configHash: bundle.configHash };
    const register = await t.stack.api.call('POST', '/v1/registry/register', {
      token: oldToken,
      body: g1Body,
    });
    expect(register.status).toBe(401);
    const health = await t.stack.api.call('POST', '/v1/registry/boot-events', {
      token: oldToken,
      body: { workspaceId: id, generation: 1, phase: 'platform-health-ok', ts: new Date().toISOString() },
    });
    expect(health.status).toBe(401);
    // Claiming the current generation with the old token is refused too.
    const claim = await t.stack.api.call('POST', '/v1/registry/register', {
      token: oldToken,
      body: { ...g1Body, generation: 2, configHash: current.configHash },
    });
    expect(claim.status).toBe(401);
    expect((await t.stack.api.call('GET', '/v1/registry/bootstrap', { token: oldToken })).status).toBe(401);

    // The current generation's own token with a config hash other than its snapshot: refused.
    const g2Bundle = JSON.parse(
      (await stateFileOf(backend, t.stack.docker, id, 2, 'bundle.json')).content.toString(),
    );
    for (const path of ['/v1/registry/register', '/v1/registry/heartbeat']) {
      const wrongHash = await t.stack.api.call('POST', path, {
        token: g2Bundle.workspaceToken,
        body: { workspaceId: id, generation: 2, configHash: 'ffffffffffffffff' },
      });
      expect(wrongHash.status, path).toBe(409);
      expect(wrongHash.body.error.code, path).toBe('config_mismatch');
    }

    // A container started with generation 1's (used) bootstrap token: refused, exits non-zero.
    const rogue = await t.stack.docker.createContainer({
      Image: t.stack.config.RUNTIME_IMAGE!,
      name: `rogue-${id}`,
      Env: [`WO_PLATFORM_URL=${platformUrl}`, `WO_BOOTSTRAP_TOKEN=${bootstrapToken}`],
      HostConfig: { ExtraHosts: ['host.docker.internal:host-gateway'] },
      Labels: { 'wo.test': 'rogue' },
    });
    try {
      await rogue.start();
      const exit = await rogue.wait();
      expect(exit.StatusCode).not.toBe(0);
      const logs = (await rogue.logs({ stdout: true, stderr: true })).toString();
      expect(logs).toMatch(/bootstrap refused/i);
    } finally {
      await rogue.remove({ force: true });
    }

    const after = (await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key })).body;
    expect(after.status).toBe('online');
    expect(after.generation).toBe(2);
    expect(after.configHash).toBe(current.configHash);
    const eventsAfter = (await t.stack.api.call('GET', `/v1/workspaces/${id}/boot-log`, { token: t.key }))
      .body.events;
    expect(eventsAfter.length).toBe(eventsBefore);

    await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });
});

interface DeadlineCase {
  name: string;
  config?: Record<string, unknown>;
  knobs?: SimKnobs;
  /** Boot phases reported before the deadline. */
  phases: string[];
  /** What the captured console output shows. */
  console: RegExp;
}

const AGENT_NEVER_HEALTHY: DeadlineCase = {
  name: 'an agent that never reports health',
  config: { agent: { neverHealthy: true } },
  phases: ['boot', 'config-materialized', 'plugins-installed', 'agent-started'],
  console: /\S/,
};
const DEADLINE_CASES: Record<BackendKind, DeadlineCase[]> = {
  docker: [AGENT_NEVER_HEALTHY],
  ec2: [
    AGENT_NEVER_HEALTHY,
    { name: 'an instance that never boots', knobs: { neverBoots: true }, phases: [], console: /^$/ },
    {
      name: 'user-data that fails',
      knobs: { userDataFails: true },
      phases: [],
      console: /user-data exited 1/,
    },
  ],
};

describe.each(PARITY_BACKENDS)('%s: boot deadline', CONCURRENT_BLOCK, (backend) => {
  // The never-healthy agent must report its four phases before it, while the race block of each
  // backend boots beside it: at 6 s an ec2 agent beside eight racing boots once reported only
  // `boot`. The block runs alongside the longer race block, so a longer deadline costs no time.
  const deadlineMs = 10_000;
  const t = useParityStack(backend, { env: { BOOT_DEADLINE_MS: String(deadlineMs) } });

  // Each case has its own workspace (and org, when it has knobs) and waits for a timer: together.
  test.concurrent.each(DEADLINE_CASES[backend])(
    '$name → failed within the deadline, boot events + console kept, resource removed',
    async (c) => {
      const key = c.knobs ? await t.orgWithKnobs(c.knobs) : t.key;
      const created = await t.stack.api.call('POST', '/v1/workspaces', {
        token: key,
        body: { name: 'silent', backend, config: c.config ?? {} },
      });
      const id: string = created.body.id;
      const started = Date.now();
      const failed = await waitForStatus(t.stack, key, id, 'failed', deadlineMs + 60_000);
      // The deadline is a workflow timer: it fires after the deadline, not before.
      expect(Date.now() - started).toBeGreaterThanOrEqual(deadlineMs);
      expect(failed.error).toMatch(/boot deadline/);
      // Compensation removed the resource (ec2: terminated, no simulator container).
      expect(await leftovers(backend, t.stack.docker, id, { keepVolumes: true })).toEqual([]);
      const log = (await t.stack.api.call('GET', `/v1/workspaces/${id}/boot-log`, { token: key })).body;
      expect(log.events.map((e: { phase: string }) => e.phase)).toEqual(c.phases);
      expect(log.console).toMatch(c.console);
      expect(log.console).not.toMatch(/wo_(boot|ws)_/);
      // Failed, not stuck: start is accepted (api.md: it boots a new generation), delete cleans up.
      expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/start`, { token: key })).status).toBe(202);
      await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: key });
      await waitForStatus(t.stack, key, id, 'deleted');
      expect(await leftovers(backend, t.stack.docker, id)).toEqual([]);
    },
  );
});
