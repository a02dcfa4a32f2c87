/**
 * The A2A proxy on the real stack, the same test for each backend: round trip, streaming that is
 * not buffered, peer metadata for workspace callers, 409 when stopped, 502 + liveness when the agent
 * dies, the body limit and org isolation.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import { createOrg, waitForStatus } from '../support/stack.js';
import {
  CONCURRENT_BLOCK,
  PARITY_BACKENDS,
  freezeAgent,
  useParityStack,
  type ParityFixture,
} from './backends.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

const AGENT = { agent: { streamChunks: 5, streamIntervalMs: 300 } };

const send = (text: string, extra: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id: 1,
  method: 'message/send',
  params: { message: { role: 'user', messageId: 'm1', parts: [{ kind: 'text', text }], ...extra } },
});

async function createOnline(t: ParityFixture, name: string, extra: Record<string, unknown> = {}) {
  const created = await t.stack.api.call('POST', '/v1/workspaces', {
    token: t.key,
    body: { name, backend: t.backend, config: AGENT, ...extra },
  });
  expect(created.status).toBe(202);
  return waitForStatus(t.stack, t.key, created.body.id as string, 'online');
}

/** Kills the agent process inside the workspace, leaving the platform to find out by itself. */
async function killAgent(t: ParityFixture, w: { id: string; generation: number; instanceId: string }) {
  if (t.backend === 'docker') {
    // The agent is PID 1 of the runtime container: killing it is the container dying.
    await t.stack.docker.getContainer(`ws-${w.id}-g${w.generation}`).kill({ signal: 'SIGKILL' });
    return;
  }
  const container = await t.sim!.instanceContainer(w.instanceId);
  if (!container) throw new Error(`no sim container for ${w.instanceId}`);
  // The agent runs under the VM's init; find it by its script name and kill it (the VM stays up).
  const script = `for p in $(ps -o pid,args | grep '[a]gent.mjs' | awk '{print $1}'); do kill -9 $p; done`;
  execFileSync('docker', ['exec', container, 'sh', '-c', script]);
}

