/**
 * The memories API and the budget API on the real stack (PostgreSQL, Temporal; no workspace needs
 * to boot, so no worker): memories are redacted before storage, paged newest first with an exact
 * cursor, filtered by scope, size-capped, and scoped to their workspace and org; the budget's limit
 * is set and cleared, and refused with the field named. Spend and 402 are in test/parity/budget.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { recordSpend } from '../../src/db/budget.js';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import { createOrg, useStack } from '../support/stack.js';

const SECRET = 'sekret-value-4711-memories';

describe('memories and budget API', () => {
  const t = useStack({ worker: false });

  const create = async (token: string, extra: object = {}) => {
    const res = await t.stack.api.call('POST', '/v1/workspaces', {
      token,
      body: { name: 'mem', backend: 'docker', ...extra },
    });
    expect(res.status).toBe(202);
    return res.body.id as string;
  };
  const memories = (id: string, query = '', token = t.key) =>
    t.stack.api.call('GET', `/v1/workspaces/${id}/memories${query}`, { token });
  const remember = (id: string, body: unknown, token = t.key) =>
    t.stack.api.call('POST', `/v1/workspaces/${id}/memories`, { token, body });

  it('seeds initial memories and stores new ones redacted, newest first', async () => {
    const id = await create(t.key, {
      secrets: { API_TOKEN: SECRET },
      initialMemories: [{ content: 'first' }, { content: `seeded ${SECRET}`, scope: 'team' }],
    });
    const seeded = await memories(id);
    expect(seeded.status).toBe(200);
    expect(seeded.body.items.map((m: { content: string }) => m.content)).toEqual([
      'seeded [REDACTED]',
      'first',
    ]);

    const added = await remember(id, { content: `the key is ${SECRET}!`, scope: 'team' });
    expect(added.status).toBe(201);
    expect(added.body).toEqual({
      id: expect.stringMatching(/^[a-f0-9]{16}$/),
      content: 'the key is [REDACTED]!',
      scope: 'team',
      createdAt: expect.any(String),
    });
    const dflt = await remember(id, { content: 'no scope given' });
    expect(dflt.body.scope).toBe('local');

    const listed = await memories(id);
    expect(listed.body.items.map((m: { id: string }) => m.id).slice(0, 2)).toEqual([
      dflt.body.id,
      added.body.id,
    ]);
    const team = await memories(id, '?scope=team');
    expect(team.body.items.map((m: { content: string }) => m.content)).toEqual([
      'the key is [REDACTED]!',
      'seeded [REDACTED]',
    ]);

    // Stored redacted: the table holds the value nowhere.
    const { rows } = await t.stack.service.db.pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM memories WHERE workspace_id = $1 AND content LIKE '%' || $2 || '%'`,
      [id, SECRET],
    );
    expect(Number(rows[0]!.n)).toBe(0);
  });

  it('pages with an opaque cursor: every memory exactly once, newest first', async () => {
    const id = await create(t.key);
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await remember(id, { content: `m${i}`, scope: i % 2 ? 'odd' : 'even' });
      ids.push(res.body.id);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor ? `?limit=3&cursor=${cursor}` : '?limit=3';
      const res = await memories(id, q);
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((m: { id: string }) => m.id));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());

    const odd = await memories(id, '?scope=odd&limit=2');
    expect(odd.body.items.map((m: { content: string }) => m.content)).toEqual(['m7', 'm5']);
    const rest = await memories(id, `?scope=odd&limit=2&cursor=${odd.body.nextCursor}`);
    expect(rest.body.items.map((m: { content: string }) => m.content)).toEqual(['m3', 'm1']);
    expect(rest.body.nextCursor).toBeNull();
  });

  it('refuses bad input with a 400 naming the field', async () => {
    const id = await create(t.key);
    const cases: Array<[unknown, string]> = [
      [{}, 'content'],
      [{ content: '' }, 'content'],
      [{ content: 'x'.repeat(10_001) }, 'content'],
      [{ content: 7 }, 'content'],
      [{ content: 'ok', scope: '' }, 'scope'],
      [{ content: 'ok', scope: 'x'.repeat(33) }, 'scope'],
      [{ content: 'ok', extra: 1 }, 'extra'],
    ];
    for (const [body, field] of cases) {
      const res = await remember(id, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('invalid_request');
      expect(res.body.error.field, JSON.stringify(body)).toBe(field);
    }
    for (const [q, field] of [
      ['?limit=0', 'limit'],
      ['?limit=501', 'limit'],
      ['?cursor=bogus', 'cursor'],
    ]) {
      const res = await memories(id, q);
      expect(res.status, q).toBe(400);
      expect(res.body.error.field, q).toBe(field);
    }
  });

  it("deletes only the workspace's own memory: another workspace's or org's answers 404", async () => {
    const a = await create(t.key);
    const b = await create(t.key);
    const other = await createOrg(t.stack, 'mem-other');
    const foreign = await create(other.apiKey);
    const mine = (await remember(a, { content: 'mine' })).body.id as string;
    const theirs = (await remember(foreign, { content: 'theirs' }, other.apiKey)).body.id as string;

    const del = (ws: string, mem: string, token = t.key) =>
      t.stack.api.call('DELETE', `/v1/workspaces/${ws}/memories/${mem}`, { token });
    expect((await del(b, mine)).status).toBe(404);
    expect((await del(a, theirs)).status).toBe(404);
    expect((await del(foreign, theirs)).status).toBe(404);
    expect((await del(a, 'not-an-id')).status).toBe(404);
    expect((await memories(foreign)).status).toBe(404);
    expect((await remember(foreign, { content: 'sneak' })).status).toBe(404);

    expect((await del(a, mine)).status).toBe(204);
    expect((await del(a, mine)).status).toBe(404);
    expect((await memories(a)).body.items).toEqual([]);
    expect((await memories(foreign, '', other.apiKey)).body.items.map((m: { id: string }) => m.id)).toEqual([
      theirs,
    ]);
  });

  it("a workspace token (the agent) reads and writes its own workspace's memories only", async () => {
    const a = await create(t.key, { secrets: { API_TOKEN: SECRET } });
    const b = await create(t.key);
    const token = await mintWorkspaceToken(t.stack.service.db.pool, a, 1);
    const added = await remember(a, { content: `agent saw ${SECRET}` }, token);
    expect(added.status).toBe(201);
    expect(added.body.content).toBe('agent saw [REDACTED]');
    expect((await memories(a, '', token)).body.items.map((m: { id: string }) => m.id)).toEqual([
      added.body.id,
    ]);
    expect((await memories(b, '', token)).status).toBe(404);
    expect((await remember(b, { content: 'x' }, token)).status).toBe(404);
    // Its budget: readable, not changeable by itself.
    expect((await t.stack.api.call('GET', `/v1/workspaces/${a}/budget`, { token })).status).toBe(200);
    const raise = await t.stack.api.call('PATCH', `/v1/workspaces/${a}/budget`, {
      token,
      body: { limitCents: null },
    });
    expect(raise.status).toBe(403);
  });

  it('budget: the limit is set, cleared and validated; spend is the sum of each generation’s highest report', async () => {
    const id = await create(t.key, { budgetLimitCents: 500 });
    const budget = () => t.stack.api.call('GET', `/v1/workspaces/${id}/budget`, { token: t.key });
    const patch = (body: unknown, token = t.key) =>
      t.stack.api.call('PATCH', `/v1/workspaces/${id}/budget`, { token, body });
    expect((await budget()).body).toEqual({ limitCents: 500, spentCents: 0 });

    const db = t.stack.service.db.pool;
    await recordSpend(db, id, 1, 120);
    await recordSpend(db, id, 1, 80); // a replayed, older report of generation 1
    await recordSpend(db, id, 2, 30);
    expect((await budget()).body).toEqual({ limitCents: 500, spentCents: 150 });

    expect((await patch({ limitCents: 100 })).body).toEqual({ limitCents: 100, spentCents: 150 });
    expect((await patch({ limitCents: null })).body).toEqual({ limitCents: null, spentCents: 150 });
    expect((await budget()).body.limitCents).toBeNull();

    for (const [body, field] of [
      [{}, 'limitCents'],
      [{ limitCents: -1 }, 'limitCents'],
      [{ limitCents: 1.5 }, 'limitCents'],
      [{ limitCents: '100' }, 'limitCents'],
      [{ limitCents: 3_000_000_000 }, 'limitCents'],
      [{ limitCents: 1, spentCents: 0 }, 'spentCents'],
    ] as const) {
      const res = await patch(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.field, JSON.stringify(body)).toBe(field);
    }
    const other = await createOrg(t.stack, 'budget-other');
    expect((await patch({ limitCents: 1 }, other.apiKey)).status).toBe(404);
    expect(
      (await t.stack.api.call('GET', `/v1/workspaces/${id}/budget`, { token: other.apiKey })).status,
    ).toBe(404);
  });
});

describe('the memories quota (MEMORIES_PER_WORKSPACE_MAX=3)', () => {
  const t = useStack({ worker: false, env: { MEMORIES_PER_WORKSPACE_MAX: '3' } });

  it('concurrent stores cannot overshoot it; past it 403 quota_exceeded; a delete makes room', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'mem-quota', backend: 'docker', initialMemories: [{ content: 'seeded' }] },
    });
    expect(created.status).toBe(202);
    const id = created.body.id as string;
    const store = (content: string) =>
      t.stack.api.call('POST', `/v1/workspaces/${id}/memories`, { token: t.key, body: { content } });
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => store(`m${i}`)));
    expect(answers.filter((a) => a.status === 201)).toHaveLength(2);
    const refused = answers.filter((a) => a.status !== 201);
    expect(refused.map((a) => a.status)).toEqual(Array(8).fill(403));
    expect(refused[0]!.body.error.code).toBe('quota_exceeded');
    const listed = await t.stack.api.call('GET', `/v1/workspaces/${id}/memories`, { token: t.key });
    expect(listed.body.items).toHaveLength(3);

    const gone = listed.body.items[0].id as string;
    expect(
      (await t.stack.api.call('DELETE', `/v1/workspaces/${id}/memories/${gone}`, { token: t.key })).status,
    ).toBe(204);
    expect((await store('after a delete')).status).toBe(201);
    expect((await store('one too many')).status).toBe(403);
  });
});

describe('the secrets quota (SECRETS_MAX_KEYS=3)', () => {
  const t = useStack({ worker: false, env: { SECRETS_MAX_KEYS: '3' } });
  const put = (path: string, key: string, value: string, token = t.key) =>
    t.stack.api.call('PUT', `${path}/secrets/${key}`, { token, body: { value } });
  const keysOf = async (path: string, token = t.key) =>
    ((await t.stack.api.call('GET', `${path}/secrets`, { token })).body.items as { key: string }[]).map(
      (s) => s.key,
    );

  it("a workspace's keys: concurrent new keys cannot overshoot; replacing is free; a delete makes room", async () => {
    const over = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'sec-over', backend: 'docker', secrets: { A: '1', B: '2', C: '3', D: '4' } },
    });
    expect(over.status).toBe(403);
    expect(over.body.error.code).toBe('quota_exceeded');
    const listed = await t.stack.api.call('GET', '/v1/workspaces', { token: t.key });
    expect(listed.body.items.map((w: { name: string }) => w.name)).not.toContain('sec-over');

    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'sec-quota', backend: 'docker', secrets: { SEEDED: 'seeded-value' } },
    });
    expect(created.status).toBe(202);
    const ws = `/v1/workspaces/${created.body.id as string}`;
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => put(ws, `K${i}`, `v${i}`)));
    expect(answers.filter((a) => a.status === 204)).toHaveLength(2);
    const refused = answers.filter((a) => a.status !== 204);
    expect(refused.map((a) => a.status)).toEqual(Array(8).fill(403));
    expect(refused[0]!.body.error.code).toBe('quota_exceeded');
    const keys = await keysOf(ws);
    expect(keys).toHaveLength(3);

    // At the quota: a key it holds can still be replaced; a delete makes room for one new key.
    expect((await put(ws, 'SEEDED', 'replaced')).status).toBe(204);
    expect((await put(ws, 'ANOTHER', 'x')).status).toBe(403);
    expect((await t.stack.api.call('DELETE', `${ws}/secrets/SEEDED`, { token: t.key })).status).toBe(204);
    expect((await put(ws, 'ANOTHER', 'x')).status).toBe(204);
    expect(await keysOf(ws)).toHaveLength(3);
  });

  it("an org's defaults have the same quota, counted apart from its workspaces'", async () => {
    const org = `/v1/orgs/${t.orgId}`;
    const admin = t.stack.adminToken;
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => put(org, `ORG_${i}`, `o${i}`, admin)),
    );
    expect(answers.filter((a) => a.status === 204)).toHaveLength(3);
    expect(answers.filter((a) => a.status === 403).map((a) => a.body.error.code)).toEqual(
      Array(3).fill('quota_exceeded'),
    );
    expect(await keysOf(org, admin)).toHaveLength(3);
    const replaced = await put(org, (await keysOf(org, admin))[0]!, 'new value', admin);
    expect(replaced.status).toBe(204);
  });
});
