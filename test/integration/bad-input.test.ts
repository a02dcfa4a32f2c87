/** The contract's 400/401/404 answers, and proof that nothing was created by a refused request. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertA2AActivity } from '../../src/db/activity.js';
import { BOOT_EVENTS_PER_GENERATION_MAX } from '../../src/db/events.js';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import { freePort } from '../setup/free-port.js';
import { spawnApi, type ApiProcess } from '../support/api-process.js';
import { WS_UPGRADE_HEADERS, rawExchange, requestHead, wsFrame } from '../support/raw-http.js';
import {
  ApiClient,
  containersOf,
  createOrg,
  insertWorkspaceRow,
  testEnv,
  useStack,
} from '../support/stack.js';

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
    ['invalid JSON', { rawBody: '{"name": ' }, 'invalid_json', 'body'],
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

describe('values PostgreSQL would refuse are refused at the edge with 400 and the field', () => {
  const t = useStack({ worker: false });

  /** A workspace row written directly: routes that read one need no workflow behind it. */
  async function workspaceRow(): Promise<string> {
    const id = await insertWorkspaceRow(t.stack.service.db.pool, t.orgId);
    return id;
  }

  const countAll = async () =>
    Number((await t.stack.service.db.pool.query('SELECT count(*) AS n FROM workspaces')).rows[0].n);

  it.each([
    ['a NUL in an org name', 'admin', '/v1/orgs', { name: 'a\u0000b' }, 'name'],
    ['a NUL in a workspace name', 'org', '/v1/workspaces', { name: 'a\u0000b', backend: 'docker' }, 'name'],
    [
      'budgetLimitCents beyond int4',
      'org',
      '/v1/workspaces',
      { name: 'x', backend: 'docker', budgetLimitCents: 3000000000 },
      'budgetLimitCents',
    ],
    [
      'an admin create naming an unknown orgId',
      'admin',
      '/v1/workspaces',
      { name: 'x', backend: 'docker', orgId: '0123456789abcdef' },
      'orgId',
    ],
    [
      'an admin create with an orgId of the wrong shape',
      'admin',
      '/v1/workspaces',
      { name: 'x', backend: 'docker', orgId: "x'; DROP TABLE orgs" },
      'orgId',
    ],
    [
      'a NUL in a config value',
      'org',
      '/v1/workspaces',
      { name: 'x', backend: 'docker', config: { x: 'a\u0000b' } },
      'config',
    ],
    [
      'an unpaired surrogate in a config key',
      'org',
      '/v1/workspaces',
      { name: 'x', backend: 'docker', config: { '\ud800': 1 } },
      'config',
    ],
    [
      'a NUL in a secret value',
      'org',
      '/v1/workspaces',
      { name: 'x', backend: 'docker', secrets: { K: 'a\u0000' } },
      'secrets.K',
    ],
    [
      'a NUL in a memory',
      'org',
      '/v1/workspaces',
      { name: 'x', backend: 'docker', initialMemories: [{ content: '\u0000' }] },
      'initialMemories.0.content',
    ],
    // A typo is refused by name rather than dropped unseen.
    [
      'an unknown field',
      'org',
      '/v1/workspaces',
      { name: 'x', backend: 'docker', budgetLimit: 5 },
      'budgetLimit',
    ],
    [
      'an unknown field in a memory',
      'org',
      '/v1/workspaces',
      { name: 'x', backend: 'docker', initialMemories: [{ content: 'm', scop: 'team' }] },
      'initialMemories.0.scop',
    ],
    ['an unknown org field', 'admin', '/v1/orgs', { name: 'x', plan: 'pro' }, 'plan'],
  ] as const)('POST with %s → 400', async (_name, who, path, body, field) => {
    const before = await countAll();
    const token = who === 'admin' ? t.stack.adminToken : t.key;
    const res = await t.stack.api.call('POST', path, { token, body });
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error.code).toBe('invalid_request');
    expect(res.body.error.field).toBe(field);
    expect(await countAll()).toBe(before);
  });

  it('PATCH config with a NUL (the wedge reproduction) → 400 config, before any Update is sent', async () => {
    const id = await workspaceRow();
    for (const config of [{ x: 'a\u0000b' }, { ['k\u0000']: 1 }, { x: ['\ud800'] }]) {
      const res = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
        token: t.key,
        body: { config },
      });
      expect(res.status).toBe(400);
      expect(res.body.error.field).toBe('config');
    }
    const runtime = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
      token: t.key,
      body: { runtime: 'x\u0000' },
    });
    expect(runtime.status).toBe(400);
    expect(runtime.body.error.field).toBe('runtime');
  });

  it('a config nested 10,000 deep → 400 config on create and PATCH, never 500', async () => {
    // Built as text: the test's own JSON.stringify would overflow on it, as the API's did.
    const deep = '['.repeat(10_000) + ']'.repeat(10_000);
    const before = await countAll();
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      rawBody: `{"name":"x","backend":"docker","config":{"a":${deep}}}`,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(400);
    expect(created.body.error).toMatchObject({ field: 'config', message: expect.stringMatching(/nested/) });
    expect(await countAll()).toBe(before);
    const id = await workspaceRow();
    const patched = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
      token: t.key,
      rawBody: `{"config":{"a":${deep}}}`,
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(400);
    expect(patched.body.error.field).toBe('config');
  });

  it('a workspace being deleted takes no more secrets, memories or budget changes (409), and keeps none', async () => {
    const id = await workspaceRow();
    await t.stack.service.db.pool.query(`UPDATE workspaces SET status = 'deleting' WHERE id = $1`, [id]);
    for (const [method, path, body] of [
      ['PUT', `/v1/workspaces/${id}/secrets/LATE`, { value: 'v' }],
      ['DELETE', `/v1/workspaces/${id}/secrets/LATE`, undefined],
      ['POST', `/v1/workspaces/${id}/memories`, { content: 'late' }],
      ['PATCH', `/v1/workspaces/${id}/budget`, { limitCents: 5 }],
    ] as const) {
      const res = await t.stack.api.call(method, path, { token: t.key, body });
      expect(res.status, `${method} ${path}`).toBe(409);
      expect(res.body.error.message).toBe('workspace is being deleted');
    }
    expect((await t.stack.api.call('GET', `/v1/workspaces/${id}/secrets`, { token: t.key })).body).toEqual({
      items: [],
    });
    const kept = await t.stack.service.db.pool.query(
      `SELECT (SELECT count(*) FROM secrets WHERE workspace_id = $1)::int AS secrets,
              (SELECT count(*) FROM memories WHERE workspace_id = $1)::int AS memories`,
      [id],
    );
    expect(kept.rows[0]).toEqual({ secrets: 0, memories: 0 });
  });

  it('PATCH config and PUT secret refuse an unknown field by name, and change nothing', async () => {
    const id = await workspaceRow();
    const config = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
      token: t.key,
      body: { config: { a: 1 }, restart: true, restrat: true },
    });
    expect(config.status).toBe(400);
    expect(config.body.error).toMatchObject({ code: 'invalid_request', field: 'restrat' });
    const secret = await t.stack.api.call('PUT', `/v1/workspaces/${id}/secrets/K`, {
      token: t.key,
      body: { value: 'v', vaule: 'w' },
    });
    expect(secret.status).toBe(400);
    expect(secret.body.error.field).toBe('vaule');
    const { rows } = await t.stack.service.db.pool.query('SELECT key FROM secrets WHERE workspace_id = $1', [
      id,
    ]);
    expect(rows).toEqual([]);
  });

  it('before_ts must name a date that exists: 2024-02-30 → 400 before_ts', async () => {
    const id = await workspaceRow();
    for (const ts of [
      '2024-02-30T00:00:00Z',
      '2023-02-29T00:00:00Z',
      '2024-01-01T24:00:00Z',
      '0000-01-01T00:00:00Z',
    ]) {
      const res = await t.stack.api.call('GET', `/v1/workspaces/${id}/activity?before_ts=${ts}`, {
        token: t.key,
      });
      expect(res.status, ts).toBe(400);
      expect(res.body.error.field).toBe('before_ts');
    }
    const ok = await t.stack.api.call(
      'GET',
      `/v1/workspaces/${id}/activity?before_ts=2024-02-29T23:59:59.123456Z`,
      {
        token: t.key,
      },
    );
    expect(ok.status).toBe(200);
    expect(ok.body.items).toEqual([]);
  });

  it('an A2A turn carrying NUL or an unpaired surrogate is still logged (replaced, not lost)', async () => {
    const id = await workspaceRow();
    await insertA2AActivity(t.stack.service.db.pool, [
      {
        workspaceId: id,
        peerId: null,
        direction: 'inbound',
        method: 'message/send\u0000',
        status: 200,
        durationMs: 1,
        summary: 'hi\u0000there \ud800',
        requestText: 'hi\u0000there',
        responseText: '\udc00ok',
      },
    ]);
    const res = await t.stack.api.call('GET', `/v1/workspaces/${id}/activity`, { token: t.key });
    expect(res.status).toBe(200);
    expect(res.body.items).toHaveLength(1);
    expect(res.body.items[0].summary).toBe('hi\ufffdthere \ufffd');
    expect(res.body.items[0].method).toBe('message/send\ufffd');
  });

  it('query integers and ids are checked: limit, peer_id, type', async () => {
    const id = await workspaceRow();
    for (const [query, field] of [
      ['limit=99999999999999999999', 'limit'],
      ['limit=1e3', 'limit'],
      ['peer_id=nope', 'peer_id'],
      ['type=%00', 'type'],
      // A type no row can have: a mistake, not an empty log.
      ['type=a2aa', 'type'],
      ['type=A2A', 'type'],
    ] as const) {
      const res = await t.stack.api.call('GET', `/v1/workspaces/${id}/activity?${query}`, { token: t.key });
      expect(res.status, query).toBe(400);
      expect(res.body.error.field).toBe(field);
    }
    for (const type of ['a2a', 'schedule', 'lifecycle']) {
      const res = await t.stack.api.call('GET', `/v1/workspaces/${id}/activity?type=${type}`, {
        token: t.key,
      });
      expect(res.status, type).toBe(200);
    }
  });

  it('a NUL in a secret value → 400 value; a path id of the wrong shape → 404', async () => {
    const id = await workspaceRow();
    const res = await t.stack.api.call('PUT', `/v1/workspaces/${id}/secrets/KEY`, {
      token: t.key,
      body: { value: 'a\u0000b' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe('value');
    // Upper-cased, with a letter in it for sure: an id of 16 digits upper-cases to itself (1 in
    // ~1,800 ids; a cold run met one).
    const upper = `${id.slice(0, -1)}f`.toUpperCase();
    const bad = await t.stack.api.call('GET', `/v1/workspaces/${upper}`, { token: t.key });
    expect(bad.status).toBe(404);
    // Both the key and the body wrong: the path is checked first, and the 400 names it.
    const both = await t.stack.api.call('PUT', `/v1/workspaces/${id}/secrets/lower-case`, {
      token: t.key,
      body: { value: 42 },
    });
    expect(both.status).toBe(400);
    expect(both.body.error.field).toBe('key');
  });

  it('an A2A body that is JSON but not one request object → 400 naming the body', async () => {
    const id = await workspaceRow();
    for (const rawBody of ['[{"jsonrpc":"2.0","method":"m","id":1}]', '"text"', '42']) {
      const res = await t.stack.api.call('POST', `/v1/workspaces/${id}/a2a`, { token: t.key, rawBody });
      expect(res.status, rawBody).toBe(400);
      expect(res.body.error.field, rawBody).toBe('body');
    }
  });

  it('a body not declared JSON → 400 body saying so; an action with no body is not asked for one', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', null]) {
      const res = await fetch(`${t.stack.url}/v1/orgs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.stack.adminToken}`, ...(type ? { 'content-type': type } : {}) },
        body: Buffer.from('{"name":"x"}'),
      });
      expect(res.status, String(type)).toBe(400);
      expect(((await res.json()) as { error: unknown }).error).toEqual({
        code: 'invalid_request',
        field: 'body',
        message: 'body: must be JSON (Content-Type: application/json)',
      });
    }
    const id = await workspaceRow();
    // An action reads no body: none at all (curl -X POST), an empty one, or a form's (curl -d '{}')
    // get the action's own answer, not a refusal of the body.
    for (const body of [undefined, '', '{}']) {
      const res = await fetch(`${t.stack.url}/v1/workspaces/${id}/stop`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${t.key}`,
          ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        },
        body,
      });
      expect(res.status, String(body)).not.toBe(400);
    }
  });

  it('a body that is JSON but not an object → 400 saying so; one that is not JSON → 400 saying that', async () => {
    for (const [rawBody, message] of [
      ['null', 'request body must be a JSON object'],
      ['"text"', 'request body must be a JSON object'],
      ['42', 'request body must be a JSON object'],
      ['{"name":', 'request body is not valid JSON'],
    ] as const) {
      const res = await t.stack.api.call('POST', '/v1/orgs', { token: t.stack.adminToken, rawBody });
      expect(res.status, rawBody).toBe(400);
      expect(res.body.error, rawBody).toEqual({ code: 'invalid_json', message, field: 'body' });
    }
  });

  it('the A2A proxy refuses a body in a content coding (415) rather than misread it', async () => {
    const id = await workspaceRow();
    for (const coding of ['gzip', 'deflate', 'br']) {
      const res = await fetch(`${t.stack.url}/v1/workspaces/${id}/a2a`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${t.key}`,
          'content-type': 'application/json',
          'content-encoding': coding,
        },
        body: '{"jsonrpc":"2.0","id":1,"method":"message/send","params":{}}',
      });
      expect(res.status, coding).toBe(415);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unsupported_media_type');
    }
  });

  it('the A2A proxy refuses a body not declared JSON (400 body), as the management routes do', async () => {
    const id = await workspaceRow();
    const request = '{"jsonrpc":"2.0","id":1,"method":"message/send","params":{}}';
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', null]) {
      const res = await fetch(`${t.stack.url}/v1/workspaces/${id}/a2a`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.key}`, ...(type ? { 'content-type': type } : {}) },
        // A Buffer: fetch would declare a string text/plain itself.
        body: Buffer.from(request),
      });
      expect(res.status, String(type)).toBe(400);
      expect(((await res.json()) as { error: unknown }).error, String(type)).toEqual({
        code: 'invalid_request',
        field: 'body',
        message: 'body: must be JSON (Content-Type: application/json)',
      });
    }
  });

  it('a body that does not inflate as its Content-Encoding says → 400 naming the body', async () => {
    for (const body of ['{"name":"x"}', Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x01])]) {
      const res = await fetch(`${t.stack.url}/v1/orgs`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${t.stack.adminToken}`,
          'content-type': 'application/json',
          'content-encoding': 'gzip',
        },
        body,
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { field?: string } }).error.field).toBe('body');
    }
  });

  it('a body in an encoding the parser cannot read → 415 in the contract shape', async () => {
    const res = await fetch(`${t.stack.url}/v1/orgs`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${t.stack.adminToken}`,
        'content-type': 'application/json; charset=klingon',
      },
      body: '{"name":"x"}',
    });
    expect(res.status).toBe(415);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unsupported_media_type');
  });

  it('a malformed %-escape in a route path → 400, never 500', async () => {
    for (const path of [
      '/v1/workspaces/%zz',
      '/v1/workspaces/%E0%A4%A/secrets',
      '/v1/workspaces/%/activity',
    ]) {
      const res = await t.stack.api.call('GET', path, { token: t.key });
      expect(res.status, path).toBe(400);
      expect(res.body.error.code).toBe('invalid_request');
    }
  });

  it('registry bodies: ids of the wrong shape and integers beyond int4 → 400 with the field', async () => {
    const id = await workspaceRow();
    const token = await mintWorkspaceToken(t.stack.service.db.pool, id, 1);
    for (const [body, field] of [
      [{ workspaceId: 'x', generation: 1, configHash: 'h' }, 'workspaceId'],
      [{ workspaceId: id, generation: 3000000000, configHash: 'h' }, 'generation'],
      [{ workspaceId: id, generation: 1, configHash: 'h\u0000' }, 'configHash'],
      [{ workspaceId: id, generation: 1, configHash: 'h', spentCents: 2 ** 53 }, 'spentCents'],
    ] as const) {
      const res = await t.stack.api.call('POST', '/v1/registry/heartbeat', { token, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.field).toBe(field);
    }
    const boot = await t.stack.api.call('POST', '/v1/registry/boot-events', {
      token,
      body: { workspaceId: id, generation: 1, phase: 'boot', ts: '2024-02-30T00:00:00Z' },
    });
    expect(boot.status).toBe(400);
    expect(boot.body.error.field).toBe('ts');
    // An agent posting boot events for ever: past the generation's cap, 409 and nothing stored.
    await t.stack.service.db.pool.query('UPDATE workspaces SET generation = 1 WHERE id = $1', [id]);
    const post = (phase: string) =>
      t.stack.api.call('POST', '/v1/registry/boot-events', {
        token,
        body: { workspaceId: id, generation: 1, phase, message: 'x'.repeat(4000) },
      });
    for (let i = 0; i < BOOT_EVENTS_PER_GENERATION_MAX; i++)
      expect((await post(`junk-${i}`)).status).toBe(200);
    const over = await post('one-more');
    expect(over.status).toBe(409);
    expect(over.body.error.code).toBe('too_many_boot_events');
    const stored = await t.stack.service.db.pool.query(
      'SELECT count(*)::int AS n FROM boot_events WHERE workspace_id = $1 AND generation = 1',
      [id],
    );
    expect(stored.rows[0].n).toBe(BOOT_EVENTS_PER_GENERATION_MAX);
    // A manager's key is refused for its kind (403) before its body is looked at.
    for (const key of [t.key, t.stack.adminToken]) {
      for (const path of ['register', 'boot-events', 'heartbeat']) {
        const res = await t.stack.api.call('POST', `/v1/registry/${path}`, { token: key, body: {} });
        expect(res.status, path).toBe(403);
        expect(res.body.error.code, path).toBe('forbidden');
      }
    }
    // A token that is not of a minted shape is refused before any lookup.
    const res = await t.stack.api.call('POST', '/v1/registry/heartbeat', {
      token: 'wo_ws_short',
      body: { workspaceId: id, generation: 1, configHash: 'h' },
    });
    expect(res.status).toBe(401);
  });
});

describe('one request never takes the process down (API as its own process)', () => {
  let api: ApiProcess;
  let client: ApiClient;

  beforeAll(async () => {
    api = await spawnApi(testEnv({ PORT: String(await freePort()) }));
    client = new ApiClient(api.url);
  });
  afterAll(async () => {
    await api?.stop();
  });

  const alive = async () => {
    expect(api.exitCode(), api.output().slice(-2000)).toBeNull();
    const res = await client.call('GET', '/healthz');
    expect(res.status).toBe(200);
  };

  it.each([
    ['a malformed request line', 400, 'invalid_request', 'GARBAGE\r\n\r\n'],
    [
      'a malformed header',
      400,
      'invalid_request',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n',
    ],
    [
      'both Content-Length and chunked',
      400,
      'invalid_request',
      'POST /v1/orgs HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    [
      'headers over the size limit',
      431,
      'headers_too_large',
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(80_000)}\r\n\r\n`,
    ],
  ] as const)(
    'what the HTTP parser refuses (%s) → %i in the contract shape, then closed; the process keeps serving',
    async (_name, status, code, request) => {
      const res = await rawExchange(api.url, [request]);
      expect(res.status, res.text.slice(0, 200)).toBe(status);
      expect(res.text).toMatch(/\r\nContent-Type: application\/json\r\n/i);
      expect(res.text).toMatch(/\r\nConnection: close\r\n/i);
      const body = res.text.slice(res.text.indexOf('\r\n\r\n') + 4);
      expect(JSON.parse(body)).toEqual({ error: { code, message: expect.any(String) } });
      await alive();
    },
  );

  it('the reproduction: Upgrade: websocket on `//` → 400, the process keeps serving', async () => {
    const res = await rawExchange(api.url, [requestHead('GET', '//', WS_UPGRADE_HEADERS)]);
    expect(res.status).toBe(400);
    await alive();
  });

  it.each([
    '/v1/workspaces/%E0%A4%A/terminal',
    '/v1/workspaces/%zz/terminal',
    '/v1/workspaces/%/terminal',
    'http://[::1/v1/workspaces/x/terminal',
    '*',
  ])('an upgrade to %s → an HTTP error, the process keeps serving', async (target) => {
    const res = await rawExchange(api.url, [requestHead('GET', target, WS_UPGRADE_HEADERS)]);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    await alive();
  });

  it.each([
    ['a reserved opcode', wsFrame({ opcode: 3, payload: Buffer.from('x') })],
    ['an unmasked client frame', wsFrame({ opcode: 2, payload: Buffer.from('x'), masked: false })],
    ['RSV bits without an extension', wsFrame({ opcode: 1, payload: Buffer.from('{}'), rsv: 4 })],
    ['a fragmented control frame', wsFrame({ opcode: 9, payload: Buffer.from('x'), fin: false })],
  ])(
    'a WebSocket protocol error (%s) on an accepted socket → that socket closes, the process keeps serving',
    async (_name, frame) => {
      const res = await rawExchange(api.url, [
        requestHead('GET', '/v1/workspaces/0123456789abcdef/terminal', WS_UPGRADE_HEADERS),
        // Right behind the handshake, before the server closes the socket for the missing token.
        frame,
      ]);
      expect(res.status).toBe(101);
      await alive();
    },
  );
});
