/**
 * Per-org workspace quota (403 quota_exceeded, concurrency-safe) and per-key rate limits (429
 * rate_limited with Retry-After, keyed by who calls, not by address).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import { createOrg, insertWorkspaceRow, useStack, waitForStatus, type Stack } from '../support/stack.js';
import { waitFor } from '../setup/wait-for.js';
import { findSamples } from '../support/prometheus.js';
import { provingIdentity, stackCredentials } from '../support/agent-identity.js';

const QUOTA = 3;
const PER_MINUTE = 30;

/** Rows written directly (no workflow behind them): marked deleted at the end, not deleted via the API. */
const directRows: string[] = [];

async function workspaceRow(stack: Stack, orgId: string, status = 'provisioning'): Promise<string> {
  const id = await insertWorkspaceRow(stack.service.db.pool, orgId, (i) => `row-${i}`);
  directRows.push(id);
  if (status !== 'provisioning') {
    await stack.service.db.pool.query('UPDATE workspaces SET status = $2 WHERE id = $1', [id, status]);
  }
  return id;
}

const liveCount = async (stack: Stack, orgId: string) =>
  Number(
    (
      await stack.service.db.pool.query(
        `SELECT count(*) AS n FROM workspaces WHERE org_id = $1 AND status <> 'deleted'`,
        [orgId],
      )
    ).rows[0].n,
  );

