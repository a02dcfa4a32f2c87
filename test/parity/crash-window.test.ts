/**
 * Crash windows: the worker process is SIGKILLed at three points between "resource created" and
 * "online". A fresh worker must finish the provision with exactly one container / instance and no
 * orphan, on each backend.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../setup/wait-for.js';
import { waitForStatus } from '../support/stack.js';
import { spawnWorker } from '../support/worker-process.js';
import {
  CONCURRENT_BLOCK,
  PARITY_BACKENDS,
  resourcesOf,
  useParityStack,
  workerProcessEnv,
} from './backends.js';

describe.each(PARITY_BACKENDS)('%s: worker crash during provision', CONCURRENT_BLOCK, (backend) => {
  // The API runs in this process; workers are separate processes sharing its task queue and DB.
  const t = useParityStack(backend, { worker: false });

  const phasesOf = async (id: string) =>
    (
      await t.stack.service.db.pool.query('SELECT phase FROM boot_events WHERE workspace_id = $1', [id])
    ).rows.map((r: { phase: string }) => r.phase);

  const points: Array<[string, (id: string) => Promise<boolean>]> = [
    ['the resource exists', async (id) => (await resourcesOf(backend, t.stack.docker, id)).length > 0],
    ['the agent reported boot', async (id) => (await phasesOf(id)).includes('boot')],
    ['the agent reported agent-started', async (id) => (await phasesOf(id)).includes('agent-started')],
  ];

  // One task queue per block: a SIGKILL must hit this test's worker only.
  it.sequential.each(points)(
    'SIGKILL once %s → a new worker brings it online, one resource, no orphan',
    async (_p, reached) => {
      const first = await spawnWorker(workerProcessEnv(t));
      const created = await t.stack.api.call('POST', '/v1/workspaces', {
        token: t.key,
        // From agent-started to online is tens of ms: the agent waits before registering, so the
        // kill lands inside the window it is meant to hit.
        body: { name: 'crashy', backend, config: { agent: { registerDelayMs: 3_000 } } },
      });
      expect(created.status).toBe(202);
      const id: string = created.body.id;
      await waitFor(() => reached(id), {
        timeoutMs: 60_000,
        intervalMs: 20,
        describe: `crash point for ${id}`,
      });
      await first.kill('SIGKILL');
      const during = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key });
      expect(during.body.status).not.toBe('online');

      const second = await spawnWorker(workerProcessEnv(t));
      try {
        const online = await waitForStatus(t.stack, t.key, id, 'online');
        expect(online.generation).toBe(1);
        const resources = await resourcesOf(backend, t.stack.docker, id);
        expect(resources.map((r) => r.name)).toEqual([`ws-${id}-g1`]);
        expect(resources[0]!.running).toBe(true);
        const managed = (await t.stack.service.backends[backend].listManaged()).filter(
          (r) => r.workspaceId === id,
        );
        expect(managed).toHaveLength(1);
        expect(managed[0]!.generation).toBe(1);

        expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
        await waitForStatus(t.stack, t.key, id, 'deleted');
        expect(await resourcesOf(backend, t.stack.docker, id)).toEqual([]);
      } finally {
        await second.kill('SIGTERM');
      }
    },
  );
});
