/**
 * PATCH /v1/workspaces/:id `restartPolicy` on the real stack, the same test for each backend: the
 * entity applies a changed policy to its next restart decision without the workspace restarting.
 * `never`: a resource stopped out of band leaves the workspace `offline` after the health sweep,
 * and it stays there. `always`: the same offline workspace is restarted at a new generation.
 */
import { describe, expect, it } from 'vitest';
import { stateQuery, workspaceWorkflowId } from '../../src/workflows/messages.js';
import { waitFor } from '../setup/wait-for.js';
import { waitForStatus } from '../support/stack.js';
import { CONCURRENT_BLOCK, PARITY_BACKENDS, useParityStack, type ParityFixture } from './backends.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- API bodies

/** One health sweep through the operator entry point (a 503 is repeated, as a client would). */
async function sweep(t: ParityFixture): Promise<Json> {
  const res = await t.stack.api.callRetrying503('POST', '/v1/admin/sweeps/health/run', {
    token: t.stack.adminToken,
  });
  expect(res.status).toBe(200);
  return res.body;
}

/** Runs health sweeps until the workspace satisfies `ok`. */
async function sweepUntil(t: ParityFixture, id: string, ok: (w: Json) => boolean, what: string) {
  return waitFor(
    async () => {
      await sweep(t);
      const res = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key });
      return ok(res.body) ? res.body : null;
    },
    { timeoutMs: 120_000, intervalMs: 500, describe: what },
  );
}

// Each block on a database of its own, so that its sweeps judge only its workspaces: the two run
// at the same time.
describe.each(PARITY_BACKENDS)('%s: restart policy changed by PATCH', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend, {
    ownDatabase: true,
    env: { AUTO_RESTART_POLICY: 'never', AUTO_RESTART_BACKOFF_MS: '200', HEARTBEAT_STALE_MS: '4000' },
  });
  const patch = (id: string, body: unknown) =>
    t.stack.api.call('PATCH', `/v1/workspaces/${id}`, { token: t.key, body });

  it('never keeps an offline workspace down; always then restarts it at a new generation', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'policy', backend, restartPolicy: 'always' },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    const online = await waitForStatus(t.stack, t.key, id, 'online');
    expect(online.restartPolicy).toBe('always');

    // Bad values answer 400 naming the field; nothing changes.
    for (const body of [{ restartPolicy: 'sometimes' }, { restartPolicy: 3 }, {}]) {
      const bad = await patch(id, body);
      expect(bad.status).toBe(400);
      expect(bad.body.error.field).toBe('restartPolicy');
    }

    const never = await patch(id, { restartPolicy: 'never' });
    expect(never.status).toBe(200);
    expect(never.body).toMatchObject({ id, restartPolicy: 'never', status: 'online', generation: 1 });

    await t.stack.service.backends[backend].stop(id, 1);
    await sweepUntil(t, id, (w) => w.status === 'offline', 'the sweep to find it offline');
    // Another sweep later the entity is idle and still offline at generation 1: it decided not to restart.
    await sweep(t);
    const entity = t.stack.service.temporal.workflow.getHandle(workspaceWorkflowId(id));
    const state = await entity.query(stateQuery);
    expect(state).toMatchObject({ status: 'offline', generation: 1, busy: false, restartCount: 0 });
    const still = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key });
    expect(still.body).toMatchObject({ status: 'offline', generation: 1, restartCount: 0 });

    // null: back to the server default (never here); the row keeps no policy of its own.
    const reset = await patch(id, { restartPolicy: null });
    expect(reset.status).toBe(200);
    expect(reset.body.restartPolicy).toBe('never');
    const row = await t.stack.service.db.pool.query('SELECT restart_policy FROM workspaces WHERE id = $1', [
      id,
    ]);
    expect(row.rows[0].restart_policy).toBeNull();

    const always = await patch(id, { restartPolicy: 'always' });
    expect(always.status).toBe(200);
    expect(always.body.restartPolicy).toBe('always');
    const back = await sweepUntil(
      t,
      id,
      (w) => w.status === 'online' && w.generation === 2,
      'the offline workspace to be restarted at generation 2',
    );
    expect(back.restartCount).toBe(1);
    expect(back.lastRestartReason).toBe('offline');
    expect(back.restartPolicy).toBe('always');

    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
    // A deleted workspace's policy cannot change.
    expect((await patch(id, { restartPolicy: 'never' })).status).toBe(409);
  });
});
