/**
 * The agent identity check (src/a2a/identity.ts, src/agent/identity.ts): a new connection is handed
 * to a request only once the peer proved it holds the expected workspace generation's credential;
 * a peer that cannot (wrong credential, another workspace, garbage, silence) gets nothing of the
 * request (no body, no credential header) and the call fails as `unreachable`, as an agent that
 * moved. The agent side answers the proof with the real A2A server, and the same kept-alive
 * connection then carries the platform's calls.
 */
import { createHmac } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Failure, probe, readAll, request, upstreamAgent } from '../../src/a2a/proxy.js';
import type { AgentIdentity } from '../../src/a2a/identity.js';
import { MAX_ANSWER_BYTES } from '../../src/a2a/identity.js';
import { agentHooks } from '../../src/agent/bundle.js';
import { createA2AServer } from '../../src/agent/server.js';
import { AgentStats } from '../../src/agent/stats.js';
import { AGENT_CREDENTIAL_HEADER } from '../../src/security/agent-credential.js';
import {
  GENERATION_HEADER,
  IDENTITY_PATH,
  NONCE_HEADER,
  PROOF_HEADER,
  WORKSPACE_HEADER,
} from '../../src/security/agent-identity.js';
import { answeringIdentity, rawIdentityAnswer } from '../support/agent-identity.js';

const A: AgentIdentity = { workspaceId: 'aaaa000011112222', generation: 3, credential: 'cred-of-a-3' };
const B: AgentIdentity = { workspaceId: 'bbbb000011112222', generation: 1, credential: 'cred-of-b-1' };
const lim = { connectTimeoutMs: 2_000, idleTimeoutMs: 2_000 };

let servers: net.Server[] = [];
afterEach(async () => {
  upstreamAgent.destroy();
  await Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((resolve) => {
          (s as http.Server).closeAllConnections?.();
          s.close(() => resolve());
        }),
    ),
  );
  servers = [];
});

async function listen<S extends net.Server>(server: S): Promise<{ server: S; url: string }> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** What an HTTP stand-in saw: every request line, and every credential and body it was sent. */
interface Seen {
  requests: string[];
  credentials: string[];
  bodies: string[];
  connections: number;
}

/** An HTTP agent answering the identity check with `credentialOf`'s credential, and 200 to the rest. */
async function httpAgent(credentialOf: (workspaceId: string, generation: number) => string) {
  const seen: Seen = { requests: [], credentials: [], bodies: [], connections: 0 };
  const server = http.createServer(
    answeringIdentity(credentialOf, (req, res) => {
      seen.requests.push(`${req.method} ${req.url}`);
      const credential = req.headers[AGENT_CREDENTIAL_HEADER];
      if (typeof credential === 'string') seen.credentials.push(credential);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (chunks.length) seen.bodies.push(Buffer.concat(chunks).toString('utf8'));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
    }),
  );
  server.on('connection', () => seen.connections++);
  return { ...(await listen(server)), seen };
}

/** A raw TCP peer: `answer` decides what (if anything) to write back to the first request head. */
async function rawPeer(answer: (head: string, socket: net.Socket) => void) {
  const received: string[] = [];
  const server = net.createServer((socket) => {
    let buf = '';
    let answered = false;
    socket.on('error', () => undefined);
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      received.push(d.toString('latin1'));
      if (!answered && buf.includes('\r\n\r\n')) {
        answered = true;
        answer(buf.slice(0, buf.indexOf('\r\n\r\n')), socket);
      }
    });
  });
  return { ...(await listen(server)), received: () => received.join('') };
}

/** The real A2A server of the agent runtime, as workspace generation `id`. */
async function realAgent(id: AgentIdentity = A) {
  const server = createA2AServer({
    identity: {
      workspaceId: id.workspaceId,
      name: 'a',
      runtime: 'echo',
      generation: id.generation,
      configHash: 'h',
    },
    hooks: agentHooks({}),
    stats: new AgentStats(),
    cardUrl: 'http://agent.invalid/',
    credential: id.credential,
  });
  return listen(server);
}

