/**
 * Crash windows: the worker process is SIGKILLed at three points between "container created" and
 * "online". A fresh worker must finish the provision with exactly one container and no orphan.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../setup/wait-for.js';
import { containersOf, createOrg, startStack, testEnv, waitForStatus, type Stack } from '../support/stack.js';
import { spawnWorker } from '../support/worker-process.js';

describe('worker crash during provision', () => {
  let stack: Stack;
  let key: string;
  let workerEnv: Record<string, string>;

  beforeAll(async () => {
    const env = testEnv();
    // The API runs here; workers are separate processes sharing its task queue and database.
    stack = await startStack({ worker: false, env });
    key = (await createOrg(stack)).apiKey;
    workerEnv = { ...env, DOCKER_PLATFORM_URL: `http://host.docker.internal:${stack.service.port}` };
  });
  afterAll(async () => {
    await stack?.close();
  });

  const phasesOf = async (id: string) =>
    (
      await stack.service.db.pool.query('SELECT phase FROM boot_events WHERE workspace_id = $1', [id])
    ).rows.map((r: { phase: string }) => r.phase);

  const points: Array<[string, (id: string) => Promise<boolean>]> = [
    ['the container exists', async (id) => (await containersOf(stack.docker, id)).length > 0],
    ['the agent reported boot', async (id) => (await phasesOf(id)).includes('boot')],
    ['the agent reported agent-started', async (id) => (await phasesOf(id)).includes('agent-started')],
  ];

  it.each(points)(
    'SIGKILL once %s → a new worker brings it online, one container, no orphan',
    async (_p, reached) => {
      const first = await spawnWorker(workerEnv);
      const created = await stack.api.call('POST', '/v1/workspaces', {
        token: key,
        body: { name: 'crashy', backend: 'docker' },
      });
      expect(created.status).toBe(202);
      const id: string = created.body.id;
      await waitFor(() => reached(id), {
        timeoutMs: 60_000,
        intervalMs: 20,
        describe: `crash point for ${id}`,
      });
      await first.kill('SIGKILL');
      const during = await stack.api.call('GET', `/v1/workspaces/${id}`, { token: key });
      expect(during.body.status).not.toBe('online');

      const second = await spawnWorker(workerEnv);
      try {
        const online = await waitForStatus(stack, key, id, 'online');
        expect(online.generation).toBe(1);
        const containers = await containersOf(stack.docker, id);
        expect(containers.map((c) => c.Names[0])).toEqual([`/ws-${id}-g1`]);
        expect(containers[0]!.State).toBe('running');
        const managed = (await stack.service.backends.docker.listManaged()).filter(
          (r) => r.workspaceId === id,
        );
        expect(managed).toHaveLength(1);
        expect(managed[0]!.generation).toBe(1);

        expect((await stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: key })).status).toBe(202);
        await waitForStatus(stack, key, id, 'deleted');
        expect(await containersOf(stack.docker, id)).toEqual([]);
      } finally {
        await second.kill('SIGTERM');
      }
    },
  );
});
