/**
 * Real answers validate against /openapi.json's schemas: a docker workspace on the real stack
 * (PostgreSQL, Temporal, dockerd, the reference agent) is taken through most operations with a
 * client that checks every answer (status documented, body parsed by the operation's strict zod
 * schema), error bodies included. The operations not reached here are named at the end.
 */
import { describe, expect, it } from 'vitest';
import { ROUTES } from '../../src/api/openapi/routes.js';
import { transitionEventSchema } from '../../src/api/responses.js';
import { CheckedApiClient, checkResponse, findOperation } from '../support/openapi-check.js';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import { waitFor } from '../setup/wait-for.js';
import { useStack, waitForStatus } from '../support/stack.js';

/** Operations this suite does not reach, with why (each is covered by its own suite). */
const NOT_REACHED = [
  'openTerminal', // a WebSocket upgrade, not an HTTP answer (test/parity/terminal.test.ts)
];

describe('OpenAPI: real answers match the documented schemas', () => {
  const t = useStack();

  it('orgs, catalogs, sweeps, a docker workspace and its data plane, errors', async () => {
    const api = new CheckedApiClient(t.stack.url);
    const admin = t.stack.adminToken;
    const key = t.key;
    const covered = (method: string, path: string) =>
      api.seen.add(`${findOperation(method, path).operationId} manual`);

    // Operations.
    expect((await api.call('GET', '/healthz')).status).toBe(200);
    expect([200, 503]).toContain((await api.call('GET', '/readyz')).status);
    expect((await api.call('GET', '/metrics')).status).toBe(200);
    expect((await api.call('GET', '/openapi.json')).status).toBe(200);
    expect((await api.call('GET', '/docs')).status).toBe(200);
    expect((await api.call('GET', '/ui')).status).toBe(200);

    // Orgs and their secrets (admin).
    const org = await api.call('POST', '/v1/orgs', { token: admin, body: { name: 'doc-org' } });
    expect(org.status).toBe(201);
    t.stack.orgIds.add(org.body.id);
    expect((await api.call('GET', '/v1/orgs', { token: admin })).status).toBe(200);
    expect((await api.call('GET', `/v1/orgs/${org.body.id}`, { token: admin })).status).toBe(200);
    expect((await api.call('GET', '/v1/orgs', { token: key })).status).toBe(403);
    expect((await api.call('GET', '/v1/orgs/0123456789abcdef', { token: admin })).status).toBe(404);
    const orgSecret = `/v1/orgs/${org.body.id}/secrets/DEFAULT_KEY`;
    expect((await api.call('PUT', orgSecret, { token: admin, body: { value: 'org-wide' } })).status).toBe(
      204,
    );
    expect((await api.call('GET', `/v1/orgs/${org.body.id}/secrets`, { token: admin })).status).toBe(200);
    expect((await api.call('DELETE', orgSecret, { token: admin })).status).toBe(204);
    expect((await api.call('DELETE', orgSecret, { token: admin })).status).toBe(404);
    expect((await api.call('PUT', orgSecret, { token: admin, body: {} })).status).toBe(400);
    expect((await api.call('DELETE', `/v1/orgs/${org.body.id}`, { token: admin })).status).toBe(202);

    // Catalogs and sweeps.
    expect((await api.call('GET', '/v1/templates', { token: key })).status).toBe(200);
    const catalog = await api.call('GET', '/v1/plugins', { token: key });
    expect(catalog.status).toBe(200);
    expect((await api.call('GET', '/v1/admin/sweeps', { token: admin })).status).toBe(200);
    expect((await api.call('POST', '/v1/admin/sweeps/budget/run', { token: admin })).status).toBe(200);
    expect((await api.call('POST', '/v1/admin/sweeps/nope/run', { token: admin })).status).toBe(404);

    // Requests the edge refuses.
    expect((await api.call('GET', '/v1/workspaces')).status).toBe(401);
    expect((await api.call('POST', '/v1/workspaces', { token: key, body: { name: 'x' } })).status).toBe(400);
    expect((await api.call('POST', '/v1/workspaces', { token: key, rawBody: '{"name":' })).status).toBe(400);
    expect((await api.call('GET', '/v1/workspaces?limit=0', { token: key })).status).toBe(400);
    expect((await api.call('GET', '/v1/workspaces/0123456789abcdef', { token: key })).status).toBe(404);
    // A valid token of the wrong kind (api.md: valid token, forbidden action → 403), whatever its body.
    expect((await api.call('POST', '/v1/registry/heartbeat', { token: key, body: {} })).status).toBe(403);
    expect(
      (
        await api.call('POST', '/v1/registry/heartbeat', {
          token: key,
          body: { workspaceId: '0123456789abcdef', generation: 1, configHash: 'h' },
        })
      ).status,
    ).toBe(403);
    expect((await api.call('GET', '/v1/registry/bootstrap', { token: key })).status).toBe(403);

    // A workspace, followed through its event stream to online.
    const created = await api.call('POST', '/v1/workspaces', {
      token: key,
      body: { name: 'documented', backend: 'docker', secrets: { API_KEY: 'sekrit' } },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    const W = `/v1/workspaces/${id}`;
    const stream = new AbortController();
    const events = await fetch(`${t.stack.url}${W}/events`, {
      headers: { authorization: `Bearer ${key}` },
      signal: stream.signal,
    });
    checkResponse('GET', `${W}/events`, {
      status: events.status,
      contentType: events.headers.get('content-type'),
      body: null,
    });
    covered('GET', `${W}/events`);
    const firstEvent = (async () => {
      const reader = events.body!.getReader();
      let text = '';
      while (!/^data: .*$/m.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before an event: ${text}`);
        text += Buffer.from(value).toString('utf8');
      }
      return JSON.parse(/^data: (.*)$/m.exec(text)![1]!) as unknown;
    })().then(
      (event) => ({ event }),
      (err: unknown) => ({ err }),
    );
    await waitForStatus(t.stack, key, id, 'online');
    const first = await firstEvent;
    expect(first).toHaveProperty('event');
    if ('event' in first) expect(() => transitionEventSchema.parse(first.event)).not.toThrow();
    stream.abort();

    expect((await api.call('GET', '/v1/workspaces?limit=5', { token: key })).status).toBe(200);
    expect((await api.call('GET', W, { token: key })).status).toBe(200);
    expect((await api.call('PATCH', W, { token: key, body: { restartPolicy: 'never' } })).status).toBe(200);
    expect((await api.call('PATCH', W, { token: key, body: {} })).status).toBe(400);
    expect((await api.call('GET', `${W}/boot-log`, { token: key })).status).toBe(200);
    expect((await api.call('GET', `${W}/boot-log?generation=0`, { token: key })).status).toBe(400);

    // Files: raw bytes in and out, checked by hand (the client speaks JSON).
    const file = `${W}/files/content?root=/workspace&path=notes/a.txt`;
    const raw = async (method: string, path: string, body?: string) => {
      const res = await fetch(`${t.stack.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/octet-stream' },
        body,
      });
      const text = await res.text();
      const type = res.headers.get('content-type');
      const parsed: unknown = type?.startsWith('application/json') ? JSON.parse(text) : text || null;
      checkResponse(method, path, { status: res.status, contentType: type, body: parsed });
      covered(method, path);
      return { status: res.status, text };
    };
    expect((await raw('PUT', file, 'hello')).status).toBe(204);
    expect(await raw('GET', file)).toEqual({ status: 200, text: 'hello' });
    expect((await api.call('GET', `${W}/files?root=/workspace&path=notes`, { token: key })).status).toBe(200);
    expect((await api.call('GET', `${W}/files?root=/etc`, { token: key })).status).toBe(400);
    expect((await api.call('DELETE', file, { token: key })).status).toBe(204);
    expect((await raw('GET', file)).status).toBe(404);

    // A2A through the proxy, the card, the activity it leaves.
    const sent = await api.call('POST', `${W}/a2a`, {
      token: key,
      body: {
        jsonrpc: '2.0',
        id: 1,
        method: 'message/send',
        params: { message: { role: 'user', messageId: 'm1', parts: [{ kind: 'text', text: 'hi' }] } },
      },
    });
    expect(sent.status).toBe(200);
    expect((await api.call('POST', `${W}/a2a`, { token: key, body: { jsonrpc: '1.0' } })).status).toBe(400);
    expect((await api.call('GET', `${W}/agent-card`, { token: key })).status).toBe(200);
    const activity = await api.call('GET', `${W}/activity?limit=10`, { token: key });
    expect(activity.status).toBe(200);
    expect(activity.body.items.length).toBeGreaterThan(0);
    expect((await api.call('GET', `${W}/activity?before_ts=yesterday`, { token: key })).status).toBe(400);
    expect((await api.call('GET', `${W}/chat-history?peer_id=${id}`, { token: key })).status).toBe(200);
    expect((await api.call('GET', `${W}/chat-history`, { token: key })).status).toBe(400);

    // Secrets, memories, budget.
    expect((await api.call('PUT', `${W}/secrets/OTHER`, { token: key, body: { value: 'v' } })).status).toBe(
      204,
    );
    expect((await api.call('GET', `${W}/secrets`, { token: key })).status).toBe(200);
    expect((await api.call('DELETE', `${W}/secrets/OTHER`, { token: key })).status).toBe(204);
    expect((await api.call('DELETE', `${W}/secrets/bad-key`, { token: key })).status).toBe(400);
    const memory = await api.call('POST', `${W}/memories`, {
      token: key,
      body: { content: 'the key is sekrit' },
    });
    expect(memory.status).toBe(201);
    expect((await api.call('GET', `${W}/memories?limit=5`, { token: key })).status).toBe(200);
    expect((await api.call('DELETE', `${W}/memories/${memory.body.id}`, { token: key })).status).toBe(204);
    expect((await api.call('DELETE', `${W}/memories/${memory.body.id}`, { token: key })).status).toBe(404);
    expect((await api.call('GET', `${W}/budget`, { token: key })).status).toBe(200);
    expect(
      (await api.call('PATCH', `${W}/budget`, { token: key, body: { limitCents: 100000 } })).status,
    ).toBe(200);

    // Schedules.
    const schedule = await api.call('POST', `${W}/schedules`, {
      token: key,
      body: { cron: '@daily', prompt: 'good morning', enabled: false },
    });
    expect(schedule.status).toBe(201);
    const S = `${W}/schedules/${schedule.body.id}`;
    expect((await api.call('GET', `${W}/schedules`, { token: key })).status).toBe(200);
    expect((await api.call('GET', S, { token: key })).status).toBe(200);
    expect((await api.call('PATCH', S, { token: key, body: { prompt: 'good evening' } })).status).toBe(200);
    expect((await api.call('PATCH', S, { token: key, body: { cron: '* * * * * *' } })).status).toBe(400);
    expect((await api.call('POST', `${S}/run`, { token: key })).status).toBe(202);
    expect((await api.call('DELETE', S, { token: key })).status).toBe(204);

    // Plugins from the catalog.
    const plugin = catalog.body.items[0] as { source: string } | undefined;
    expect(plugin).toBeDefined();
    expect(
      (await api.call('POST', `${W}/plugins`, { token: key, body: { source: plugin!.source } })).status,
    ).toBe(202);
    expect((await api.call('GET', `${W}/plugins`, { token: key })).status).toBe(200);
    expect(
      (await api.call('POST', `${W}/plugins`, { token: key, body: { source: 'http://x' } })).status,
    ).toBe(400);

    await waitFor(
      async () => {
        const res = await api.call('GET', `${W}/plugins`, { token: key });
        const items = res.body.items as Array<{ name: string; status: string }>;
        if (!items.some((p) => p.status === 'installed')) throw new Error(JSON.stringify(items));
        return items;
      },
      { timeoutMs: 60_000, intervalMs: 250, describe: 'the catalog plugin to be installed' },
    );
    const installed = plugin!.source.slice('local://'.length);
    expect((await api.call('DELETE', `${W}/plugins/${installed}`, { token: key })).status).toBe(202);
    // Settled before the stop below, which would cut the uninstall short.
    await waitFor(
      async () => {
        const res = await api.call('GET', `${W}/plugins`, { token: key });
        const items = res.body.items as Array<{ name: string; status: string }>;
        if (items.some((p) => p.name === installed)) throw new Error(JSON.stringify(items));
        return true;
      },
      { timeoutMs: 60_000, intervalMs: 250, describe: 'the plugin to be uninstalled' },
    );

    // The agent's registry calls, with a token of the current generation (the agent holds its own).
    const current = await api.call('GET', W, { token: key });
    const agent = await mintWorkspaceToken(t.stack.service.db.pool, id, current.body.generation);
    const bundle = await api.call('GET', '/v1/registry/bootstrap', { token: agent });
    expect(bundle.status).toBe(200);
    const claim = { workspaceId: id, generation: bundle.body.generation, configHash: bundle.body.configHash };
    expect((await api.call('POST', '/v1/registry/register', { token: agent, body: claim })).status).toBe(200);
    expect((await api.call('POST', '/v1/registry/heartbeat', { token: agent, body: claim })).status).toBe(
      200,
    );
    const bootEvent = { ...claim, phase: 'openapi-check', message: 'documented' };
    expect(
      (await api.call('POST', '/v1/registry/boot-events', { token: agent, body: bootEvent })).status,
    ).toBe(200);
    const stale = { ...bootEvent, generation: claim.generation + 1 };
    expect((await api.call('POST', '/v1/registry/boot-events', { token: agent, body: stale })).status).toBe(
      409,
    );
    expect((await api.call('GET', '/v1/workspaces', { token: agent })).status).toBe(403);

    // MCP with the same token: a tool list over Streamable HTTP, and the methods it does not offer.
    const mcp = await fetch(`${t.stack.url}/v1/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${agent}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    const tools = (await mcp.json()) as { result?: { tools: Array<{ name: string }> } };
    checkResponse('POST', '/v1/mcp', {
      status: mcp.status,
      contentType: mcp.headers.get('content-type'),
      body: tools,
    });
    covered('POST', '/v1/mcp');
    expect(mcp.status).toBe(200);
    expect(tools.result?.tools.map((tool) => tool.name)).toContain('list_peers');
    expect(
      (
        await api.call('POST', '/v1/mcp', {
          token: agent,
          body: { jsonrpc: '2.0', id: 2, method: 'tools/list' },
        })
      ).status,
    ).toBe(406);
    expect((await api.call('GET', '/v1/mcp', { token: agent })).status).toBe(405);
    expect((await api.call('DELETE', '/v1/mcp', { token: agent })).status).toBe(405);
    expect((await api.call('GET', '/ui/config.json', { token: key })).status).toBe(200);

    // Lifecycle through the entity.
    expect((await api.call('PATCH', `${W}/config`, { token: key, body: { config: { a: 1 } } })).status).toBe(
      200,
    );
    expect((await api.call('POST', `${W}/stop`, { token: key })).status).toBe(202);
    await waitForStatus(t.stack, key, id, 'stopped');
    expect((await api.call('GET', `${W}/files?root=/workspace`, { token: key })).status).toBe(409);
    expect((await api.call('POST', `${W}/start`, { token: key })).status).toBe(202);
    await waitForStatus(t.stack, key, id, 'online');
    expect((await api.call('POST', `${W}/restart`, { token: key })).status).toBe(202);
    expect((await api.call('DELETE', W, { token: key })).status).toBe(202);
    await waitForStatus(t.stack, key, id, 'deleted');
    expect((await api.call('PUT', `${W}/secrets/GONE`, { token: key, body: { value: 'v' } })).status).toBe(
      404,
    );

    const reached = new Set([...api.seen].map((s) => s.split(' ')[0]!));
    const missed = ROUTES.map((op) => op.operationId)
      .filter((op) => !reached.has(op))
      .sort();
    expect(missed).toEqual(NOT_REACHED);
  });
});
