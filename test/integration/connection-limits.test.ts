/**
 * A flood of idle connections (no request ever completed, so no token is needed): past
 * API_MAX_CONNECTIONS, or past API_MAX_CONNECTIONS_PER_CLIENT from one peer address, a new
 * connection is answered `503 too_many_connections` and closed, and a request sent on it never
 * runs; the connections already open are served as before, and once the flood goes new ones are
 * accepted again. With the default caps a process whose descriptor limit is low keeps descriptors
 * for its own work: before the caps, a one-process deployment (API + worker, `./dev up`) flooded
 * past its limit aborted when its workflow sandbox could not open an event loop.
 * Peers are told apart by loopback source addresses (127.0.0.x: all of 127/8 is this host's).
 */
import { request, Agent } from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { registry } from '../../src/api/metrics.js';
import { freePort } from '../setup/free-port.js';
import { waitFor } from '../setup/wait-for.js';
import { spawnApi, type ApiProcess } from '../support/api-process.js';
import { ApiClient, testEnv, useStack } from '../support/stack.js';

interface Flood {
  sockets: net.Socket[];
  /** What each refused socket received before its close, by the socket's index. */
  refused: Map<number, string>;
  end(): Promise<void>;
}

/**
 * Opens `count` connections from `from` to `port`, each sending `head` and nothing more (a request
 * never finished, held open), or a whole request when `head` ends with an empty line.
 */
function flood(
  port: number,
  from: string,
  count: number,
  head = 'GET /healthz HTTP/1.1\r\nHost: x\r\n',
): Flood {
  const refused = new Map<number, string>();
  const sockets = Array.from({ length: count }, (_, i) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
    let got = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (got += d));
    socket.on('error', () => undefined);
    socket.on('connect', () => socket.write(head));
    socket.on('close', () => refused.set(i, got));
    return socket;
  });
  return {
    sockets,
    refused,
    async end() {
      await Promise.all(
        sockets.map(
          (s) =>
            new Promise<void>((resolve) => {
              if (s.destroyed) return resolve();
              s.once('close', () => resolve());
              s.destroy();
            }),
        ),
      );
    },
  };
}

const tooMany = (raw: string) => raw.startsWith('HTTP/1.1 503 ') && raw.includes('"too_many_connections"');

/** A counter of this process's own registry (the in-process API counts there). */
async function refusedTotal(reason: string): Promise<number> {
  const values = (await registry.getSingleMetric('wo_api_connections_refused_total')?.get())?.values ?? [];
  return values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

interface Answer {
  status: number;
  retryAfter?: string;
  text: string;
  /** The body as JSON ({} when empty). */
  json(): Record<string, unknown>;
}

/**
 * One request over node:http: on `agent`'s connection (a kept-alive one the test opened before a
 * flood), or with `agent: false` on a connection of its own, closed after it (no keep-alive
 * socket left to count later).
 */
function httpCall(
  port: number,
  agent: Agent | false,
  method: string,
  path: string,
  opts: { token?: string; body?: object } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        port,
        host: '127.0.0.1',
        method,
        path,
        agent,
        headers: {
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          ...(opts.body ? { 'content-type': 'application/json' } : {}),
        },
        timeout: 30_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            retryAfter: res.headers['retry-after'],
            text,
            json: () => (text ? (JSON.parse(text) as Record<string, unknown>) : {}),
          }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(opts.body ? JSON.stringify(opts.body) : undefined);
  });
}

