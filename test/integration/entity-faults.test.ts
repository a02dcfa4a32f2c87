/**
 * The entity and the API under faults, on the real stack (Temporal, PostgreSQL, dockerd): a config
 * the database refuses answers 4xx and wedges nothing; DELETEs at once are all accepted; a create whose entity start never landed is
 * deleted on request, or started by the orphan sweep; with no worker polling, lifecycle calls (and
 * an orphan sweep run now) answer 503 + Retry-After instead of hanging, and /readyz names the
 * worker as what is missing.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../setup/wait-for.js';
import { restartUpdate } from '../../src/workflows/messages.js';
import { createOnline } from '../parity/backends.js';
import { followEvents } from '../support/events-stream.js';
import { holdings } from '../support/faults.js';
import { timerOutcome } from '../support/timer-outcome.js';
import {
  insertWorkspaceRow,
  useStack,
  volumesOf,
  waitForStatus,
  type StackFixture,
} from '../support/stack.js';

describe('a config the database refuses (worker running, docker)', () => {
  const t = useStack();

  it('PATCH with a NUL in config answers 4xx, and a following restart reaches online', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'nul', backend: 'docker', config: { x: 'ok' } },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    await waitForStatus(t.stack, t.key, id, 'online');

    // Raw JSON: \u0000 survives JSON parsing and is refused by PostgreSQL (22P05) or at the edge.
    const patched = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
      token: t.key,
      rawBody: '{"config":{"x":"a\\u0000b"},"restart":true}',
    });
    expect(patched.status).toBeGreaterThanOrEqual(400);
    expect(patched.status).toBeLessThan(500);
    expect(patched.body.error.field).toMatch(/^config/);

    const restart = await t.stack.api.call('POST', `/v1/workspaces/${id}/restart`, { token: t.key });
    expect(restart.status).toBe(202);
    const online = await waitForStatus(
      t.stack,
      t.key,
      id,
      (w) => w.status === 'online' && w.generation === 2,
    );
    expect(online.error ?? null).toBeNull();

    // A good config after the refused one is saved and booted as usual.
    const good = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
      token: t.key,
      body: { config: { x: 'ab' }, restart: true },
    });
    expect(good.status).toBe(200);
    expect(good.body.generation).toBe(3);
    const running = await waitForStatus(
      t.stack,
      t.key,
      id,
      (w) => w.status === 'online' && w.generation === 3,
    );
    expect(running.bootConfigHash).toBe(good.body.configHash);
    // A save without restart: configHash is the saved config's, bootConfigHash still what runs.
    const saved = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
      token: t.key,
      body: { config: { x: 'saved, not applied' } },
    });
    expect(saved.status).toBe(200);
    const after = (await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key })).body;
    expect(after).toMatchObject({
      status: 'online',
      generation: 3,
      configHash: saved.body.configHash,
      bootConfigHash: good.body.configHash,
    });
    expect(saved.body.configHash).not.toBe(good.body.configHash);

    // DELETE is idempotent: five at once are all accepted (one starts the delete, the rest find it
    // under way), and so is one while it runs.
    const deletes = await Promise.all(
      Array.from({ length: 5 }, () => t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })),
    );
    expect(deletes.map((d) => d.status)).toEqual([202, 202, 202, 202, 202]);
    // Each answers the status it found: online for the one that started it, deleting after.
    for (const d of deletes) expect(['online', 'deleting']).toContain(d.body.status);
    const during = await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
    expect(during.status).toBe(202);
    expect(['deleting', 'deleted']).toContain(during.body.status);
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });
});

/** A stack fixture as createOnline takes it, for docker workspaces. */
const onDocker = (t: StackFixture) => ({ stack: t.stack, key: t.key, backend: 'docker' as const });