describe('limits', () => {
  const t = useStack({
    env: { ORG_WORKSPACE_QUOTA: String(QUOTA), RATE_LIMIT_PER_MINUTE: String(PER_MINUTE) },
  });
  // Before the fixture's cleanup, which deletes through the API: these rows have no workflow.
  afterEach(async () => {
    await t.stack.service.db.pool.query(`UPDATE workspaces SET status = 'deleted' WHERE id = ANY($1)`, [
      directRows,
    ]);
  });

  it('creates beyond the org quota answer 403 quota_exceeded; deleted workspaces do not count; concurrent creates cannot overshoot', async () => {
    const org = await createOrg(t.stack, 'quota');
    // Quota − 1 live rows (plus deleted ones, which do not count): one slot is left.
    for (let i = 0; i < QUOTA - 1; i++) await workspaceRow(t.stack, org.id);
    for (let i = 0; i < 3; i++) await workspaceRow(t.stack, org.id, 'deleted');

    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        t.stack.api.call('POST', '/v1/workspaces', {
          token: org.apiKey,
          body: { name: `race-${i}`, backend: 'docker' },
        }),
      ),
    );
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).toEqual([202, 403, 403, 403, 403, 403, 403, 403]);
    const refused = answers.find((a) => a.status === 403)!;
    expect(refused.body.error.code).toBe('quota_exceeded');
    expect(await liveCount(t.stack, org.id)).toBe(QUOTA);

    // The admin is held to the org's quota too.
    const admin = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.stack.adminToken,
      body: { name: 'by-admin', backend: 'docker', orgId: org.id },
    });
    expect(admin.status).toBe(403);
    expect(admin.body.error.code).toBe('quota_exceeded');

    // The one that got through is a real workspace: delete it, and its slot is free again.
    const created = answers.find((a) => a.status === 202)!.body.id as string;
    expect(
      (await t.stack.api.call('DELETE', `/v1/workspaces/${created}`, { token: org.apiKey })).status,
    ).toBe(202);
    await waitForStatus(t.stack, org.apiKey, created, 'deleted');
    expect(await liveCount(t.stack, org.id)).toBe(QUOTA - 1);
  });

  it('a key over its rate answers 429 rate_limited with Retry-After; other keys are unaffected', async () => {
    const a = await createOrg(t.stack, 'rate-a');
    const b = await createOrg(t.stack, 'rate-b');
    const statuses: number[] = [];
    for (let i = 0; i < PER_MINUTE; i++) {
      statuses.push((await t.stack.api.call('GET', '/v1/workspaces', { token: a.apiKey })).status);
    }
    expect(statuses.every((s) => s === 200)).toBe(true);
    const over = await t.stack.api.call('GET', '/v1/workspaces', { token: a.apiKey });
    expect(over.status).toBe(429);
    expect(over.body.error.code).toBe('rate_limited');
    expect(typeof over.body.error.message).toBe('string');
    const retryAfter = Number(over.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // Same address, another key: its own budget.
    expect((await t.stack.api.call('GET', '/v1/workspaces', { token: b.apiKey })).status).toBe(200);
    // Unauthenticated operational routes are not limited.
    expect((await t.stack.api.call('GET', '/healthz')).status).toBe(200);
  });

  it("a key's terminal openings count in its rate with its HTTP calls: over it, 4429 and 429", async () => {
    const a = await createOrg(t.stack, 'rate-terminal');
    const closeCode = (id: string) => {
      const ws = new WebSocket(`${t.stack.url.replace(/^http/, 'ws')}/v1/workspaces/${id}/terminal`, {
        headers: { authorization: `Bearer ${a.apiKey}` },
      });
      ws.on('error', () => undefined);
      return new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    };
    // Half the budget through HTTP, the rest through terminal openings (of no workspace: 4404).
    const half = PER_MINUTE / 2;
    for (let i = 0; i < half; i++) {
      expect((await t.stack.api.call('GET', '/v1/workspaces', { token: a.apiKey })).status).toBe(200);
    }
    const codes: number[] = [];
    for (let i = 0; i < PER_MINUTE - half; i++) codes.push(await closeCode(`0000000000000${i}`.slice(-16)));
    expect(codes.every((c) => c === 4404)).toBe(true);
    expect(await closeCode('0000000000000000')).toBe(4429);
    expect((await t.stack.api.call('GET', '/v1/workspaces', { token: a.apiKey })).status).toBe(429);
  });

  it('agents are limited per workspace: every token of one workspace shares one budget', async () => {
    const org = await createOrg(t.stack, 'rate-ws');
    const id = await workspaceRow(t.stack, org.id);
    const first = await mintWorkspaceToken(t.stack.service.db.pool, id, 0);
    const second = await mintWorkspaceToken(t.stack.service.db.pool, id, 0);
    const other = await mintWorkspaceToken(t.stack.service.db.pool, await workspaceRow(t.stack, org.id), 0);
    const heartbeat = (token: string, workspaceId: string) =>
      t.stack.api.call('POST', '/v1/registry/heartbeat', {
        token,
        body: { workspaceId, generation: 1, configHash: 'h' },
      });
    for (let i = 0; i < PER_MINUTE; i++) {
      const res = await heartbeat(i % 2 ? first : second, id);
      expect(res.status).not.toBe(429);
    }
    const over = await heartbeat(first, id);
    expect(over.status).toBe(429);
    expect(over.body.error.code).toBe('rate_limited');
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await heartbeat(second, id)).status).toBe(429);
    // Another workspace of the same org is not held back.
    expect((await heartbeat(other, id)).status).not.toBe(429);
  });

  // Last: it leaves this address over its failure budget (the admin token still passes).
  it('callers that leave before their answer ends are not counted as failed authentications', async () => {
    // Two keys, so that neither goes over its own rate; a third to look with.
    const orgs = [await createOrg(t.stack, 'leave-a'), await createOrg(t.stack, 'leave-b')];
    const ids = [
      await workspaceRow(t.stack, orgs[0]!.id, 'online'),
      await workspaceRow(t.stack, orgs[1]!.id, 'online'),
    ];
    // Streams the API has seen closed (counted as their `close` is handled, with the limiter's).
    const closedStreams = async () =>
      findSamples(await (await fetch(`${t.stack.url}/metrics`)).text(), 'wo_http_requests_total', {
        route: '/v1/workspaces/:id/events',
      }).reduce((sum, sample) => sum + sample.value, 0);
    const before = await closedStreams();
    for (let i = 0; i <= PER_MINUTE; i++) {
      const leave = new AbortController();
      const res = await fetch(`${t.stack.url}/v1/workspaces/${ids[i % 2]}/events`, {
        headers: { authorization: `Bearer ${orgs[i % 2]!.apiKey}` },
        signal: leave.signal,
      });
      expect(res.status).toBe(200);
      // The stream never ends on its own: the caller closes it.
      leave.abort();
      await waitFor(async () => (await closedStreams()) === before + i + 1, {
        timeoutMs: 10_000,
        describe: `the API to see stream ${i + 1} closed`,
      });
    }
    // Counted as failures, the closes would hold the address at 429 for the rest of the minute.
    const looker = await createOrg(t.stack, 'leave-look');
    const served = await t.stack.api.call('GET', '/v1/workspaces', { token: looker.apiKey });
    expect(served.status).toBe(200);
    // The key's own limit shows in the headers.
    const names = (served.headers.get('ratelimit-policy') ?? '')
      .split(',')
      .map((p) => p.trim().split(';')[0]);
    expect(names).toEqual([`"${PER_MINUTE}-in-1min"`]);
  });

  it('failed authentications are limited per address, and only they: tokens that authenticate from it are served', async () => {
    const org = await createOrg(t.stack, 'rate-auth');
    const id = await workspaceRow(t.stack, org.id, 'online');
    const workspaceToken = await mintWorkspaceToken(t.stack.service.db.pool, id, 0);
    const forged = `wo_org_${'A'.repeat(32)}`; // the minted shape: looked up, then refused
    for (let i = 0; i < PER_MINUTE; i++) {
      expect((await t.stack.api.call('GET', '/v1/workspaces', { token: forged })).status).toBe(401);
    }
    const over = await t.stack.api.call('GET', '/v1/workspaces', { token: forged });
    expect(over.status).toBe(429);
    expect(over.body.error.code).toBe('rate_limited');
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    const missing = await fetch(`${t.stack.url}/v1/workspaces`);
    expect(missing.status).toBe(429);
    // Tenants may share an address (workspaces behind a NAT or the Docker bridge's gateway): one
    // failing on purpose locks none of the others out. An org key, another workspace's agent and the
    // admin from the same address are served.
    expect((await t.stack.api.call('GET', '/v1/workspaces', { token: org.apiKey })).status).toBe(200);
    const heartbeat = await t.stack.api.call('POST', '/v1/registry/heartbeat', {
      token: workspaceToken,
      body: { workspaceId: id, generation: 1, configHash: 'h' },
    });
    expect(heartbeat.status).not.toBe(429);
    expect(heartbeat.status).not.toBe(401);
    expect((await t.stack.api.call('GET', '/v1/orgs', { token: t.stack.adminToken })).status).toBe(200);
    // Naming another client in X-Forwarded-For changes nothing while no proxy is trusted.
    const claimed = await fetch(`${t.stack.url}/v1/workspaces`, {
      headers: { authorization: `Bearer ${forged}`, 'x-forwarded-for': '203.0.113.9' },
    });
    expect(claimed.status).toBe(429);
  });
});

