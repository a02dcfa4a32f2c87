/** The contract's 400/401/404 answers, and proof that nothing was created by a refused request. */
import { describe, expect, it } from 'vitest';
import { containersOf, createOrg, useStack } from '../support/stack.js';

describe('bad input is refused and creates nothing', () => {
  const t = useStack({ worker: false });

  const countRows = async () =>
    Number(
      (
        await t.stack.service.db.pool.query('SELECT count(*) AS n FROM workspaces WHERE org_id = $1', [
          t.orgId,
        ])
      ).rows[0].n,
    );

  it.each([
    ['invalid JSON', { rawBody: '{"name": ' }, 'invalid_json', undefined],
    ['unknown backend', { body: { name: 'x', backend: 'gce' } }, 'invalid_request', 'backend'],
    ['missing name', { body: { backend: 'docker' } }, 'invalid_request', 'name'],
    ['empty name', { body: { name: '  ', backend: 'docker' } }, 'invalid_request', 'name'],
    ['oversized name', { body: { name: 'n'.repeat(101), backend: 'docker' } }, 'invalid_request', 'name'],
    [
      'unknown runtime',
      { body: { name: 'x', backend: 'docker', runtime: 'cobol' } },
      'invalid_request',
      'runtime',
    ],
    [
      'unknown template',
      { body: { name: 'x', backend: 'docker', template: 'nope' } },
      'invalid_request',
      'template',
    ],
    ['disabled backend', { body: { name: 'x', backend: 'ec2' } }, 'invalid_request', 'backend'],
    [
      'bad secret key',
      { body: { name: 'x', backend: 'docker', secrets: { 'lower-case': 'v' } } },
      'invalid_request',
      'secrets.lower-case',
    ],
    [
      'config not an object',
      { body: { name: 'x', backend: 'docker', config: [1, 2] } },
      'invalid_request',
      'config',
    ],
  ] as const)('POST /v1/workspaces with %s → 400', async (_name, req, code, field) => {
    const before = await countRows();
    const res = await t.stack.api.call('POST', '/v1/workspaces', { token: t.key, ...req });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe(code);
    expect(typeof res.body.error.message).toBe('string');
    if (field) {
      expect(res.body.error.field).toBe(field);
      expect(res.body.error.message).toContain(field);
    }
    expect(await countRows()).toBe(before);
  });

  it('missing or invalid tokens → 401, and nothing is created', async () => {
    const before = await countRows();
    const body = { name: 'x', backend: 'docker' };
    expect((await t.stack.api.call('POST', '/v1/workspaces', { body })).status).toBe(401);
    const bad = await t.stack.api.call('POST', '/v1/workspaces', { body, token: 'wo_org_notarealkey123456' });
    expect(bad.status).toBe(401);
    expect(bad.body.error.code).toBe('unauthorized');
    expect((await t.stack.api.call('GET', '/v1/workspaces', { token: 'garbage' })).status).toBe(401);
    expect((await t.stack.api.call('POST', '/v1/orgs', { body: { name: 'x' }, token: t.key })).status).toBe(
      403,
    );
    expect(await countRows()).toBe(before);
  });

  it('unknown ids and other orgs’ workspaces → 404 on every route', async () => {
    const other = await createOrg(t.stack, 'other');
    // A row of another org, created directly: isolation must hold without a workflow running.
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: other.apiKey,
      body: { name: 'theirs', backend: 'docker' },
    });
    expect(created.status).toBe(202);
    const theirs: string = created.body.id;
    for (const id of [theirs, '0123456789abcdef', 'not-an-id']) {
      for (const [method, suffix] of [
        ['GET', ''],
        ['PATCH', '/config'],
        ['POST', '/restart'],
        ['POST', '/stop'],
        ['POST', '/start'],
        ['DELETE', ''],
        ['GET', '/boot-log'],
        ['GET', '/events'],
      ] as const) {
        const res = await t.stack.api.call(method, `/v1/workspaces/${id}${suffix}`, {
          token: t.key,
          body: method === 'PATCH' ? { restart: false } : undefined,
        });
        expect(res.status, `${method} ${id}${suffix}`).toBe(404);
        expect(res.body.error.code).toBe('not_found');
      }
    }
    const list = await t.stack.api.call('GET', '/v1/workspaces', { token: t.key });
    expect(list.body.items.map((w: { id: string }) => w.id)).not.toContain(theirs);
    // The refused calls started nothing on Docker either.
    expect(await containersOf(t.stack.docker, theirs)).toEqual([]);
  });

  it('list validates its query', async () => {
    const res = await t.stack.api.call('GET', '/v1/workspaces?limit=0', { token: t.key });
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe('limit');
    expect(
      (await t.stack.api.call('GET', '/v1/workspaces?status=sleepy', { token: t.key })).body.error.field,
    ).toBe('status');
    expect(
      (await t.stack.api.call('GET', '/v1/workspaces?cursor=zzz', { token: t.key })).body.error.field,
    ).toBe('cursor');
  });
});
