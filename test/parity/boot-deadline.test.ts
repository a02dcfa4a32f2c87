/**
 * A boot that never proves readiness ends `failed` at the boot deadline, on each backend: what the
 * agent reported and the console are kept, the resource is removed, and the workspace can start
 * again. Its own file so the deadline's boots run without the race file's eight racing workspaces
 * beside them (at 6 s an ec2 agent under that load reported only `boot` before the deadline).
 */
import { describe, expect, test } from 'vitest';
import type { BackendKind } from '../../src/backends/backend.js';
import type { SimKnobs } from '../ec2-sim/sim.js';
import { waitForStatus } from '../support/stack.js';
import { leftovers, CONCURRENT_BLOCK, PARITY_BACKENDS, useParityStack } from './backends.js';

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
  // The never-healthy agent must report its four phases before it: 1.2 s (docker) and 2.2 s (ec2)
  // after the create with this file's four boots at once on a quiet two-CPU machine.
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