const post = (url: string, id: AgentIdentity, limits = lim) =>
  request(
    new URL('/', url),
    {
      method: 'POST',
      identity: id,
      headers: {
        'content-type': 'application/json',
        'content-length': '13',
        [AGENT_CREDENTIAL_HEADER]: id.credential,
      },
    },
    Buffer.from('{"secret":42}'),
    limits,
  );

async function refused(p: Promise<unknown>): Promise<Failure> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Failure);
  // Not reached: the proxy re-reads the endpoint and answers 502 agent_unreachable, never 401.
  expect(['unreachable', 'connect_timeout']).toContain((err as Failure).kind);
  expect((err as Failure).mayHaveReached).toBe(false);
  return err as Failure;
}

describe('identity check, platform side', () => {
  it('the genuine agent: the call goes through, and its connection is reused without a new check', async () => {
    const agent = await httpAgent((ws, gen) =>
      ws === A.workspaceId && gen === A.generation ? A.credential : '',
    );
    let checks = 0;
    agent.server.prependListener('request', (req: http.IncomingMessage) => {
      if (req.url === IDENTITY_PATH) checks++;
    });
    for (let i = 0; i < 3; i++) {
      const res = await post(agent.url, A);
      expect(res.statusCode).toBe(200);
      expect(await readAll(res, 1024)).toBe('{"ok":true}');
    }
    expect(agent.seen.connections).toBe(1);
    expect(checks).toBe(1);
    expect(agent.seen.credentials).toEqual([A.credential, A.credential, A.credential]);
  });

  it("a verified connection is reused only for its workspace generation: another's gets its own", async () => {
    // One server answering for both (as a shared address would): each identity needs its own proof.
    const creds = new Map([
      [`${A.workspaceId}:${A.generation}`, A.credential],
      [`${B.workspaceId}:${B.generation}`, B.credential],
    ]);
    const agent = await httpAgent((ws, gen) => creds.get(`${ws}:${gen}`) ?? '');
    for (const id of [A, B, A, B]) (await post(agent.url, id)).resume();
    expect(agent.seen.connections).toBe(2);
    // The next generation of A is not the one verified: a connection of its own.
    const next = { ...A, generation: 4, credential: 'cred-of-a-4' };
    creds.set(`${A.workspaceId}:4`, next.credential);
    (await post(agent.url, next)).resume();
    expect(agent.seen.connections).toBe(3);
  });

  it('an agent holding another credential (an impostor at the address): nothing sent, unreachable', async () => {
    const impostor = await httpAgent(() => 'cred-of-someone-else');
    const err = await refused(post(impostor.url, A));
    expect(err.message).toMatch(/agent identity not proven: a wrong proof/);
    expect(impostor.seen.requests).toEqual([]);
    expect(impostor.seen.credentials).toEqual([]);
    expect(impostor.seen.bodies).toEqual([]);
  });

  it('the real agent of another workspace at the address refuses to prove it is A (421): unreachable', async () => {
    const b = await realAgent(B);
    let requests = 0;
    b.server.on('request', (req: http.IncomingMessage) => {
      if (req.url !== IDENTITY_PATH) requests++;
    });
    const err = await refused(post(b.url, A));
    expect(err.message).toMatch(/agent identity not proven: answered 421/);
    expect(requests).toBe(0);
  });

  it.each([
    ['garbage', 'SSH-2.0-OpenSSH_9.6\r\n\r\n', /not an HTTP answer/],
    ['a 200 without a proof', 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n', /answered 200/],
    ['a 204 without a proof', 'HTTP/1.1 204 No Content\r\n\r\n', /no proof/],
    ['a proof of the wrong shape', `HTTP/1.1 204 No Content\r\n${PROOF_HEADER}: x\r\n\r\n`, /a wrong proof/],
    [
      'an answer with a body',
      `HTTP/1.1 204 No Content\r\n${PROOF_HEADER}: x\r\ncontent-length: 5\r\n\r\n`,
      /a body/,
    ],
    ['an endless head', `HTTP/1.1 204 No Content\r\nx: ${'y'.repeat(MAX_ANSWER_BYTES)}`, /too long/],
  ])('%s: the connection is destroyed, nothing of the request sent', async (_name, answer, reason) => {
    const peer = await rawPeer((_head, socket) => socket.write(answer));
    const err = await refused(post(peer.url, A));
    expect(err.message).toMatch(reason);
    // Only the check's request ever reached the peer: no credential, no body.
    expect(peer.received()).toMatch(new RegExp(`^GET ${IDENTITY_PATH} HTTP/1.1\\r\\n`));
    expect(peer.received()).not.toContain(A.credential);
    expect(peer.received()).not.toContain('secret');
  });

  it('a correct proof with bytes after it: refused (they would be read as the next answer)', async () => {
    const peer = await rawPeer((head, socket) => {
      socket.write(`${rawIdentityAnswer(head, A.credential)}HTTP/1.1 200 OK\r\n\r\n`);
    });
    expect((await refused(post(peer.url, A))).message).toMatch(/bytes after the answer/);
    expect(peer.received()).not.toContain(A.credential);
  });

  it('no answer: the check times out, nothing of the request sent', async () => {
    const peer = await rawPeer(() => undefined);
    const started = Date.now();
    await refused(post(peer.url, A, { connectTimeoutMs: 300, idleTimeoutMs: 5_000 }));
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(peer.received()).not.toContain(A.credential);
    expect(peer.received()).not.toContain('secret');
  });

  it('a slow but genuine answer within the deadline: the call goes through on that connection', async () => {
    const bodies: string[] = [];
    const peer = await rawPeer((head, socket) => {
      setTimeout(() => {
        // After the proof, read the real request and answer it.
        socket.on('data', (d) => {
          bodies.push(d.toString('latin1'));
          if (d.toString('latin1').includes('{"secret":42}')) {
            socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}');
          }
        });
        socket.write(rawIdentityAnswer(head, A.credential));
      }, 400);
    });
    const res = await post(peer.url, A, { connectTimeoutMs: 2_000, idleTimeoutMs: 2_000 });
    expect(res.statusCode).toBe(200);
    expect(await readAll(res, 64)).toBe('{}');
    expect(bodies.join('')).toContain(A.credential);
  });

  it('a connection refused keeps its own error: unreachable (ECONNREFUSED)', async () => {
    const { url, server } = await listen(net.createServer());
    await new Promise<void>((resolve) => server.close(() => resolve()));
    servers = servers.filter((s) => s !== server);
    const err = await refused(post(url, A));
    expect(err.message).toBe('ECONNREFUSED');
  });

  it('the retry over a new connection (a dropped kept-alive one) is checked too', async () => {
    // Connection 1: the genuine agent, which drops the connection on its second request; from
    // connection 2 on, an impostor answers the check.
    let conns = 0;
    const after: string[] = [];
    const server = net.createServer((socket) => {
      const conn = ++conns;
      let buf = '';
      let reqs = 0;
      socket.on('error', () => undefined);
      socket.on('data', (d) => {
        buf += d.toString('latin1');
        if (conn > 1) after.push(d.toString('latin1'));
        while (buf.includes('\r\n\r\n')) {
          const head = buf.slice(0, buf.indexOf('\r\n\r\n'));
          buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
          if (head.startsWith(`GET ${IDENTITY_PATH} `)) {
            socket.write(rawIdentityAnswer(head, conn === 1 ? A.credential : 'impostor'));
          } else if (++reqs > 1) socket.resetAndDestroy();
          else socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}');
        }
      });
    });
    const { url } = await listen(server);
    const get = () =>
      request(
        new URL('/x', url),
        { method: 'GET', identity: A, headers: { [AGENT_CREDENTIAL_HEADER]: A.credential } },
        null,
        lim,
      );
    await readAll(await get(), 64);
    await refused(get());
    expect(conns).toBe(2);
    expect(after.join('')).not.toContain(A.credential);
  });

  it('a request naming no identity gets no connection (fail closed)', async () => {
    const agent = await httpAgent(() => A.credential);
    const noIdentity = request(
      new URL('/', agent.url),
      { method: 'GET', identity: undefined as unknown as AgentIdentity },
      null,
      lim,
    );
    expect((await refused(noIdentity)).message).toMatch(/no valid identity/);
    expect(agent.seen.connections).toBe(0);
  });

  it('the liveness probe counts only the proven agent: an impostor answering /health 200 is unreachable', async () => {
    const genuine = await httpAgent(() => A.credential);
    expect(await probe(genuine.url, A, 2_000)).toBe(true);
    const impostor = await httpAgent(() => 'cred-of-someone-else');
    expect(await probe(impostor.url, A, 2_000)).toBe(false);
    expect(impostor.seen.requests).toEqual([]);
  });
});

