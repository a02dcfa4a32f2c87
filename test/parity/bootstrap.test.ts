/**
 * The bootstrap token and the tokens it yields, end to end on both backends: a lost bootstrap
 * answer does not strand a boot, the bundle never leaves the agent's private state dir through the
 * files API, a reboot re-registers with the saved workspace token, a new generation revokes the old
 * tokens, and the URLs handed to peers never come from the caller's Host header.
 */
import http from 'node:http';
import { describe, expect, test } from 'vitest';
import { waitFor } from '../setup/wait-for.js';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import { waitForStatus, type Stack } from '../support/stack.js';
import {
  bootstrapTokenOf,
  CONCURRENT_BLOCK,
  PARITY_BACKENDS,
  stateFileOf,
  useParityStack,
} from './backends.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

// The contract's JSON answers are objects; tests read fields freely from them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- test convenience for reading JSON answers
type Json = any;

/** A request with a Host header of the caller's choosing (fetch would not send a forged one). */
function rawRequest(
  url: string,
  opts: { method: string; token: string; host: string; body?: unknown },
): Promise<{ status: number; body: Json }> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = http.request(
      url,
      {
        method: opts.method,
        headers: {
          host: opts.host,
          authorization: `Bearer ${opts.token}`,
          ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
        },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

const sendAs = (stack: Stack, id: string, token: string, host = '127.0.0.1') =>
  rawRequest(`${stack.url}/v1/workspaces/${id}/a2a`, {
    method: 'POST',
    token,
    host,
    body: {
      jsonrpc: '2.0',
      id: 1,
      method: 'message/send',
      params: { message: { role: 'user', messageId: 'm1', parts: [{ kind: 'text', text: 'hi' }] } },
    },
  });

describe.each(PARITY_BACKENDS)('%s bootstrap and tokens', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  it('a bootstrap answer lost on the way is fetched again (same token), then the token is spent at registration', async () => {
    const { stack } = t;
    // The agent waits 15 s between its fetch and registering: the re-fetch window stays open for
    // the test's own fetch whichever of the two comes first.
    const created = await stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'boot-once', backend, config: { agent: { materializeDelayMs: 15_000 } } },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    const bootToken = await waitFor(() => bootstrapTokenOf(backend, stack.docker, id, 1), {
      timeoutMs: 60_000,
      intervalMs: 100,
      describe: 'the generation 1 resource to exist with its bootstrap token',
    });

    // A fetch whose answer is lost (this test discards it): the agent's own fetch still works, and
    // every fetch inside the window answers the same workspace token.
    const lost = await stack.api.call('GET', '/v1/registry/bootstrap', { token: bootToken });
    expect(lost.status).toBe(200);
    expect(lost.body.generation).toBe(1);
    const wsToken: string = lost.body.workspaceToken;
    const again = await stack.api.call('GET', '/v1/registry/bootstrap', { token: bootToken });
    expect(again.status).toBe(200);
    expect(again.body.workspaceToken).toBe(wsToken);

    await waitForStatus(stack, t.key, id, 'online');
    const saved = JSON.parse(
      (await stateFileOf(backend, stack.docker, id, 1, 'bundle.json')).content.toString(),
    );
    expect(saved.workspaceToken).toBe(wsToken);
    // Registered: delivery is proven and the bootstrap token is spent, at authentication already.
    expect((await stack.api.call('GET', '/v1/registry/bootstrap', { token: bootToken })).status).toBe(401);
    expect((await stack.api.call('GET', '/v1/workspaces', { token: bootToken })).status).toBe(401);

    expect((await stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(stack, t.key, id, 'deleted');
  });

  it('an unknown or malformed wo_boot_ token is refused at authentication (401)', async () => {
    for (const forged of ['wo_boot_', 'wo_boot_not-a-token', `wo_boot_${'A'.repeat(32)}`]) {
      for (const [method, path] of [
        ['GET', '/v1/workspaces'],
        ['GET', '/v1/registry/bootstrap'],
        ['POST', '/v1/orgs'],
      ] as const) {
        const res = await t.stack.api.call(method, path, {
          token: forged,
          body: method === 'POST' ? {} : undefined,
        });
        expect(res.status, `${method} ${path} with ${forged}`).toBe(401);
      }
    }
  });

  // The test's own expect: blocks run concurrently, and expect.soft must know which test it is in.
  it('bundle not served by the files API; URLs ignore Host; reboot re-registers; a new generation revokes the old tokens', async ({
    expect,
  }) => {
    const { stack } = t;
    const created = await stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'tokens', backend },
    });
    const id: string = created.body.id;
    await waitForStatus(stack, t.key, id, 'online');
    // Stands in for generation 1's agent as an A2A caller (its own token is on the resource).
    const g1Token = await mintWorkspaceToken(stack.service.db.pool, id, 1);

    // The files API neither lists nor reads the bundle or the secrets.
    const files = (q: string) => stack.api.call('GET', `/v1/workspaces/${id}/files${q}`, { token: t.key });
    for (const root of ['/configs', '/workspace']) {
      const listed = await files(`?root=${root}&depth=5`);
      expect(listed.status).toBe(200);
      const paths: string[] = listed.body.items.map((i: { path: string }) => i.path);
      expect.soft(paths.filter((p) => /(^|\/)\.wo(\/|$)|bundle\.json|secrets\.env/.test(p))).toEqual([]);
    }
    for (const path of ['.wo/bundle.json', '.wo/secrets.env', '.wo', './.wo/bundle.json']) {
      const read = await files(`/content?root=/configs&path=${encodeURIComponent(path)}`);
      expect.soft(read.status, `read ${path}`).toBe(400);
      const list = await files(`?root=/configs&path=${encodeURIComponent(path)}&depth=1`);
      expect.soft(list.status, `list ${path}`).toBe(400);
    }

    // The URLs handed out come from configuration (here: the listen URL), never from Host.
    const base = `${stack.url}/v1/workspaces/${id}`;
    const card = await rawRequest(`${base}/agent-card`, {
      method: 'GET',
      token: t.key,
      host: 'evil.example',
    });
    expect(card.status).toBe(200);
    expect.soft(card.body.url).toBe(`${base}/a2a`);
    const peerCall = await sendAs(stack, id, g1Token, 'evil.example:666');
    expect(peerCall.status).toBe(200);
    expect.soft(peerCall.body.result.metadata.peer).toMatchObject({ id, agentCardUrl: `${base}/agent-card` });

    // Stop/start of the same generation: the agent re-registers with the workspace token it saved.
    expect((await stack.api.call('POST', `/v1/workspaces/${id}/stop`, { token: t.key })).status).toBe(202);
    await waitForStatus(stack, t.key, id, 'stopped');
    expect((await stack.api.call('POST', `/v1/workspaces/${id}/start`, { token: t.key })).status).toBe(202);
    const restarted = await waitForStatus(stack, t.key, id, 'online');
    expect(restarted.generation).toBe(1);
    expect((await sendAs(stack, id, g1Token)).status).toBe(200);

    // A new generation revokes the old one's tokens: registry and A2A answer 401 at authentication.
    const restart = await stack.api.call('POST', `/v1/workspaces/${id}/restart`, { token: t.key });
    expect(restart.status).toBe(202);
    const g2 = await waitForStatus(stack, t.key, id, (w) => w.status === 'online' && w.generation === 2);
    const heartbeat = await stack.api.call('POST', '/v1/registry/heartbeat', {
      token: g1Token,
      body: { workspaceId: id, generation: 1, configHash: g2.configHash, runtimeState: 'ok' },
    });
    expect(heartbeat.status).toBe(401);
    expect((await sendAs(stack, id, g1Token)).status).toBe(401);
    // The new generation's own token calls fine.
    const g2Token = await mintWorkspaceToken(stack.service.db.pool, id, 2);
    expect((await sendAs(stack, id, g2Token)).status).toBe(200);

    expect((await stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(stack, t.key, id, 'deleted');
  });
});