describe('a delete the backend refuses (worker running, docker)', () => {
  const t = useStack();

  it('retries with growing waits while a volume is in use; a DELETE again once it is free deletes now', async () => {
    const id = (await createOnline(onDocker(t), 'held')).id as string;
    // A container of someone else's holding the workspace's volume: the daemon refuses to remove it
    // (409 in use), a refusal that heals, as a dockerd busy or restarting does.
    const volume = (await volumesOf(t.stack.docker, id))[0]!.Name;
    const holder = await t.stack.docker.createContainer({
      Image: t.stack.config.RUNTIME_IMAGE!,
      Cmd: ['true'],
      HostConfig: { Binds: [`${volume}:/held`] },
      Labels: { 'wo.test': 'volume-holder' },
    });
    const feed = followEvents(t.stack.url, id, t.key);
    try {
      expect(await feed.status).toBe(200);
      expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
      // The third refused attempt says when the next comes; its wait is the one a DELETE cuts short.
      const third = await waitFor(
        () => feed.events.find((e) => e.message?.startsWith('delete attempt 3 failed:')),
        { timeoutMs: 120_000, intervalMs: 20, describe: 'a third refused delete attempt' },
      );
      expect(third.message).toMatch(/in use.*; next attempt in 8 s, or at a DELETE again$/);
      expect(feed.events.filter((e) => e.status === 'deleting').length).toBe(1 + 3);
      const during = (await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key })).body;
      expect(during.status).toBe('deleting');
      expect(during.error).toMatch(/^delete failed: removing volume .*in use/);

      await holder.remove();
      const again = await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
      expect(again.status).toBe(202);
      expect(again.body.status).toBe('deleting');
      await waitForStatus(t.stack, t.key, id, 'deleted');
      expect(await holdings('docker', t.stack.docker, id)).toEqual([]);

      // The fourth attempt came at the DELETE: the 8 s wait's timer was cancelled, never fired.
      expect(
        await timerOutcome(
          t.stack.service.temporal.workflow.getHandle(`workspace:${id}`),
          'wait 8 s before delete attempt 4 (or at a DELETE again)',
        ),
      ).toBe('cancelled');
    } finally {
      feed.close();
      await holder.remove({ force: true }).catch(() => undefined);
    }
  });
});

describe('entities continuing-as-new often (worker running, docker)', () => {
  // Every few events: a DELETE racing a config save meets an entity about to continue-as-new.
  const t = useStack({ env: { CONTINUE_AS_NEW_AFTER_EVENTS: '10' } });

  it('a DELETE sent with a config save is carried out on every workspace, never dropped', async () => {
    const created = await Promise.all([1, 2, 3].map((n) => createOnline(onDocker(t), `can-${n}`)));
    const ids = created.map((w) => w.id as string);
    // Each save's Update is in flight when its DELETE comes: both answered, both carried out.
    const answers = await Promise.all(
      ids.map(async (id, n) => {
        const patch = t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
          token: t.key,
          body: { config: { round: n } },
        });
        const del = t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
        return [(await patch).status, (await del).status];
      }),
    );
    expect(answers).toEqual(ids.map(() => [200, 202]));
    for (const id of ids) {
      await waitForStatus(t.stack, t.key, id, 'deleted');
      expect(await holdings('docker', t.stack.docker, id)).toEqual([]);
    }
  });
});

