/**
 * What an agent's own requests may cost the backend. Registers, heartbeats and failed forwards (the
 * liveness check after one, the endpoint re-read after one that could not connect) read the backend
 * (docker inspect; on EC2 a DescribeInstances, whose read budget is the whole AWS account's). The
 * agent sets their pace, so they are bounded per workspace and generation whatever the request rate,
 * while a correct path still sees what it saw: the first register of a generation re-reads (a
 * resource that answers elsewhere now is picked up), a dead agent is still told to the entity.
 *
 * The API runs over the real database with a backend that counts its reads and an entity that
 * records its liveness signals; the agent is a local HTTP server.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND_READ_MIN_MS } from '../../src/a2a/backend-reads.js';
import type { ResourceStatus, WorkspaceBackend } from '../../src/backends/backend.js';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import type { AgentLiveness } from '../../src/workflows/messages.js';
import { insertWorkspaceRow, serveApiWith, useStack, type ApiClient, type Stack } from '../support/stack.js';
import { provingIdentity, stackCredentials } from '../support/agent-identity.js';

/**
 * A stand-in agent: `POST /` (and its card) answer 500, `/health` answers 200; it is the genuine
 * agent of whichever workspace the stack's platform asks for (it proves the identity check).
 */
async function failingAgent(stack: () => Stack): Promise<{ url: string; server: Server }> {
  const server = provingIdentity(
    createServer((req, res) => {
      req.resume();
      res.statusCode = req.url === '/health' ? 200 : 500;
      res.end(req.url === '/health' ? 'ok' : 'boom');
    }),
    stackCredentials(stack),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** An address where nothing listens (a port just freed). */
async function deadEndpoint(): Promise<string> {
  const { url, server } = await failingAgent(() => {
    throw new Error('never asked: closed at once');
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return url;
}

const send = {
  jsonrpc: '2.0',
  id: 1,
  method: 'message/send',
  params: { message: { role: 'user', messageId: 'm1', parts: [{ kind: 'text', text: 'x' }] } },
};

describe.each(['ec2', 'docker'] as const)('%s: backend reads an agent can cause', (backend) => {
  const t = useStack({ worker: false });
  const reads = { describe: 0, status: 0 };
  /** What the backend answers `describe` with, by workspace. */
  const endpoints = new Map<string, string>();
  const liveness: AgentLiveness[] = [];
  const counting = {
    describe: async (id: string) => {
      reads.describe++;
      return { instanceId: `i-${id}`, endpoint: endpoints.get(id) ?? null, status: 'running' };
    },
    status: async (): Promise<ResourceStatus> => {
      reads.status++;
      return 'running';
    },
  } as unknown as WorkspaceBackend;
  let served: Awaited<ReturnType<typeof serveApiWith>> | undefined;
  let api: ApiClient;
  let agent: { url: string; server: Server };

  beforeAll(async () => {
    agent = await failingAgent(() => t.stack);
    served = await serveApiWith(
      t.stack,
      {
        signalLiveness: async (_id: string, l: AgentLiveness) => {
          liveness.push(l);
        },
      },
      { backends: { docker: counting, ec2: counting } },
    );
    api = served.api;
  });
  afterAll(async () => {
    await served?.close();
    await new Promise<void>((resolve) => agent?.server.close(() => resolve()));
  });

  /** An online workspace of this backend at `endpoint`, generation 1 booted, not registered yet. */
  async function online(endpoint: string) {
    const { pool } = t.stack.service.db;
    const id = await insertWorkspaceRow(pool, t.orgId, (x) => `reads-${x}`);
    await pool.query(
      `UPDATE workspaces SET backend = $2, status = 'online', generation = 1, boot_runtime = runtime,
         boot_config = config, boot_config_hash = 'hash-1', endpoint = $3 WHERE id = $1`,
      [id, backend, endpoint],
    );
    endpoints.set(id, endpoint);
    return { id, token: await mintWorkspaceToken(pool, id, 1) };
  }

  const endpointOf = async (id: string) =>
    (
      await t.stack.service.db.pool.query<{ endpoint: string | null }>(
        'SELECT endpoint FROM workspaces WHERE id = $1',
        [id],
      )
    ).rows[0]!.endpoint;

  /** The agent's register or heartbeat, of generation 1 unless said otherwise; its status. */
  const registry = async (
    kind: 'register' | 'heartbeat',
    w: { id: string; token: string },
    generation = 1,
  ): Promise<number> =>
    (
      await api.call('POST', `/v1/registry/${kind}`, {
        token: w.token,
        body: { workspaceId: w.id, generation, configHash: 'hash-1' },
      })
    ).status;

  /** At most one read per interval of each kind, and one more for a forced one. */
  const bound = (startedAt: number, forced = 0) =>
    forced + 1 + Math.floor((Date.now() - startedAt) / BACKEND_READ_MIN_MS[backend]);

  it('50 registers and 50 heartbeats of one generation read the endpoint once each, and the next generation re-reads', async () => {
    const w = await online(agent.url);
    const before = reads.describe;
    const startedAt = Date.now();
    for (let i = 0; i < 50; i++) expect(await registry('register', w)).toBe(200);
    const registers = reads.describe - before;
    // The generation's first registration always re-reads; the 49 others at most once an interval.
    expect(registers).toBeGreaterThanOrEqual(1);
    expect(registers).toBeLessThanOrEqual(bound(startedAt, 1));

    const beats = reads.describe;
    const beatsFrom = Date.now();
    for (let i = 0; i < 50; i++) expect(await registry('heartbeat', w)).toBe(200);
    expect(reads.describe - beats).toBeLessThanOrEqual(bound(beatsFrom));

    // A new generation answers elsewhere: its first register reads it at once, whatever came before.
    const { pool } = t.stack.service.db;
    const moved = await deadEndpoint();
    endpoints.set(w.id, moved);
    await pool.query(
      `UPDATE workspaces SET generation = 2, registered_generation = NULL, registered_config_hash = NULL
       WHERE id = $1`,
      [w.id],
    );
    const token2 = await mintWorkspaceToken(pool, w.id, 2);
    const next = reads.describe;
    expect(await registry('register', { id: w.id, token: token2 }, 2)).toBe(200);
    expect(reads.describe - next).toBe(1);
    expect(await endpointOf(w.id)).toBe(moved);
  });

  // docker only: an EC2 instance keeps its private address for its life.
  if (backend === 'docker')
    it('an endpoint that moves within a generation (docker restart: new host port) is picked up by the next register after the interval', async () => {
      const w = await online(agent.url);
      expect(await registry('register', w)).toBe(200);
      const moved = await deadEndpoint();
      endpoints.set(w.id, moved);
      expect(await registry('register', w)).toBe(200);
      expect(await endpointOf(w.id)).toBe(agent.url);
      await new Promise((resolve) => setTimeout(resolve, BACKEND_READ_MIN_MS.docker));
      expect(await registry('register', w)).toBe(200);
      expect(await endpointOf(w.id)).toBe(moved);
    });

  it('50 calls the agent answers 500 (its /health 200) cause one status read and leave it online', async () => {
    const w = await online(agent.url);
    const before = reads.status;
    const told = liveness.length;
    const startedAt = Date.now();
    for (let i = 0; i < 50; i++) {
      // Its own workspace, with its own token: what a compromised agent can do.
      const res = await api.call('POST', `/v1/workspaces/${w.id}/a2a`, { token: w.token, body: send });
      expect(res.status).toBe(502);
      expect(res.body.error.code).toBe('agent_error');
    }
    for (let i = 0; i < 10; i++) {
      const res = await api.call('GET', `/v1/workspaces/${w.id}/agent-card`, { token: w.token });
      expect(res.status).toBe(502);
    }
    expect(reads.status - before).toBeGreaterThanOrEqual(1);
    expect(reads.status - before).toBeLessThanOrEqual(bound(startedAt));
    // Running and reachable: nothing to tell the entity.
    expect(liveness.length).toBe(told);
  });

  it('50 calls that cannot connect cause one endpoint re-read and one status read; the entity is told', async () => {
    const w = await online(await deadEndpoint());
    const before = { ...reads };
    const told = liveness.length;
    const startedAt = Date.now();
    // Some at once: checks of one workspace in flight at the same time are one check.
    for (let round = 0; round < 10; round++) {
      const answers = await Promise.all(
        Array.from({ length: 5 }, () =>
          api.call('POST', `/v1/workspaces/${w.id}/a2a`, { token: w.token, body: send }),
        ),
      );
      for (const res of answers) expect(res.status).toBe(502);
    }
    expect(reads.describe - before.describe).toBeGreaterThanOrEqual(1);
    expect(reads.describe - before.describe).toBeLessThanOrEqual(bound(startedAt));
    expect(reads.status - before.status).toBeGreaterThanOrEqual(1);
    expect(reads.status - before.status).toBeLessThanOrEqual(bound(startedAt));
    // The agent is unreachable: the entity hears it (and makes the workspace leave online).
    const heard = liveness.slice(told);
    expect(heard.length).toBeGreaterThanOrEqual(1);
    for (const l of heard) expect(l).toEqual({ generation: 1, reachable: false, resourceStatus: 'running' });
  });
});
