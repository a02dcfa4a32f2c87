/**
 * MCP tools for peers on the real stack, the same test for each backend, with the official MCP
 * client: the reference agent hands its runtime the platform's MCP endpoint and its workspace
 * token (state dir, 0600); with them, `list_peers` names the org's other workspaces,
 * `send_message` reaches a peer through the A2A proxy (activity rows on both sides, the caller as
 * the peer) and `chat_history` reads those turns back. Only a workspace token may use it.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { describe, expect, test } from 'vitest';
import {
  AGENT_STATE_DIR,
  CONCURRENT_BLOCK,
  PARITY_BACKENDS,
  createOnline,
  freezeAgent,
  stateFileOf,
  useParityStack,
} from './backends.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

async function mcpClient(url: string, token: string): Promise<Client> {
  const client = new Client({ name: 'parity-test', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

/** A tool's structured answer (throws with its text when the tool answered an error). */
async function call(client: Client, name: string, args: Record<string, unknown> = {}) {
  const res = await client.callTool({ name, arguments: args });
  if (res.isError) throw new Error(`${name}: ${JSON.stringify(res.content)}`);
  return res.structuredContent as Record<string, unknown>;
}

describe.each(PARITY_BACKENDS)('%s MCP tools for peers', CONCURRENT_BLOCK, (backend) => {
  // A send_message waits at most 3 s for its peer here (10 min by default).
  const t = useParityStack(backend, { env: { MCP_SEND_TIMEOUT_MS: '3000' } });

  /** The workspace token its agent holds (its saved bundle, in the agent's state dir). */
  const tokenOf = async (w: { id: string; generation: number }) =>
    (
      JSON.parse(
        (await stateFileOf(backend, t.stack.docker, w.id, w.generation, 'bundle.json')).content.toString(),
      ) as { workspaceToken: string }
    ).workspaceToken;

  it('the agent hands over the endpoint; list_peers, send_message, chat_history; workspace token only', async () => {
    const [a, b] = await Promise.all([createOnline(t, 'mcp-a'), createOnline(t, 'mcp-b')]);

    // What the reference agent gave its runtime: the endpoint and its workspace token, root-only.
    const file = await stateFileOf(backend, t.stack.docker, a.id, a.generation, 'mcp.json');
    expect(file.mode).toBe(0o600);
    const server = (
      JSON.parse(file.content.toString()) as {
        mcpServers: Record<string, { type: string; url: string; headers: { Authorization: string } }>;
      }
    ).mcpServers['workspace-orchestrator']!;
    expect(server.type).toBe('http');
    expect(new URL(server.url).pathname).toBe('/v1/mcp');
    const bundle = { workspaceToken: await tokenOf(a) };
    expect(server.headers.Authorization).toBe(`Bearer ${bundle.workspaceToken}`);
    const bootLog = await t.stack.api.call('GET', `/v1/workspaces/${a.id}/boot-log`, { token: t.key });
    const started = (bootLog.body.events as { phase: string; message?: string }[]).find(
      (e) => e.phase === 'agent-started',
    );
    expect(started?.message).toContain(`MCP endpoint ${server.url} (${AGENT_STATE_DIR}/mcp.json)`);

    // The runtime's view, from this host (the file's URL is the platform as the workspace reaches it).
    const client = await mcpClient(`${t.stack.url}/v1/mcp`, bundle.workspaceToken);
    try {
      const tools = await client.listTools();
      expect(tools.tools.map((x) => x.name).sort()).toEqual(['chat_history', 'list_peers', 'send_message']);

      expect(await call(client, 'list_peers')).toEqual({
        peers: [{ id: b.id, name: 'mcp-b', role: b.template ?? b.runtime, status: 'online' }],
      });

      const echo = `workspace mcp-b (${b.id}) on runtime ${b.runtime} received: hello via mcp`;
      expect(await call(client, 'send_message', { peer: 'mcp-b', text: 'hello via mcp' })).toEqual({
        peer: { id: b.id, name: 'mcp-b' },
        status: 200,
        reply: echo,
      });
      // Through the proxy's path: the peer's log names the caller, and the caller has its side.
      const inbound = await t.stack.api.call('GET', `/v1/workspaces/${b.id}/activity?peer_id=${a.id}`, {
        token: t.key,
      });
      expect(inbound.body.items).toMatchObject([{ peerId: a.id, method: 'message/send', status: 200 }]);

      expect(await call(client, 'chat_history', { peer: b.id })).toMatchObject({
        peer: { id: b.id, name: 'mcp-b' },
        turns: [
          {
            direction: 'outbound',
            method: 'message/send',
            status: 200,
            request: 'hello via mcp',
            response: echo,
          },
        ],
      });

      // The reply whole, not the activity log's 200-character summary.
      const long = `long ${'x'.repeat(1500)} end`;
      expect(await call(client, 'send_message', { peer: b.id, text: long })).toMatchObject({
        reply: `workspace mcp-b (${b.id}) on runtime ${b.runtime} received: ${long}`,
      });

      // A peer that is not one: unknown, or the caller itself.
      for (const peer of ['nobody', 'mcp-a', a.id]) {
        const refused = await client.callTool({ name: 'send_message', arguments: { peer, text: 'x' } });
        expect(refused.isError, peer).toBe(true);
      }
    } finally {
      await client.close();
    }

    // Names are not unique: a newer "mcp-a" reaches the older one by that name (not itself).
    const a2 = await createOnline(t, 'mcp-a');
    const client2 = await mcpClient(`${t.stack.url}/v1/mcp`, await tokenOf(a2));
    try {
      expect(await call(client2, 'send_message', { peer: 'mcp-a', text: 'same name' })).toMatchObject({
        peer: { id: a.id, name: 'mcp-a' },
        status: 200,
      });
    } finally {
      await client2.close();
    }

    // Only a workspace token: the org key is refused, and the endpoint is stateless (POST only).
    const asOrg = await t.stack.api.call('POST', '/v1/mcp', {
      token: t.key,
      body: { jsonrpc: '2.0', id: 1, method: 'tools/list' },
    });
    expect(asOrg.status).toBe(403);
    const get = await t.stack.api.call('GET', '/v1/mcp', { token: bundle.workspaceToken });
    expect(get.status).toBe(405);
    expect(get.body.error.code).toBe('method_not_allowed');
  });
  it("send_message to a peer that holds the call: a tool error at the call's deadline, not the agent's idle timeout", async () => {
    const [a, b] = await Promise.all([createOnline(t, 'mcp-e'), createOnline(t, 'mcp-f')]);
    const client = await mcpClient(`${t.stack.url}/v1/mcp`, await tokenOf(a));
    await freezeAgent(t, b, true);
    try {
      const began = Date.now();
      const held = await client.callTool({
        name: 'send_message',
        arguments: { peer: b.id, text: 'still there?' },
      });
      // 3 s, where the agent's idle timeout (30 s) would have ended it
      expect(Date.now() - began).toBeLessThan(20_000);
      expect(held.isError).toBe(true);
      expect(JSON.stringify(held.content)).toContain('did not answer in time');
      const inbound = await t.stack.api.call('GET', `/v1/workspaces/${b.id}/activity?peer_id=${a.id}`, {
        token: t.key,
      });
      expect(inbound.body.items).toMatchObject([{ method: 'message/send', status: 504 }]);
    } finally {
      await freezeAgent(t, b, false);
      await client.close();
    }
  });
});
