/**
 * The A2A proxy with the official client (`@a2a-js/sdk`), the same test for each backend: card
 * discovery through the platform (the card names the proxy, never the agent's address),
 * `message/send` and `message/stream`, against the reference agent (protocol 1.0, on the SDK's
 * server) and against a small agent that speaks only protocol 0.3 (a fixture on loopback: the
 * proxy runs on this host, so it reaches the fixture whatever the backend). The proxy passes the
 * caller's `A2A-Version` on, and logs the reply text of either protocol's answers.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Role, TaskState, type Message, type SendMessageRequest, type StreamResponse } from '@a2a-js/sdk';
import {
  ClientFactory,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
  type Client,
} from '@a2a-js/sdk/client';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import { insertWorkspaceRow } from '../support/stack.js';
import { provingIdentity, stackCredentials } from '../support/agent-identity.js';
import {
  CONCURRENT_BLOCK,
  PARITY_BACKENDS,
  createOnline,
  useParityStack,
  type ParityFixture,
} from './backends.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

const CHUNKS = 3;

/** fetch with the platform's credential (an org key or a workspace token) on every request. */
const authedFetch =
  (token: string): typeof fetch =>
  (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${token}`);
    return fetch(input, { ...init, headers });
  };

/** An official client made from the card the platform serves (legacyCompat: 0.3 agents too). */
async function clientFor(
  t: ParityFixture,
  workspaceId: string,
  token: string,
  legacy = false,
): Promise<Client> {
  const fetchImpl = authedFetch(token);
  const compat = legacy ? { legacyCompat: { enabled: true } } : {};
  const factory = new ClientFactory({
    transports: [new JsonRpcTransportFactory({ fetchImpl, ...compat })],
    cardResolver: new DefaultAgentCardResolver({ fetchImpl, ...compat }),
  });
  return factory.createFromUrl(`${t.stack.url}/v1/workspaces/${workspaceId}/agent-card`, '');
}

function userMessage(text: string): SendMessageRequest {
  const message: Message = {
    messageId: randomUUID(),
    contextId: '',
    taskId: '',
    role: Role.ROLE_USER,
    parts: [
      { content: { $case: 'text', value: text }, metadata: undefined, filename: '', mediaType: 'text/plain' },
    ],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
  return { tenant: '', message, configuration: undefined, metadata: undefined };
}

const textOf = (m: Message | undefined) =>
  (m?.parts ?? []).map((p) => (p.content?.$case === 'text' ? p.content.value : '')).join(' ');

function asMessage(result: unknown): Message {
  expect(result).toHaveProperty('messageId');
  return result as Message;
}

async function collect(stream: AsyncGenerator<StreamResponse>): Promise<StreamResponse[]> {
  const events: StreamResponse[] = [];
  for await (const e of stream) events.push(e);
  return events;
}

/** The status texts of a stream's status updates, and the last update's state. */
function statusUpdates(events: StreamResponse[]) {
  const updates = events.flatMap((e) => (e.payload?.$case === 'statusUpdate' ? [e.payload.value] : []));
  return { texts: updates.map((u) => textOf(u.status?.message)), last: updates.at(-1)?.status?.state };
}

/** The workspace's A2A activity rows, newest first: [method, status, summary]. */
async function calls(t: ParityFixture, workspaceId: string) {
  const activity = await t.stack.api.call('GET', `/v1/workspaces/${workspaceId}/activity?type=a2a`, {
    token: t.key,
  });
  expect(activity.status).toBe(200);
  return (activity.body.items as Array<{ method: string; status: number; summary: string }>).map((i) => [
    i.method,
    i.status,
    i.summary,
  ]);
}

const createEcho = (t: ParityFixture, name: string) =>
  createOnline(t, name, { config: { agent: { streamChunks: CHUNKS, streamIntervalMs: 100 } } });

/**
 * An agent of protocol 0.3 only, written to that spec (not with the SDK): its card at the 0.3
 * well-known path, `message/send` answered with a message, `message/stream` with a task and its
 * status updates. It records the headers each call came with.
 */
function startV03Agent() {
  const calls: Array<{ path: string; headers: IncomingMessage['headers']; method?: string }> = [];
  const reply = (text: string) => `v0.3 agent received: ${text}`;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0]!;
      if (req.method === 'GET' && path === '/health') return res.writeHead(200).end('{"ok":true}');
      if (req.method === 'GET' && path === '/.well-known/agent-card.json') {
        calls.push({ path, headers: req.headers });
        return res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            protocolVersion: '0.3.0',
            name: 'legacy',
            description: 'An agent that speaks A2A 0.3 only',
            url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
            preferredTransport: 'JSONRPC',
            version: '1.0.0',
            capabilities: { streaming: true },
            defaultInputModes: ['text/plain'],
            defaultOutputModes: ['text/plain'],
            skills: [{ id: 'echo', name: 'echo', description: 'echoes', tags: ['echo'] }],
          }),
        );
      }
      if (req.method !== 'POST' || path !== '/') return res.writeHead(404).end();
      const rpc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        id: string | number;
        method: string;
        params: { message: { parts: Array<{ kind: string; text?: string }> } };
      };
      calls.push({ path, headers: req.headers, method: rpc.method });
      const text = rpc.params.message.parts.map((p) => p.text ?? '').join(' ');
      const answer = (result: unknown) => JSON.stringify({ jsonrpc: '2.0', id: rpc.id, result });
      const agentMessage = (t: string, ids: Record<string, string> = {}) => ({
        kind: 'message',
        role: 'agent',
        messageId: randomUUID(),
        parts: [{ kind: 'text', text: t }],
        ...ids,
      });
      if (rpc.method === 'message/send') {
        return res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(answer(agentMessage(reply(text))));
      }
      if (rpc.method === 'message/stream') {
        const ids = { taskId: randomUUID(), contextId: randomUUID() };
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        const status = (state: string, t: string, final: boolean) =>
          answer({
            kind: 'status-update',
            ...ids,
            status: { state, message: agentMessage(t, ids) },
            final,
          });
        res.write(
          `data: ${answer({ kind: 'task', id: ids.taskId, contextId: ids.contextId, status: { state: 'submitted' } })}\n\n`,
        );
        for (let i = 1; i <= CHUNKS; i++) {
          const last = i === CHUNKS;
          res.write(
            `data: ${status(last ? 'completed' : 'working', `chunk ${i}: ${reply(text)}`, last)}\n\n`,
          );
        }
        return res.end();
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          jsonrpc: '2.0',
          id: rpc.id,
          error: { code: -32601, message: 'Method not found' },
        }),
      );
    });
  });
  return { server, calls };
}

describe.each(PARITY_BACKENDS)('%s A2A with the official client', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  it('reference agent (protocol 1.0): discovery through the platform, send, stream, peer, activity', async () => {
    const [a, b] = await Promise.all([createEcho(t, 'sdk-callee'), createEcho(t, 'sdk-caller')]);
    const proxyUrl = `${t.stack.url}/v1/workspaces/${a.id}/a2a`;

    const client = await clientFor(t, a.id, t.key);
    expect(client.protocolVersion).toBe('1.0');
    const card = await client.getAgentCard();
    expect(card.name).toBe('sdk-callee');
    expect(card.capabilities?.streaming).toBe(true);
    expect(card.skills.map((s) => [s.id, s.tags.length > 0])).toEqual([['echo', true]]);
    // Every interface names the proxy: the agent's own address is not on the card.
    expect(card.supportedInterfaces.map((i) => [i.protocolBinding, i.protocolVersion, i.url])).toEqual([
      ['JSONRPC', '1.0', proxyUrl],
      ['JSONRPC', '0.3', proxyUrl],
    ]);

    const sent = asMessage(await client.sendMessage(userMessage('hello sdk')));
    expect(textOf(sent)).toBe(`workspace sdk-callee (${a.id}) on runtime ${a.runtime} received: hello sdk`);
    expect(sent.role).toBe(Role.ROLE_AGENT);

    const events = await collect(client.sendMessageStream(userMessage('stream sdk')));
    expect(events[0]?.payload?.$case).toBe('task');
    const { texts, last } = statusUpdates(events);
    expect(texts.map((x) => x.slice(0, 12))).toEqual(['chunk 1 of 3', 'chunk 2 of 3', 'chunk 3 of 3']);
    expect(texts.at(-1)).toContain('received: stream sdk');
    expect(last).toBe(TaskState.TASK_STATE_COMPLETED);

    // A workspace caller, with its token: the platform names it as the peer.
    const token = await mintWorkspaceToken(t.stack.service.db.pool, b.id, b.generation);
    const peerClient = await clientFor(t, a.id, token);
    const fromPeer = asMessage(await peerClient.sendMessage(userMessage('hi from a peer')));
    expect(fromPeer.metadata?.peer).toMatchObject({ id: b.id, name: 'sdk-caller', role: 'peer' });
    const peerStream = await collect(peerClient.sendMessageStream(userMessage('a peer streams')));
    expect(statusUpdates(peerStream).last).toBe(TaskState.TASK_STATE_COMPLETED);

    // The activity log reads the reply text out of protocol 1.0's answers, streamed or not.
    expect(await calls(t, a.id)).toEqual([
      ['SendStreamingMessage', 200, 'a peer streams'],
      ['SendMessage', 200, 'hi from a peer'],
      ['SendStreamingMessage', 200, 'stream sdk'],
      ['SendMessage', 200, 'hello sdk'],
    ]);
    const chat = await t.stack.api.call('GET', `/v1/workspaces/${a.id}/chat-history?peer_id=${b.id}`, {
      token: t.key,
    });
    const echo = (text: string) => `workspace sdk-callee (${a.id}) on runtime ${a.runtime} received: ${text}`;
    expect(chat.body.items.map((x: { response: string }) => x.response)).toEqual([
      `chunk 3 of 3: ${echo('a peer streams')}`,
      echo('hi from a peer'),
    ]);
  });

  describe('an agent of protocol 0.3', () => {
    const agent = startV03Agent();
    // Behind the platform every A2A server is the runtime's, which proves who it is first.
    provingIdentity(
      agent.server,
      stackCredentials(() => t.stack),
    );
    let workspaceId = '';
    beforeAll(async () => {
      await new Promise<void>((resolve) => agent.server.listen(0, '127.0.0.1', resolve));
    });
    afterAll(async () => {
      // The row has no resource behind it: it is retired here, not by a delete workflow.
      if (workspaceId) {
        await t.stack.service.db.pool.query(`UPDATE workspaces SET status = 'deleted' WHERE id = $1`, [
          workspaceId,
        ]);
      }
      await new Promise<void>((resolve) => agent.server.close(() => resolve()));
    });

    it('discovery, send and stream through the platform with the client in 0.3 mode', async () => {
      const { pool } = t.stack.service.db;
      const endpoint = `http://127.0.0.1:${(agent.server.address() as AddressInfo).port}`;
      // A workspace of this backend whose recorded agent is the fixture.
      workspaceId = await insertWorkspaceRow(pool, t.orgId, () => 'legacy');
      await pool.query(
        `UPDATE workspaces SET status = 'online', backend = $2, endpoint = $3, instance_id = 'none' WHERE id = $1`,
        [workspaceId, t.backend, endpoint],
      );
      const proxyUrl = `${t.stack.url}/v1/workspaces/${workspaceId}/a2a`;

      const client = await clientFor(t, workspaceId, t.key, true);
      expect(client.protocolVersion).toBe('0.3');
      const card = await client.getAgentCard();
      expect(card.name).toBe('legacy');
      expect(card.supportedInterfaces.map((i) => i.url)).toEqual([proxyUrl]);

      const sent = asMessage(await client.sendMessage(userMessage('old friend')));
      expect(textOf(sent)).toBe('v0.3 agent received: old friend');

      const events = await collect(client.sendMessageStream(userMessage('old stream')));
      const { texts, last } = statusUpdates(events);
      expect(texts).toEqual([1, 2, 3].map((i) => `chunk ${i}: v0.3 agent received: old stream`));
      expect(last).toBe(TaskState.TASK_STATE_COMPLETED);

      // The proxy passed the caller's protocol version on, with its own credential.
      expect(agent.calls.map((c) => [c.path, c.method ?? 'GET'])).toEqual([
        ['/.well-known/agent-card.json', 'GET'],
        ['/', 'message/send'],
        ['/', 'message/stream'],
      ]);
      for (const c of agent.calls.slice(1)) {
        expect(c.headers['a2a-version']).toBe('0.3');
        expect(c.headers['x-wo-agent-credential']).toBeTruthy();
        expect(c.headers.authorization).toBeUndefined();
      }

      expect(await calls(t, workspaceId)).toEqual([
        ['message/stream', 200, 'old stream'],
        ['message/send', 200, 'old friend'],
      ]);
      // And the reply text out of protocol 0.3's answers, streamed or not.
      const replies = await pool.query<{ method: string; response_text: string }>(
        `SELECT method, response_text FROM activity WHERE workspace_id = $1 AND type = 'a2a' ORDER BY ts`,
        [workspaceId],
      );
      expect(replies.rows.map((r) => [r.method, r.response_text])).toEqual([
        ['message/send', 'v0.3 agent received: old friend'],
        ['message/stream', `chunk ${CHUNKS}: v0.3 agent received: old stream`],
      ]);
    });
  });
});