describe('identity check, agent side (the real A2A server)', () => {
  const ask = (url: string, headers: Record<string, string>) =>
    fetch(new URL(IDENTITY_PATH, url), { headers, signal: AbortSignal.timeout(5_000) });

  it('answers the proof (HMAC-SHA256 of nonce, workspace, generation under its credential) without the credential header', async () => {
    const { url } = await realAgent();
    const nonce = 'n'.repeat(43);
    const res = await ask(url, {
      [NONCE_HEADER]: nonce,
      [WORKSPACE_HEADER]: A.workspaceId,
      [GENERATION_HEADER]: String(A.generation),
    });
    expect(res.status).toBe(204);
    const expected = createHmac('sha256', A.credential)
      .update(`wo-agent-identity/1\n${nonce}\n${A.workspaceId}\n${A.generation}`)
      .digest('base64url');
    expect(res.headers.get(PROOF_HEADER)).toBe(expected);
  });

  it('asked for another workspace or generation: 421 and no proof; a malformed nonce: 400', async () => {
    const { url } = await realAgent();
    const nonce = 'n'.repeat(43);
    for (const [ws, gen] of [
      [B.workspaceId, String(A.generation)],
      [A.workspaceId, String(A.generation + 1)],
    ] as const) {
      const res = await ask(url, { [NONCE_HEADER]: nonce, [WORKSPACE_HEADER]: ws, [GENERATION_HEADER]: gen });
      expect(res.status).toBe(421);
      expect(res.headers.get(PROOF_HEADER)).toBeNull();
    }
    for (const bad of ['short', 'has space in it but is long enough', '']) {
      const res = await ask(url, {
        [NONCE_HEADER]: bad,
        [WORKSPACE_HEADER]: A.workspaceId,
        [GENERATION_HEADER]: String(A.generation),
      });
      expect(res.status).toBe(400);
      expect(res.headers.get(PROOF_HEADER)).toBeNull();
    }
  });

  it('an agent without a credential proves nothing', async () => {
    const { url } = await realAgent({ ...A, credential: '' });
    const res = await ask(url, {
      [NONCE_HEADER]: 'n'.repeat(43),
      [WORKSPACE_HEADER]: A.workspaceId,
      [GENERATION_HEADER]: String(A.generation),
    });
    expect(res.status).toBe(400);
    expect(res.headers.get(PROOF_HEADER)).toBeNull();
  });

  it("the platform's check passes against it, and the same connection then carries credentialed calls", async () => {
    const { url, server } = await realAgent();
    let connections = 0;
    server.on('connection', () => connections++);
    const send = (text: string) => {
      const body = Buffer.from(
        JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'message/send',
          params: {
            message: { kind: 'message', role: 'user', messageId: text, parts: [{ kind: 'text', text }] },
          },
        }),
      );
      return request(
        new URL('/', url),
        {
          method: 'POST',
          identity: A,
          headers: {
            'content-type': 'application/json',
            'content-length': String(body.length),
            [AGENT_CREDENTIAL_HEADER]: A.credential,
          },
        },
        body,
        lim,
      );
    };
    for (const text of ['one', 'two']) {
      const res = await send(text);
      expect(res.statusCode).toBe(200);
      expect(await readAll(res, 64 * 1024)).toContain(`received: ${text}`);
    }
    expect(connections).toBe(1);
    // A platform expecting another generation of the same workspace is refused a connection.
    await refused(
      request(new URL('/health', url), { method: 'GET', identity: { ...A, generation: 9 } }, null, lim),
    );
  });
});
