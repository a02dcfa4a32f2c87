/**
 * POST /v1/workspaces when starting the workflow fails: the row is deleted only when Temporal says
 * no workflow exists; when that cannot be known the row stays (a workflow may be running for it);
 * when the workflow exists after all, the create succeeded. The API runs over the real database,
 * with an entity client whose start fails the way a timed-out or refused call does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveApiWith, useStack, type ApiClient } from '../support/stack.js';

describe('create when the workflow start fails', () => {
  const t = useStack({ worker: false });
  let exists: boolean | null = false;
  let served: Awaited<ReturnType<typeof serveApiWith>> | undefined;
  let api: ApiClient;

  beforeAll(async () => {
    // Only the two calls the create route makes; the start fails as a deadline would.
    const entity = {
      start: async () => {
        throw new Error('deadline exceeded');
      },
      exists: async () => exists,
    };
    served = await serveApiWith(t.stack, entity);
    api = served.api;
  });
  afterAll(async () => {
    await served?.close();
  });

  const rows = async (name: string) =>
    (
      await t.stack.service.db.pool.query('SELECT id FROM workspaces WHERE org_id = $1 AND name = $2', [
        t.orgId,
        name,
      ])
    ).rows.map((r: { id: string }) => r.id);

  it('no workflow exists → 503 + Retry-After, the row is gone', async () => {
    exists = false;
    const res = await api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'gone', backend: 'docker' },
    });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('temporal_unavailable');
    expect(res.headers.get('retry-after')).toBeTruthy();
    expect(await rows('gone')).toEqual([]);
  });

  it('unknown whether it exists → 503 naming the id, the row stays', async () => {
    exists = null;
    const res = await api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'maybe', backend: 'docker' },
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBeTruthy();
    const ids = await rows('maybe');
    expect(ids).toHaveLength(1);
    expect(res.body.error.message).toContain(ids[0]);
  });

  it('the workflow exists after all → 202 as usual', async () => {
    exists = true;
    const res = await api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'there', backend: 'docker' },
    });
    expect(res.status).toBe(202);
    expect(await rows('there')).toEqual([res.body.id]);
  });
});

describe('create and org delete with no worker polling (the default: refused)', () => {
  // The stack's own task queue, which no worker polls.
  const t = useStack({ worker: false, env: { ACCEPT_WITHOUT_WORKER: '0' } });

  it('POST /v1/workspaces → 503 + Retry-After within 5 s, nothing recorded', async () => {
    const started = Date.now();
    const res = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'no-worker', backend: 'docker' },
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('temporal_unavailable');
    expect(res.body.error.message).toMatch(/no worker/);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    const { rows } = await t.stack.service.db.pool.query(
      'SELECT id FROM workspaces WHERE org_id = $1 AND name = $2',
      [t.orgId, 'no-worker'],
    );
    expect(rows).toEqual([]);
  });

  it('DELETE /v1/orgs/:id → 503 + Retry-After, the org and its keys untouched', async () => {
    const res = await t.stack.api.call('DELETE', `/v1/orgs/${t.orgId}`, { token: t.stack.adminToken });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('temporal_unavailable');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    const { rows } = await t.stack.service.db.pool.query('SELECT deleted_at FROM orgs WHERE id = $1', [
      t.orgId,
    ]);
    expect(rows).toEqual([{ deleted_at: null }]);
    // Its key still works.
    expect((await t.stack.api.call('GET', '/v1/workspaces', { token: t.key })).status).toBe(200);
  });
});
