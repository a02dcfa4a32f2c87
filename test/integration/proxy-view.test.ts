/**
 * The A2A proxy's cached workspace views on the real PostgreSQL: a row changed by SQL on another
 * connection (as the worker, a sweep or a test does) is seen by the very next proxied call, with no
 * wait: status → stopped answers 409, a new endpoint is the one called, a caller's generation bump
 * makes its token stale (403), spend at the limit answers 402. Each change is made many times in a
 * row, each immediately followed by a call, so a window between commit and notification would show.
 * The agent is a plain HTTP server on loopback standing in for a workspace's agent.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import { AGENT_CREDENTIAL_HEADER } from '../../src/security/agent-credential.js';
import { insertWorkspaceRow, useStack, type Stack } from '../support/stack.js';
import { provingIdentity, stackCredentials } from '../support/agent-identity.js';

const ROUNDS = 15;

/** An agent answering every JSON-RPC call with its own name; it records the credentials presented. */
async function fakeAgent(
  name: string,
  stack: () => Stack,
): Promise<{ url: string; credentials: string[]; close(): Promise<void> }> {
  const credentials: string[] = [];
  const server = http.createServer((req, res) => {
    credentials.push(String(req.headers[AGENT_CREDENTIAL_HEADER]));
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          result: { kind: 'message', role: 'agent', messageId: 'm', parts: [{ kind: 'text', text: name }] },
        }),
      );
    });
  });
  // The genuine agent of whichever workspace the platform asks for (it proves the identity check).
  provingIdentity(server, stackCredentials(stack));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    credentials,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const send = {
  jsonrpc: '2.0',
  id: 1,
  method: 'message/send',
  params: {
    message: { kind: 'message', role: 'user', messageId: 'q', parts: [{ kind: 'text', text: 'hi' }] },
  },
};

describe('proxy views', () => {
  const t = useStack({ worker: false });
  const rows: string[] = [];
  let other: pg.Client;
  let agentA: Awaited<ReturnType<typeof fakeAgent>>;
  let agentB: Awaited<ReturnType<typeof fakeAgent>>;

  beforeAll(async () => {
    other = new pg.Client({ connectionString: t.stack.config.DATABASE_URL });
    await other.connect();
    agentA = await fakeAgent('agent-a', () => t.stack);
    agentB = await fakeAgent('agent-b', () => t.stack);
  });
  afterAll(async () => {
    // No workflow behind these rows: marked deleted rather than deleted through the API.
    await other?.query(`UPDATE workspaces SET status = 'deleted' WHERE id = ANY($1)`, [rows]);
    await other?.end();
    await agentA?.close();
    await agentB?.close();
  });

  /** A row of the fixture's org, online at agent A. */
  async function onlineRow(): Promise<string> {
    const id = await insertWorkspaceRow(t.stack.service.db.pool, t.orgId, (i) => `view-${i}`);
    rows.push(id);
    await other.query(`UPDATE workspaces SET status = 'online', endpoint = $2 WHERE id = $1`, [
      id,
      agentA.url,
    ]);
    return id;
  }

  const call = (id: string, token = t.key) =>
    t.stack.api.call('POST', `/v1/workspaces/${id}/a2a`, { token, body: send });
  const replyOf = (res: { body: { result?: { parts?: Array<{ text?: string }> } } }) =>
    res.body.result?.parts?.[0]?.text;

  it('is kept while listening: repeated calls are served from it', async () => {
    const id = await onlineRow();
    expect((await call(id)).status).toBe(200);
    expect((await call(id)).status).toBe(200);
    expect(t.stack.service.proxyViews).not.toBeNull();
    expect(t.stack.service.proxyViews!.size).toBeGreaterThan(0);
  });

  it('status → stopped by SQL answers 409 on the next call, back online answers 200', async () => {
    const id = await onlineRow();
    for (let i = 0; i < ROUNDS; i++) {
      const ok = await call(id);
      expect(ok.status).toBe(200);
      await other.query(`UPDATE workspaces SET status = 'stopped' WHERE id = $1`, [id]);
      const refused = await call(id);
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe('not_online');
      await other.query(`UPDATE workspaces SET status = 'online' WHERE id = $1`, [id]);
    }
  });

  it('deleting or deleted answers 409 deleted without Retry-After (nothing to wait for)', async () => {
    const id = await onlineRow();
    expect((await call(id)).status).toBe(200);
    for (const status of ['deleting', 'deleted']) {
      await other.query(`UPDATE workspaces SET status = $2 WHERE id = $1`, [id, status]);
      const refused = await call(id);
      expect(refused.status, status).toBe(409);
      expect(refused.body.error.code, status).toBe('deleted');
      expect(refused.headers.get('retry-after'), status).toBeNull();
    }
  });

  it('a new endpoint by SQL is the one the next call reaches', async () => {
    const id = await onlineRow();
    for (let i = 0; i < ROUNDS; i++) {
      const agent = i % 2 === 0 ? agentB : agentA;
      await other.query(`UPDATE workspaces SET endpoint = $2 WHERE id = $1`, [id, agent.url]);
      const res = await call(id);
      expect(res.status).toBe(200);
      expect(replyOf(res)).toBe(i % 2 === 0 ? 'agent-b' : 'agent-a');
    }
  });

  it("a generation bump by SQL: the caller's old token is stale (403), the callee's new credential is presented", async () => {
    const caller = await onlineRow();
    const callee = await onlineRow();
    await other.query(`UPDATE workspaces SET generation = 1 WHERE id = ANY($1)`, [[caller, callee]]);
    for (let gen = 1; gen <= ROUNDS; gen++) {
      const token = await mintWorkspaceToken(t.stack.service.db.pool, caller, gen);
      expect((await call(callee, token)).status).toBe(200);
      const presented = agentA.credentials.at(-1);
      await other.query(`UPDATE workspaces SET generation = generation + 1 WHERE id = ANY($1)`, [
        [caller, callee],
      ]);
      const stale = await call(callee, token);
      expect(stale.status).toBe(403);
      expect(stale.body.error.code).toBe('stale_generation');
      // The callee's next generation has its own credential: the call presents it, not the old one.
      const fresh = await call(callee, await mintWorkspaceToken(t.stack.service.db.pool, caller, gen + 1));
      expect(fresh.status).toBe(200);
      expect(agentA.credentials.at(-1)).not.toBe(presented);
    }
  });

  it('spend reaching the limit by SQL answers 402 on the next call; a raised limit lets calls through again', async () => {
    const id = await onlineRow();
    await other.query(`UPDATE workspaces SET budget_limit_cents = 1000 WHERE id = $1`, [id]);
    for (let i = 1; i <= ROUNDS; i++) {
      expect((await call(id)).status).toBe(200);
      await other.query(
        `INSERT INTO workspace_spend (workspace_id, generation, spent_cents) VALUES ($1, 1, $2)
         ON CONFLICT (workspace_id, generation) DO UPDATE SET spent_cents = EXCLUDED.spent_cents`,
        [id, i * 1000],
      );
      const refused = await call(id);
      expect(refused.status).toBe(402);
      expect(refused.body.error.code).toBe('budget_exceeded');
      await other.query(`UPDATE workspaces SET budget_limit_cents = $2 WHERE id = $1`, [id, (i + 1) * 1000]);
    }
  });

  it('a deleted row answers 404 on the next call', async () => {
    const id = await onlineRow();
    expect((await call(id)).status).toBe(200);
    await other.query(`DELETE FROM workspaces WHERE id = $1`, [id]);
    expect((await call(id)).status).toBe(404);
  });
});