describe.each(PARITY_BACKENDS)('%s A2A proxy', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  it('round trip, unbuffered stream, peer metadata, agent card, limits, isolation, stop → 409', async () => {
    const [a, b] = await Promise.all([createOnline(t, 'callee'), createOnline(t, 'caller')]);
    const url = `${t.stack.url}/v1/workspaces/${a.id}/a2a`;

    // message/send round trip through the proxy (an org key: no peer).
    const sent = await t.stack.api.call('POST', `/v1/workspaces/${a.id}/a2a`, {
      token: t.key,
      body: send('hello there'),
    });
    expect(sent.status).toBe(200);
    expect(sent.body.id).toBe(1);
    expect(sent.body.result.parts[0].text).toBe(
      `workspace callee (${a.id}) on runtime ${a.runtime} received: hello there`,
    );
    expect(sent.body.result.metadata.peer).toBeNull();
    // A peer the caller claims is not forwarded: only the platform names one (here, none).
    const claimed = await t.stack.api.call('POST', `/v1/workspaces/${a.id}/a2a`, {
      token: t.key,
      body: send('not from a peer', { metadata: { peer: { id: b.id, name: 'caller' } } }),
    });
    expect(claimed.status).toBe(200);
    expect(claimed.body.result.metadata.peer).toBeNull();

    // Any method is forwarded: the agent's own JSON-RPC error comes back as is.
    const unknown = await t.stack.api.call('POST', `/v1/workspaces/${a.id}/a2a`, {
      token: t.key,
      body: { jsonrpc: '2.0', id: 7, method: 'tasks/frobnicate', params: { id: 'x' } },
    });
    expect(unknown.status).toBe(200);
    expect(unknown.body.error.code).toBe(-32601);

    // message/stream: the first chunk arrives long before the agent has finished (5 × 300 ms).
    const started = Date.now();
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...send('stream me'), method: 'message/stream' }),
      signal: AbortSignal.timeout(30_000),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    const arrivals: { at: number; text: string }[] = [];
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arrivals.push({ at: Date.now(), text: decoder.decode(value, { stream: true }) });
    }
    const all = arrivals.map((x) => x.text).join('');
    const events = [...all.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]!));
    // The task, then one status update per chunk (0.3 shapes: the caller sent no A2A-Version).
    expect(events.map((e) => e.result.kind)).toEqual(['task', ...Array(5).fill('status-update')]);
    const updates = events.slice(1);
    expect(updates.map((e) => e.result.status.message.parts[0].text.slice(0, 12))).toEqual([
      'chunk 1 of 5',
      'chunk 2 of 5',
      'chunk 3 of 5',
      'chunk 4 of 5',
      'chunk 5 of 5',
    ]);
    expect(events.at(-1).result.final).toBe(true);
    const first = arrivals.find((x) => x.text.includes('chunk 1 of 5'))!;
    const last = arrivals.at(-1)!;
    expect(first.text).toContain('chunk 1 of 5');
    expect(first.text).not.toContain('chunk 5 of 5');
    // Four more intervals of 300 ms remained when the first chunk arrived.
    expect(last.at - first.at).toBeGreaterThanOrEqual(900);
    expect(first.at - started).toBeLessThan(last.at - started - 900);

    // A workspace caller: the forwarded message names it as the peer (whatever the caller claimed).
    const token = await mintWorkspaceToken(t.stack.service.db.pool, b.id, b.generation);
    const peerCall = await t.stack.api.call('POST', `/v1/workspaces/${a.id}/a2a`, {
      token,
      body: send('hi from a peer', { metadata: { peer: { id: 'forged' }, trace: 'kept' } }),
    });
    expect(peerCall.status).toBe(200);
    expect(peerCall.body.result.metadata.peer).toEqual({
      id: b.id,
      name: 'caller',
      role: 'peer',
      agentCardUrl: expect.stringMatching(new RegExp(`^http://[^/]+/v1/workspaces/${b.id}/agent-card$`)),
    });

    // A body the proxy must rewrite (a workspace caller's; a claimed peer) nested too deep to write
    // again: the caller's error, 400 naming the body, not a 500.
    const deep = `{"jsonrpc":"2.0","id":2,"method":"message/send","params":{"message":{"role":"user","parts":[],"metadata":{"peer":null,"x":${'['.repeat(10_000)}${']'.repeat(10_000)}}}}}`;
    for (const caller of [token, t.key]) {
      const tooDeep = await t.stack.api.call('POST', `/v1/workspaces/${a.id}/a2a`, {
        token: caller,
        rawBody: deep,
      });
      expect(tooDeep.status, JSON.stringify(tooDeep.body)).toBe(400);
      expect(tooDeep.body.error.field).toBe('body');
    }

    // The agent card, proxied (its url points at the proxy, not at the agent).
    const card = await t.stack.api.call('GET', `/v1/workspaces/${a.id}/agent-card`, { token: t.key });
    expect(card.status).toBe(200);
    expect(card.body.name).toBe('callee');
    expect(card.body.capabilities.streaming).toBe(true);
    expect(card.body.url).toBe(`${t.stack.url}/v1/workspaces/${a.id}/a2a`);
    const peerCard = await t.stack.api.call(
      'GET',
      new URL(peerCall.body.result.metadata.peer.agentCardUrl).pathname,
      {
        token,
      },
    );
    expect(peerCard.status).toBe(200);
    expect(peerCard.body.name).toBe('caller');

    // Body limit: 1 MiB.
    const big = await t.stack.api.call('POST', `/v1/workspaces/${a.id}/a2a`, {
      token: t.key,
      body: send('x'.repeat(1024 * 1024 + 10)),
    });
    expect(big.status).toBe(413);
    const bad = await t.stack.api.call('POST', `/v1/workspaces/${a.id}/a2a`, {
      token: t.key,
      rawBody: '{not json',
    });
    expect(bad.status).toBe(400);

    // Another org sees nothing: 404 on every route.
    const other = await createOrg(t.stack, 'other');
    for (const [method, path] of [
      ['POST', `/v1/workspaces/${a.id}/a2a`],
      ['GET', `/v1/workspaces/${a.id}/agent-card`],
    ] as const) {
      const r = await t.stack.api.call(method, path, {
        token: other.apiKey,
        body: method === 'POST' ? send('x') : undefined,
      });
      expect(r.status, `${method} ${path}`).toBe(404);
    }

    // Stopped → 409 with Retry-After.
    expect((await t.stack.api.call('POST', `/v1/workspaces/${a.id}/stop`, { token: t.key })).status).toBe(
      202,
    );
    await waitForStatus(t.stack, t.key, a.id, 'stopped');
    const stopped = await t.stack.api.call('POST', `/v1/workspaces/${a.id}/a2a`, {
      token: t.key,
      body: send('anyone?'),
    });
    expect(stopped.status).toBe(409);
    expect(stopped.body.error.code).toBe('not_online');
    expect(Number(stopped.headers.get('retry-after'))).toBeGreaterThan(0);
    const stoppedCard = await t.stack.api.call('GET', `/v1/workspaces/${a.id}/agent-card`, { token: t.key });
    expect(stoppedCard.status).toBe(409);
  });

  it('a hung agent answers 504; a dead agent: the next call answers 502 and the workspace leaves online', async () => {
    const w = await createOnline(t, 'doomed');
    const ok = await t.stack.api.call('POST', `/v1/workspaces/${w.id}/a2a`, {
      token: t.key,
      body: send('x'),
    });
    expect(ok.status).toBe(200);

    // An agent that accepts the connection but never answers: 504 after the idle timeout. This
    // stack's own (the other backend's block runs at once: a shared default, set back by the one
    // that ended first, left a hung call waiting the full 30 s).
    const settings = t.stack.service.apiSettings!;
    settings.a2a = { ...settings.a2a, idleTimeoutMs: 1_500 };
    try {
      await freezeAgent(t, w, true);
      const hung = await t.stack.api.call('POST', `/v1/workspaces/${w.id}/a2a`, {
        token: t.key,
        body: send('wake up'),
      });
      expect(hung.status).toBe(504);
      expect(hung.body.error.code).toBe('agent_timeout');
    } finally {
      delete settings.a2a?.idleTimeoutMs;
      await freezeAgent(t, w, false);
    }
    const thawed = await t.stack.api.call('POST', `/v1/workspaces/${w.id}/a2a`, {
      token: t.key,
      body: send('back?'),
    });
    expect(thawed.status).toBe(200);

    await killAgent(t, w);
    const failed = await t.stack.api.call('POST', `/v1/workspaces/${w.id}/a2a`, {
      token: t.key,
      body: send('still there?'),
    });
    expect(failed.status).toBe(502);
    expect(failed.body.error.code).toMatch(/^agent_/);
    const after = await waitForStatus(t.stack, t.key, w.id, (x) => x.status !== 'online', 30_000);
    expect(['degraded', 'offline']).toContain(after.status);

    const activity = await t.stack.api.call('GET', `/v1/workspaces/${w.id}/activity?type=a2a`, {
      token: t.key,
    });
    expect(activity.body.items.map((i: { status: number }) => i.status)).toEqual([502, 200, 504, 200]);
  });
});
