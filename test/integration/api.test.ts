/** API behaviour that needs no running workspace: listing, secrets, ops endpoints. */
import { describe, expect, it } from 'vitest';
import { createOrg, startStack, useStack } from '../support/stack.js';

describe('api without workers', () => {
  const t = useStack({ worker: false });

  const create = async (name: string, token = t.key, extra: object = {}) => {
    const res = await t.stack.api.call('POST', '/v1/workspaces', {
      token,
      body: { name, backend: 'docker', ...extra },
    });
    expect(res.status).toBe(202);
    return res.body.id as string;
  };

  it('lists newest first with a stable cursor across pages, scoped to the org', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push(await create(`w${i}`));
    const other = await createOrg(t.stack, 'someone-else');
    const foreign = await create('foreign', other.apiKey);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor ? `?limit=3&cursor=${cursor}` : '?limit=3';
      const res = await t.stack.api.call('GET', `/v1/workspaces${q}`, { token: t.key });
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(3);
      seen.push(...res.body.items.map((w: { id: string }) => w.id));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());
    expect(seen).not.toContain(foreign);
    // A cursor made of another org's id tells nothing: the same empty page as an unknown id.
    for (const id of [foreign, '0000000000000000']) {
      const crafted = Buffer.from(`ws:${id}`).toString('base64url');
      const res = await t.stack.api.call('GET', `/v1/workspaces?cursor=${crafted}`, { token: t.key });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ items: [], nextCursor: null });
    }

    // Admin sees every org; filters apply.
    const all = await t.stack.api.call('GET', '/v1/workspaces?limit=200', { token: t.stack.adminToken });
    expect(all.body.items.map((w: { id: string }) => w.id)).toEqual(
      expect.arrayContaining([...ids, foreign]),
    );
    const filtered = await t.stack.api.call('GET', '/v1/workspaces?status=online', { token: t.key });
    expect(filtered.body.items).toEqual([]);

    const one = await t.stack.api.call('GET', `/v1/workspaces/${ids[0]}`, { token: t.key });
    expect(one.body).toMatchObject({
      id: ids[0],
      name: 'w0',
      backend: 'docker',
      status: 'provisioning',
      generation: 0,
    });
    expect(one.body.orgId).toMatch(/^[0-9a-f]{16}$/);
    expect(Date.parse(one.body.createdAt)).not.toBeNaN();
  });

  it('lists orgs newest first, paged; a deleted org leaves the list, its cursor still pages on', async () => {
    const admin = t.stack.adminToken;
    // The run's database holds other files' orgs too (older): this test's are the newest.
    const mine: string[] = [];
    for (let i = 0; i < 5; i++) mine.push((await createOrg(t.stack, `paged-${i}`)).id);
    const newestFirst = [...mine].reverse();

    const first = await t.stack.api.call('GET', '/v1/orgs?limit=2', { token: admin });
    expect(first.status).toBe(200);
    expect(first.body.items.map((o: { id: string }) => o.id)).toEqual(newestFirst.slice(0, 2));
    expect(first.body.items[0]).toEqual({ id: mine[4], name: 'paged-4', createdAt: expect.any(String) });
    expect(typeof first.body.nextCursor).toBe('string');

    // The org the cursor names is deleted before the next page: the page still starts after it.
    expect((await t.stack.api.call('DELETE', `/v1/orgs/${mine[3]}`, { token: admin })).status).toBe(202);
    const second = await t.stack.api.call('GET', `/v1/orgs?limit=2&cursor=${first.body.nextCursor}`, {
      token: admin,
    });
    expect(second.status).toBe(200);
    expect(second.body.items.map((o: { id: string }) => o.id)).toEqual(newestFirst.slice(2, 4));
    const listed = await t.stack.api.call('GET', '/v1/orgs?limit=200', { token: admin });
    const ids = listed.body.items.map((o: { id: string }) => o.id);
    expect(ids.slice(0, 4)).toEqual([mine[4], mine[2], mine[1], mine[0]]);
    expect(ids).not.toContain(mine[3]);
    // No limit: every org in one answer (api.md's `{items}`), however many the run made.
    const all = await t.stack.api.call('GET', '/v1/orgs', { token: admin });
    expect(all.body.nextCursor).toBeNull();
    expect(all.body.items.length).toBeGreaterThanOrEqual(ids.length);
    expect(all.body.items.slice(0, ids.length)).toEqual(listed.body.items);

    // Bad paging names its field; a workspace cursor is not an org cursor; org keys are refused.
    const workspaceCursor = Buffer.from(`ws:${mine[0]}`).toString('base64url');
    for (const [query, field] of [
      ['limit=0', 'limit'],
      ['limit=201', 'limit'],
      ['limit=2x', 'limit'],
      ['cursor=not-a-cursor', 'cursor'],
      [`cursor=${workspaceCursor}`, 'cursor'],
    ] as const) {
      const res = await t.stack.api.call('GET', `/v1/orgs?${query}`, { token: admin });
      expect(res.status, query).toBe(400);
      expect(res.body.error.field, query).toBe(field);
    }
    expect((await t.stack.api.call('GET', '/v1/orgs', { token: t.key })).status).toBe(403);
  });

  it('admin must name an org; org keys cannot create in another org', async () => {
    const res = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.stack.adminToken,
      body: { name: 'x', backend: 'docker' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe('orgId');
    const other = await createOrg(t.stack, 'third');
    const cross = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'x', backend: 'docker', orgId: other.id },
    });
    expect(cross.status).toBe(400);
    const asAdmin = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.stack.adminToken,
      body: { name: 'x', backend: 'docker', orgId: other.id },
    });
    expect(asAdmin.status).toBe(202);
    expect(
      (await t.stack.api.call('GET', `/v1/workspaces/${asAdmin.body.id}`, { token: other.apiKey })).status,
    ).toBe(200);
  });

  it('secrets are write-only, encrypted at rest, and scoped', async () => {
    const id = await create('secretive', t.key, { secrets: { API_KEY: 'sk-very-secret-1' } });
    const put = await t.stack.api.call('PUT', `/v1/workspaces/${id}/secrets/OTHER_KEY`, {
      token: t.key,
      body: { value: 'sk-very-secret-2' },
    });
    expect(put.status).toBe(204);
    const list = await t.stack.api.call('GET', `/v1/workspaces/${id}/secrets`, { token: t.key });
    expect(list.body.items.map((s: { key: string }) => s.key)).toEqual(['API_KEY', 'OTHER_KEY']);
    expect(JSON.stringify(list.body)).not.toContain('sk-very-secret');
    const stored = await t.stack.service.db.pool.query(
      'SELECT value_enc FROM secrets WHERE workspace_id = $1',
      [id],
    );
    expect(stored.rows).toHaveLength(2);
    for (const row of stored.rows) expect(row.value_enc).not.toContain('sk-very-secret');

    const badKey = await t.stack.api.call('PUT', `/v1/workspaces/${id}/secrets/lower`, {
      token: t.key,
      body: { value: 'x' },
    });
    expect(badKey.status).toBe(400);
    expect(badKey.body.error.field).toBe('key');
    expect(
      (await t.stack.api.call('PUT', `/v1/workspaces/${id}/secrets/X`, { token: t.key, body: {} })).status,
    ).toBe(400);
    const other = await createOrg(t.stack, 'snoop');
    expect(
      (await t.stack.api.call('GET', `/v1/workspaces/${id}/secrets`, { token: other.apiKey })).status,
    ).toBe(404);
    expect(
      (await t.stack.api.call('DELETE', `/v1/workspaces/${id}/secrets/OTHER_KEY`, { token: t.key })).status,
    ).toBe(204);
    expect(
      (await t.stack.api.call('DELETE', `/v1/workspaces/${id}/secrets/OTHER_KEY`, { token: t.key })).status,
    ).toBe(404);
  });

  it('serves health, readiness, metrics and the OpenAPI document without a token', async () => {
    expect((await t.stack.api.call('GET', '/healthz')).body).toEqual({ ok: true });
    // No worker polls this stack's task queue: readiness says so (entity-faults.test.ts covers it).
    const ready = await t.stack.api.call('GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.checks).toMatchObject({ database: 'ok', temporal: 'ok', 'backend:docker': 'ok' });
    expect(ready.body.checks.worker).not.toBe('ok');
    const metrics = await fetch(`${t.stack.url}/metrics`);
    expect(await metrics.text()).toMatch(/wo_http_requests_total/);
    const openapi = await t.stack.api.call('GET', '/openapi.json');
    expect(openapi.body.openapi).toBe('3.1.0');
    expect(
      openapi.body.paths['/v1/workspaces'].post.requestBody.content['application/json'].schema.properties,
    ).toHaveProperty('backend');
    const docs = await fetch(`${t.stack.url}/docs`);
    expect(await docs.text()).toContain("url: '/openapi.json'");
    expect((await t.stack.api.call('GET', '/v1/nothing-here', { token: t.key })).status).toBe(404);
  });
});

describe('readiness names what is down', () => {
  it('answers 503 naming the unreachable backend', async () => {
    const stack = await startStack({ worker: false, env: { DOCKER_SOCKET: '/nonexistent/docker.sock' } });
    try {
      const ready = await stack.api.call('GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.checks.database).toBe('ok');
      expect(ready.body.checks['backend:docker']).not.toBe('ok');
    } finally {
      await stack.close();
    }
  });
});