describe('failed authentications behind a trusted proxy (TRUST_PROXY)', () => {
  const LIMIT = 5;
  const t = useStack({
    worker: false,
    env: { RATE_LIMIT_PER_MINUTE: String(LIMIT), TRUST_PROXY: 'loopback' },
  });

  it('are counted per client as X-Forwarded-For names it: one client over the limit holds back no other', async () => {
    const forged = `wo_org_${'B'.repeat(32)}`;
    const call = (client: string, token: string) =>
      fetch(`${t.stack.url}/v1/workspaces`, {
        headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': client },
      });
    for (let i = 0; i < LIMIT; i++) expect((await call('203.0.113.7', forged)).status).toBe(401);
    expect((await call('203.0.113.7', forged)).status).toBe(429);
    // Another client behind the same proxy (the same TCP peer) is counted on its own.
    expect((await call('203.0.113.8', forged)).status).toBe(401);
    expect((await call('203.0.113.8', t.key)).status).toBe(200);
  });
});

describe("an agent's own 401 (refusing the platform's credential)", () => {
  const LIMIT = 5;
  const t = useStack({ worker: false, env: { RATE_LIMIT_PER_MINUTE: String(LIMIT) } });
  let agent: http.Server | undefined;
  let id = '';
  afterAll(async () => {
    if (id)
      await t.stack.service.db.pool.query(`UPDATE workspaces SET status = 'deleted' WHERE id = $1`, [id]);
    await new Promise<void>((resolve) => (agent ? agent.close(() => resolve()) : resolve()));
  });

  it('answers the caller 502 agent_error, and counts as no failed authentication of its address', async () => {
    // The workspace's own agent (it proves who it is), refusing the credential afterwards.
    agent = provingIdentity(
      http.createServer((req, res) => {
        req.resume();
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"bad credential"}');
      }),
      stackCredentials(() => t.stack),
    );
    await new Promise<void>((resolve) => agent!.listen(0, '127.0.0.1', resolve));
    id = await insertWorkspaceRow(t.stack.service.db.pool, t.orgId, () => 'refusing-agent');
    await t.stack.service.db.pool.query(
      `UPDATE workspaces SET status = 'online', endpoint = $2 WHERE id = $1`,
      [id, `http://127.0.0.1:${(agent.address() as AddressInfo).port}`],
    );
    const send = {
      jsonrpc: '2.0',
      id: 1,
      method: 'message/send',
      params: { message: { role: 'user', parts: [] } },
    };
    // More refusals than the address may fail authentications, over two keys that each stay under
    // their own rate (the org's key and the admin token).
    const keys = [t.key, t.stack.adminToken];
    for (let i = 0; i <= LIMIT; i++) {
      const res = await t.stack.api.call('POST', `/v1/workspaces/${id}/a2a`, { token: keys[0]!, body: send });
      expect(res.status).toBe(502);
      expect(res.body.error.code).toBe('agent_error');
      expect(res.body.error.message).toMatch(/refused the platform's credential/);
      keys.push(keys.shift()!);
    }
    // Not counted: a failing token from the same address still gets its 401, not 429.
    expect(
      (await t.stack.api.call('GET', '/v1/workspaces', { token: `wo_org_${'C'.repeat(32)}` })).status,
    ).toBe(401);
  });
});
