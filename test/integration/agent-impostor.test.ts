/**
 * A recorded endpoint that went stale and is someone else's now must not get a workspace's calls.
 * On docker: a workspace's container stops behind the platform's back (dockerd restarted, say; the
 * row still says online), and whatever binds its freed host port next (another tenant's agent;
 * here a host process standing in for it) answers at the recorded address. A call to the workspace
 * must not hand that impostor the caller's message or the workspace's agent credential, nor hand
 * its answer to the caller: the proxy answers 502 agent_unreachable (and the liveness check, which
 * probes the impostor too, does not count its 200 either). A healthy workspace is unaffected and
 * its calls keep reusing their kept-alive connection.
 */
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { upstreamAgent } from '../../src/a2a/proxy.js';
import { AGENT_CREDENTIAL_HEADER } from '../../src/security/agent-credential.js';
import { waitFor } from '../setup/wait-for.js';
import { useStack, waitForStatus } from '../support/stack.js';
import { messageSend as send } from '../support/a2a-message.js';

interface Recorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * A hostile agent at `port` on the host's loopback: records every request whole, and answers each
 * with 200 and a JSON-RPC result of its own (what a tenant's agent that logs everything would do).
 */
async function impostorAt(port: number): Promise<{ seen: Recorded[]; close(): Promise<void> }> {
  const seen: Recorded[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          result: {
            kind: 'message',
            role: 'agent',
            messageId: 'x',
            parts: [{ kind: 'text', text: 'gotcha' }],
          },
        }),
      );
    });
  });
  // The port is released as the container stops; bound as soon as the kernel lets it go.
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const onError = () => resolve(false);
        server.once('error', onError);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', onError);
          resolve(true);
        });
      }),
    { timeoutMs: 15_000, intervalMs: 100, describe: `127.0.0.1:${port} to be free for the impostor` },
  );
  return {
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('docker: an impostor at a stale endpoint', () => {
  const t = useStack();

  async function createOnline(name: string) {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name, backend: 'docker' },
    });
    expect(created.status).toBe(202);
    return waitForStatus(t.stack, t.key, created.body.id as string, 'online');
  }

  const a2a = (id: string, text: string) =>
    t.stack.api.call('POST', `/v1/workspaces/${id}/a2a`, { token: t.key, body: send(text) });

  it('gets neither the body nor the credential; the caller gets 502 agent_unreachable; healthy calls reuse connections', async () => {
    const [victim, healthy] = await Promise.all([createOnline('victim'), createOnline('healthy')]);
    // The victim was called before: the API holds a kept-alive connection to its agent.
    expect((await a2a(victim.id, 'before')).status).toBe(200);

    // Stopped behind the service's back: the row still says online, at the same endpoint.
    await t.stack.docker.getContainer(`ws-${victim.id}-g${victim.generation}`).stop({ t: 1 });
    const port = Number(new URL(victim.endpoint as string).port);
    const impostor = await impostorAt(port);
    try {
      const row = await t.stack.api.call('GET', `/v1/workspaces/${victim.id}`, { token: t.key });
      expect(row.body).toMatchObject({ status: 'online', endpoint: victim.endpoint });

      const res = await a2a(victim.id, 'the secret plan');
      // Whatever the impostor saw, it never saw the call: no body, no credential (its identity
      // check, a bodiless GET, is all it may get; the liveness probe's too).
      for (const r of impostor.seen) {
        expect(r.headers[AGENT_CREDENTIAL_HEADER], `${r.method} ${r.url}`).toBeUndefined();
        expect(r.body, `${r.method} ${r.url}`).toBe('');
        expect(r.method, r.url).toBe('GET');
        expect(r.url).not.toBe('/health');
      }
      expect(JSON.stringify(impostor.seen)).not.toContain('the secret plan');
      expect(res.status).toBe(502);
      expect(res.body.error.code).toBe('agent_unreachable');
      expect(JSON.stringify(res.body)).not.toContain('gotcha');
      // The impostor was asked to prove itself (so the test did reach it), and could not.
      expect(impostor.seen.length).toBeGreaterThan(0);
      // The liveness check counted it as unreachable, not as the agent answering /health.
      const after = await waitForStatus(t.stack, t.key, victim.id, (w) => w.status !== 'online', 30_000);
      expect(['degraded', 'offline']).toContain(after.status);
    } finally {
      await impostor.close();
    }

    // The healthy workspace: answered, over the connection already verified (no new one per call).
    expect((await a2a(healthy.id, 'warm')).status).toBe(200);
    let created = 0;
    const createConnection = upstreamAgent.createConnection.bind(upstreamAgent);
    upstreamAgent.createConnection = (options, cb) => {
      created++;
      return createConnection(options, cb);
    };
    try {
      for (let i = 0; i < 5; i++) {
        const res = await a2a(healthy.id, `call ${i}`);
        expect(res.status).toBe(200);
        expect(res.body.result.parts[0].text).toContain(`received: call ${i}`);
      }
    } finally {
      upstreamAgent.createConnection = createConnection;
    }
    expect(created).toBe(0);
  });
});
