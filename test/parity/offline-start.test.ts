/**
 * `start` and `restart` on an offline workspace work (api.md): the resource is stopped behind the
 * platform's back, a failed A2A forward finds it stopped and the entity marks it offline; start
 * boots the same generation again, restart a new one. Before, start was accepted and did nothing.
 */
import { describe, expect, test } from 'vitest';
import { waitFor } from '../setup/wait-for.js';
import { waitForStatus } from '../support/stack.js';
import {
  CONCURRENT_BLOCK,
  PARITY_BACKENDS,
  resourcesOf,
  useParityStack,
  type ParityFixture,
} from './backends.js';
import { messageSend as send } from '../support/a2a-message.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

/** Stops the resource out of band, then lets a failed forward tell the entity; answers the row. */
async function takeOffline(t: ParityFixture, id: string, generation: number) {
  await t.stack.service.backends[t.backend].stop(id, generation);
  // EC2: the instance is `stopped` in the API a moment before its VM is down; forward until one fails.
  const forward = () =>
    t.stack.api.call('POST', `/v1/workspaces/${id}/a2a`, { token: t.key, body: send('hi') });
  await waitFor(async () => (await forward()).status >= 500, {
    timeoutMs: 30_000,
    intervalMs: 250,
    describe: `a forward to stopped ${id} to fail`,
  });
  return waitForStatus(t.stack, t.key, id, 'offline', 30_000);
}

describe.each(PARITY_BACKENDS)('%s: start and restart from offline', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  it('offline → start boots the same generation; offline → restart boots the next', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'comeback', backend },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    await waitForStatus(t.stack, t.key, id, 'online');

    const offline = await takeOffline(t, id, 1);
    expect(offline.generation).toBe(1);
    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/start`, { token: t.key })).status).toBe(202);
    const started = await waitForStatus(
      t.stack,
      t.key,
      id,
      (w) => w.status === 'online' && w.generation === 1,
    );
    expect(started.error ?? null).toBeNull();
    const resources = await resourcesOf(backend, t.stack.docker, id);
    expect(resources.map((r) => [r.name, r.running])).toEqual([[`ws-${id}-g1`, true]]);
    const answered = await t.stack.api.call('POST', `/v1/workspaces/${id}/a2a`, {
      token: t.key,
      body: send('back'),
    });
    expect(answered.status).toBe(200);

    await takeOffline(t, id, 1);
    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/restart`, { token: t.key })).status).toBe(
      202,
    );
    await waitForStatus(t.stack, t.key, id, (w) => w.status === 'online' && w.generation === 2);
    expect((await resourcesOf(backend, t.stack.docker, id)).map((r) => r.name)).toEqual([`ws-${id}-g2`]);

    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });
});