describe('a row whose entity is gone (worker running, docker)', () => {
  const t = useStack();

  it('a lifecycle call answered 503 because its entity was busy is never carried out later', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'busy-entity', backend: 'docker' },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    await waitForStatus(t.stack, t.key, id, 'online');
    const pool = t.stack.service.db.pool;
    const holder = await pool.connect();
    let stop: Awaited<ReturnType<typeof t.stack.api.call>>;
    let tookMs: number;
    let restarted: Promise<unknown> | undefined;
    try {
      // The workspace's row locked, then a restart with no answer time (as the platform's own
      // Updates are): its first transition is a local step of the task that takes it, so it waits
      // on the row there and holds the entity's workflow task open (as a worker back from a crash,
      // or a busy one, would). (One from the API writes nothing in that task.)
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE', [id]);
      restarted = t.stack.service.temporal.workflow
        .getHandle(created.body.workflowId)
        .executeUpdate(restartUpdate);
      restarted.catch(() => undefined); // awaited below
      await waitFor(
        async () =>
          (
            await pool.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock'`,
            )
          ).rows[0]!.n > 0,
        { timeoutMs: 30_000, describe: "the entity's transition waiting on the row" },
      );
      const sent = Date.now();
      stop = await t.stack.api.call('POST', `/v1/workspaces/${id}/stop`, { token: t.key });
      tookMs = Date.now() - sent;
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect(stop.status).toBe(503);
    expect(stop.body.error.code).toBe('temporal_unavailable');
    expect(tookMs).toBeLessThan(5000);
    expect(await restarted).toMatchObject({ accepted: true });
    // The entity gets the stop once the row is free, after its caller gave up: refused, so the
    // restart goes on and nothing stops the workspace.
    await waitForStatus(t.stack, t.key, id, (w) => w.status === 'online' && w.generation === 2);
    const history = await t.stack.service.temporal.workflow.getHandle(created.body.workflowId).fetchHistory();
    const accepted = (history.events ?? [])
      .map((e) => e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name)
      .filter(Boolean);
    expect(accepted).toEqual(['restart']);
    const stops = await pool.query(
      `SELECT 1 FROM workspace_transitions WHERE workspace_id = $1 AND status IN ('stopping', 'stopped')`,
      [id],
    );
    expect(stops.rowCount).toBe(0);
    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });

  it('DELETE of a row with no workflow (an ambiguous create whose start never landed) converges to deleted', async () => {
    // What POST leaves when the start and the existence check both time out and the start never
    // reached Temporal: a row, no workflow.
    const id = await insertWorkspaceRow(t.stack.service.db.pool, t.orgId, () => 'no-entity');
    const res = await t.stack.api.callRetrying503('DELETE', `/v1/workspaces/${id}`, { token: t.key });
    expect(res.status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
    // Once deleted, a DELETE again is the usual idempotent answer.
    const again = await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
    expect(again.status).toBe(202);
    expect(again.body.status).toBe('deleted');
  });

  it('the orphan sweep starts the entity of a create whose start never landed, and the workspace comes online', async () => {
    const pool = t.stack.service.db.pool;
    // Two such rows: one a minute past its create (lost: the create's own start is long over), and
    // one just committed (its create may still be starting it): only the first is started.
    const lost = await insertWorkspaceRow(pool, t.orgId, () => 'lost-create');
    await pool.query(`UPDATE workspaces SET created_at = now() - interval '2 minutes' WHERE id = $1`, [lost]);
    const fresh = await insertWorkspaceRow(pool, t.orgId, () => 'fresh-create');
    const sweep = await t.stack.api.callRetrying503('POST', '/v1/admin/sweeps/orphans/run', {
      token: t.stack.adminToken,
    });
    expect(sweep.status).toBe(200);
    const resumed = (sweep.body.lostCreates.resumed as Array<{ workspaceId: string }>).map(
      (r) => r.workspaceId,
    );
    expect(resumed).toContain(lost);
    expect(resumed).not.toContain(fresh);
    expect(sweep.body.lostCreates.failed).toEqual([]);
    const online = await waitForStatus(t.stack, t.key, lost, 'online');
    expect(online.generation).toBe(1);
    expect(online.restartPolicy).toBe('never'); // the suite's AUTO_RESTART_POLICY, as a create would
    const info = await t.stack.service.temporal.workflow.getHandle(`workspace:${lost}`).describe();
    expect(info.status.name).toBe('RUNNING');
    // The fresh row has no entity: nothing was started for it.
    await expect(
      t.stack.service.temporal.workflow.getHandle(`workspace:${fresh}`).describe(),
    ).rejects.toThrow();

    // A second sweep finds the lost create taken care of (started, a step taken): nothing again.
    const again = await t.stack.api.callRetrying503('POST', '/v1/admin/sweeps/orphans/run', {
      token: t.stack.adminToken,
    });
    expect(
      (again.body.lostCreates.resumed as Array<{ workspaceId: string }>).map((r) => r.workspaceId),
    ).not.toContain(lost);
    for (const id of [lost, fresh]) {
      expect(
        (await t.stack.api.callRetrying503('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status,
      ).toBe(202);
      await waitForStatus(t.stack, t.key, id, 'deleted');
    }
  });
});

describe('no worker polling the task queue', () => {
  const t = useStack({ worker: false });

  it('lifecycle calls answer 503 temporal_unavailable with Retry-After, and change nothing', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'orphan-queue', backend: 'docker' },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    const calls: Array<[string, string, object | undefined]> = [
      ['POST', `/v1/workspaces/${id}/restart`, undefined],
      ['POST', `/v1/workspaces/${id}/stop`, undefined],
      ['POST', `/v1/workspaces/${id}/start`, undefined],
      ['PATCH', `/v1/workspaces/${id}/config`, { config: { v: 2 } }],
      ['DELETE', `/v1/workspaces/${id}`, undefined],
    ];
    for (const [method, path, body] of calls) {
      const res = await t.stack.api.call(method, path, { token: t.key, body });
      expect(res.status, `${method} ${path}`).toBe(503);
      expect(res.body.error.code).toBe('temporal_unavailable');
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    // Nothing was sent: the workflow has no Update in its history.
    const history = await t.stack.service.temporal.workflow.getHandle(created.body.workflowId).fetchHistory();
    const updates = (history.events ?? []).filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes);
    expect(updates).toEqual([]);
    const row = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key });
    expect(row.body.status).toBe('provisioning');
    await t.stack.service.temporal.workflow.getHandle(created.body.workflowId).terminate('test cleanup');
  });

  it('an orphan sweep run now answers 503 with Retry-After at once instead of waiting for its run timeout', async () => {
    const res = await t.stack.api.call('POST', '/v1/admin/sweeps/orphans/run', { token: t.stack.adminToken });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('temporal_unavailable');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('/readyz answers 503 and names the worker, with the other parts ok', async () => {
    const ready = await t.stack.api.call('GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.ok).toBe(false);
    expect(ready.body.checks).toMatchObject({ database: 'ok', temporal: 'ok', 'backend:docker': 'ok' });
    expect(ready.body.checks.worker).toMatch(/no worker polls task queue/);
  });
});