describe('connection caps (in-process API)', () => {
  const t = useStack({
    worker: false,
    // The flood's connections are held on unfinished headers: the headers timeout must not end them.
    env: {
      API_MAX_CONNECTIONS: '60',
      API_MAX_CONNECTIONS_PER_CLIENT: '25',
      API_HEADERS_TIMEOUT_MS: '300000',
    },
  });
  const floods: Flood[] = [];
  afterEach(async () => {
    await Promise.all(floods.splice(0).map((f) => f.end()));
  });

  it('refuses past each cap with 503 and runs nothing sent on a refused connection; open ones are served', async () => {
    const port = t.stack.service.port!;
    const openConnections = () => t.stack.service.openConnections();
    // The fixture's own keep-alive connections close after the server's keep-alive timeout.
    await waitFor(() => openConnections() === 0, {
      timeoutMs: 20_000,
      describe: 'no connection open before the flood',
    });
    const before = { max: await refusedTotal('max'), perClient: await refusedTotal('per_client') };
    const settled = (f: Flood, refused: number, open: number, what: string) =>
      waitFor(() => f.refused.size === refused && openConnections() === open, {
        timeoutMs: 20_000,
        describe: what,
      });

    // One peer: 25 held, the other 15 refused at the per-client cap.
    const a = flood(port, '127.0.0.2', 40);
    floods.push(a);
    await settled(a, 15, 25, '25 of 127.0.0.2 held, 15 refused');
    // A second peer has its own 25; then the total cap (60) leaves a third peer 10.
    const b = flood(port, '127.0.0.3', 30);
    floods.push(b);
    await settled(b, 5, 50, '25 of 127.0.0.3 held, 5 refused');
    const c = flood(port, '127.0.0.4', 30);
    floods.push(c);
    await settled(c, 20, 60, '10 of 127.0.0.4 held, 20 refused');
    const refusals = [...a.refused.values(), ...b.refused.values(), ...c.refused.values()];
    expect(refusals.every(tooMany), refusals[0]).toBe(true);

    // At the total cap: any new connection is refused, and a whole request sent on it never runs.
    const res = await httpCall(port, false, 'GET', '/healthz');
    expect(res.status).toBe(503);
    expect(res.retryAfter).toBe('1');
    expect((res.json() as { error: { code: string } }).error.code).toBe('too_many_connections');
    const body = JSON.stringify({ name: 'refused-at-the-cap' });
    const post = flood(
      port,
      '127.0.0.5',
      1,
      `POST /v1/orgs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.stack.adminToken}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    floods.push(post);
    await waitFor(() => post.refused.size === 1, { timeoutMs: 20_000, describe: 'the POST refused' });
    expect(tooMany(post.refused.get(0)!)).toBe(true);

    // A held connection is served as any other: its request finished now is answered.
    const held = a.sockets.find((_, i) => !a.refused.has(i))!;
    const answer = new Promise<string>((resolve) => {
      let got = '';
      held.on('data', (d: string) => {
        got += d;
        if (got.includes('\r\n\r\n')) resolve(got);
      });
    });
    held.write('\r\n');
    expect(await answer).toMatch(/^HTTP\/1\.1 200 /);

    // The flood gone, connections are accepted again; what was refused is counted.
    await Promise.all([a.end(), b.end(), c.end()]);
    await waitFor(() => openConnections() === 0, {
      timeoutMs: 20_000,
      describe: 'every flood connection closed',
    });
    expect((await httpCall(port, false, 'GET', '/healthz')).status).toBe(200);
    const orgs = await t.stack.service.db.pool.query(`SELECT 1 FROM orgs WHERE name = 'refused-at-the-cap'`);
    expect(orgs.rowCount).toBe(0);
    expect((await refusedTotal('per_client')) - before.perClient).toBe(20);
    expect((await refusedTotal('max')) - before.max).toBe(22); // 20, the GET and the POST
  });
});

describe('a one-process deployment flooded past its descriptor limit (default caps)', () => {
  let api: ApiProcess | undefined;
  let control: Agent | undefined;
  let floodAll: Flood[] = [];
  afterEach(async () => {
    await Promise.all(floodAll.map((f) => f.end()));
    floodAll = [];
    control?.destroy();
    // A process that died says why.
    if (api && api.exitCode() !== null)
      console.log(`[connection-limits] process exited:\n${api.output().slice(-4000)}`);
    await api?.stop();
  });

  it('keeps serving its open connections and running workflows; nothing aborts', async () => {
    const port = await freePort();
    const env = testEnv({
      PORT: String(port),
      SWEEP_SCHEDULES: 'off',
      API_MAX_CONNECTIONS_PER_CLIENT: 'auto',
      // Held for the whole test, as a flood that keeps coming would be.
      API_HEADERS_TIMEOUT_MS: '300000',
    });
    // 400 descriptors: the default cap is a third (133), a quarter of that per peer (33).
    api = await spawnApi(env, { entry: 'all', fdLimit: 400 });
    // The test's own connection, opened before the flood and kept alive through it.
    control = new Agent({ keepAlive: true, maxSockets: 1 });
    const call = async (method: string, path: string, token?: string, body?: object) => {
      const answer = await httpCall(port, control!, method, path, { token, body });
      return { status: answer.status, body: answer.json() };
    };
    // The API answers before the worker is up: wait for it (readiness asks for a polling worker).
    await waitFor(async () => (await call('GET', '/readyz')).status === 200, {
      timeoutMs: 60_000,
      describe: 'the process ready, its worker polling',
    });
    const org = await call('POST', '/v1/orgs', env.ADMIN_TOKEN, { name: 'flooded' });
    expect(org.status).toBe(201);
    const key = org.body.apiKey as string;

    // 30 peers × 40 connections: 1,200 against a 400-descriptor process.
    for (let p = 0; p < 30; p++) floodAll.push(flood(port, `127.0.0.${10 + p}`, 40));
    const refused = () => floodAll.reduce((n, f) => n + f.refused.size, 0);
    await waitFor(() => refused() >= 1200 - 133, {
      timeoutMs: 60_000,
      describe: 'the flood past the caps refused',
    });
    // Refused with the 503, or (past the refusals still closing, which hold descriptors too)
    // closed at once without it: never held open.
    const answers = floodAll.flatMap((f) => [...f.refused.values()]);
    expect(answers.filter((raw) => raw !== '' && !tooMany(raw))).toEqual([]);
    expect(answers.filter(tooMany).length).toBeGreaterThan(0);

    // Under the flood, over the connection it already had: readiness (database, Temporal, dockerd),
    // and a create the worker starts carrying out (workflow tasks, activities, the docker socket).
    expect((await call('GET', '/readyz')).status).toBe(200);
    const created = await call('POST', '/v1/workspaces', key, { name: 'under-flood', backend: 'docker' });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    const id = created.body.id as string;
    await waitFor(
      async () => {
        const w = await call('GET', `/v1/workspaces/${id}`, key);
        return ['booting', 'online'].includes(w.body.status as string);
      },
      { timeoutMs: 90_000, intervalMs: 250, describe: 'the workspace started under the flood' },
    );
    expect(api.exitCode()).toBeNull();

    // The flood gone, the agent reaches the API and the workspace comes online; then it goes.
    await Promise.all(floodAll.map((f) => f.end()));
    const client = new ApiClient(api.url);
    await waitFor(
      async () => (await client.call('GET', `/v1/workspaces/${id}`, { token: key })).body.status === 'online',
      {
        timeoutMs: 120_000,
        intervalMs: 250,
        describe: 'the workspace online once the flood closed',
      },
    );
    expect((await client.call('DELETE', `/v1/workspaces/${id}`, { token: key })).status).toBe(202);
    await waitFor(
      async () =>
        (await client.call('GET', `/v1/workspaces/${id}`, { token: key })).body.status === 'deleted',
      {
        timeoutMs: 60_000,
        intervalMs: 250,
        describe: 'the workspace deleted',
      },
    );
    expect(api.exitCode()).toBeNull();
    expect(api.output()).not.toMatch(/Failed to initialize uv loop|EMFILE/);
  });
});

describe('a client that never finishes its headers (API_HEADERS_TIMEOUT_MS)', () => {
  const t = useStack({ worker: false, env: { API_HEADERS_TIMEOUT_MS: '1000' } });

  it('is answered 408 and closed, however slowly it keeps sending; others are served meanwhile', async () => {
    const port = t.stack.service.port!;
    // Slowloris: a header line every 200 ms, never the blank line that ends them.
    const socket = net.connect({ port, host: '127.0.0.1' });
    let got = '';
    let closed = false;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (got += d));
    socket.on('error', () => undefined);
    socket.on('close', () => (closed = true));
    socket.on('connect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'));
    let n = 0;
    const dribble = setInterval(() => {
      if (!socket.destroyed) socket.write(`X-Slow-${n++}: ${'a'.repeat(8)}\r\n`);
    }, 200);
    try {
      // Node's own limit (60 s, checked every 30 s) would hold it past this deadline.
      await waitFor(() => closed, { timeoutMs: 20_000, describe: 'the slow client closed by the server' });
    } finally {
      clearInterval(dribble);
      socket.destroy();
    }
    expect(got).toMatch(/^HTTP\/1\.1 408 /);
    expect(got).toContain('{"error":{"code":"request_timeout"');
    expect(n).toBeGreaterThan(3); // it was still sending when it was cut
    expect((await httpCall(port, false, 'GET', '/healthz')).status).toBe(200);
  });
});
