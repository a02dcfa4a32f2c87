/**
 * The reference agent in a real container from the runtime image, started through DockerBackend,
 * against the fake platform registry of test/support/fake-registry.ts (plain node:http on 0.0.0.0,
 * reached from the container as host.docker.internal through the host-gateway ExtraHosts entry).
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StartSpec } from '../../src/backends/backend.js';
import { DockerBackend } from '../../src/backends/docker/docker-backend.js';
import { ensureRuntimeImage } from '../../src/cli/build-images.js';
import { readContainerFile } from '../support/container-files.js';
import { startFakeRegistry, type FakeRegistry } from '../support/fake-registry.js';

// ---------------------------------------------------------------------------------------------
// Polling and HTTP helpers: every wait has a deadline, every request a timeout (docker-proxy can
// leave a connection hanging while a container starts).

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 20_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** What the platform's proxy presents to the agents of this file (their bundles carry it). */
const CREDENTIAL = `ac-${randomBytes(16).toString('hex')}`;

function request(
  url: string,
  opts: { method?: string; body?: string; timeoutMs?: number; credential?: string | null } = {},
): Promise<HttpAnswer> {
  const credential = opts.credential === undefined ? CREDENTIAL : opts.credential;
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: opts.method ?? 'GET',
        headers: {
          ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(credential === null ? {} : { 'x-wo-agent-credential': credential }),
        },
        timeout: opts.timeoutMs ?? 3_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

const rpc = (method: string, params: unknown, id: number | string = 1) =>
  JSON.stringify({ jsonrpc: '2.0', id, method, params });

// ---------------------------------------------------------------------------------------------

const docker = new Dockerode();
const run = `at${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
const ids = {
  main: `${run}-main`,
  reused: `${run}-reused`,
  never: `${run}-never`,
  cut: `${run}-cut`,
  slow: `${run}-slow`,
};
let registry: FakeRegistry;
let backend: DockerBackend;
let mints = 0;

const configYaml =
  'runtime: echo\nagent:\n  streamChunks: 4\n  streamIntervalMs: 300\n  runtimeState: serving\n';
const secretValue = `s3cret-${randomBytes(8).toString('hex')}`;

function bundleFor(workspaceId: string, agent: Record<string, unknown>) {
  return {
    workspaceId,
    orgId: 'org-test',
    name: `agent-${workspaceId.slice(-4)}`,
    runtime: 'echo',
    generation: 3,
    configHash: `hash-${workspaceId}`,
    config: { runtime: 'echo', agent },
    configYaml,
    files: [
      { path: 'prompts/system.md', contentBase64: Buffer.from('You are a test agent.\n').toString('base64') },
      { path: '../escape.txt', contentBase64: Buffer.from('nope').toString('base64') },
    ],
    plugins: [],
    secrets: { API_KEY: secretValue, MULTI_LINE: 'a b\nc' },
    workspaceToken: `wt-${randomBytes(16).toString('hex')}`,
    agentCredential: CREDENTIAL,
    heartbeatIntervalMs: 250,
  };
}

function specFor(workspaceId: string, token: () => string): StartSpec {
  return {
    workspaceId,
    orgId: 'org-test',
    generation: 3,
    runtime: 'echo',
    platformUrl: registry.containerUrl,
    mintBootstrapToken: async () => {
      mints++;
      return token();
    },
  };
}

const main = () => {
  const entry = registry.workspaces.get(ids.main);
  if (!entry) throw new Error('main workspace not registered');
  return entry;
};

async function endpointOf(workspaceId: string): Promise<string> {
  const info = await backend.describe(workspaceId, 3);
  if (!info?.endpoint) throw new Error(`no endpoint for ${workspaceId}`);
  return info.endpoint;
}

beforeAll(async () => {
  const image = await ensureRuntimeImage({ docker });
  backend = new DockerBackend({ docker, image, stopTimeoutSeconds: 5 });
  registry = await startFakeRegistry();
  registry.add(bundleFor(ids.main, { streamChunks: 4, streamIntervalMs: 300, runtimeState: 'serving' }));
  registry.add(bundleFor(ids.never, { neverHealthy: true }));
  registry.add(bundleFor(ids.cut, {}), { cutBootstrapAnswers: 1 });
  registry.add(bundleFor(ids.slow, {}));
}, 300_000);

afterAll(async () => {
  for (const id of Object.values(ids)) await backend?.remove(id, { volumes: true }).catch(() => undefined);
  await registry?.stop();
}, 60_000);

describe('reference agent in a runtime container', () => {
  it('boots: phases in order, registers with its generation and config hash, heartbeats', async () => {
    const started = Date.now();
    const info = await backend.start(specFor(ids.main, () => main().bootstrapToken));
    expect(info.status).toBe('running');

    await waitFor('platform-health-ok of the main workspace', () =>
      registry.phases(ids.main).includes('platform-health-ok'),
    );
    const bootMs = Date.now() - started;
    expect(registry.phases(ids.main)).toEqual([
      'boot',
      'config-materialized',
      'plugins-installed',
      'agent-started',
      'platform-health-ok',
    ]);
    for (const e of registry.bootEvents) {
      expect(e.body.generation).toBe(3);
      expect(Number.isNaN(Date.parse(String(e.body.ts)))).toBe(false);
    }
    expect(registry.bootstrapCalls).toEqual([{ workspaceId: ids.main, auth: 'bootstrap', status: 200 }]);

    const reg = registry.registers.filter((r) => r.workspaceId === ids.main);
    expect(reg).toHaveLength(1);
    expect(reg[0]?.body).toMatchObject({
      workspaceId: ids.main,
      generation: 3,
      configHash: `hash-${ids.main}`,
    });
    // The card as protocol 1.0 puts it on the wire, with a 0.3 interface for older peers.
    expect(reg[0]?.body.agentCard).toMatchObject({
      supportedInterfaces: [
        { protocolBinding: 'JSONRPC', protocolVersion: '1.0' },
        { protocolBinding: 'JSONRPC', protocolVersion: '0.3' },
      ],
      capabilities: { streaming: true },
    });

    await waitFor(
      'three heartbeats',
      () => registry.heartbeats.filter((h) => h.workspaceId === ids.main).length >= 3,
    );
    const beat = registry.heartbeats.find((h) => h.workspaceId === ids.main);
    expect(beat?.body).toMatchObject({
      workspaceId: ids.main,
      generation: 3,
      configHash: `hash-${ids.main}`,
      activeTasks: 0,
      errorRate: 0,
      runtimeState: 'serving',
    });
    expect(typeof beat?.body.uptimeSeconds).toBe('number');
    console.log(`agent online ${bootMs} ms after start()`);
  });

  it('materializes /configs: config.yaml, template files; 0600 state in /var/lib/wo; refuses escaping paths', async () => {
    const read = (root: '/configs' | '/workspace', p: string) => backend.readFile(ids.main, 3, root, p);
    expect((await read('/configs', 'config.yaml')).toString()).toBe(configYaml);
    expect((await read('/configs', 'prompts/system.md')).toString()).toBe('You are a test agent.\n');
    await expect(read('/configs', 'escape.txt')).rejects.toMatchObject({ code: 'not_found' });

    // The bundle (workspace token) and secrets live outside /configs and /workspace: nothing of
    // them is on the volumes the files API serves.
    const state = (name: string) => readContainerFile(docker, `ws-${ids.main}-g3`, `/var/lib/wo${name}`);
    const secrets = (await state('/secrets.env')).content.toString();
    expect(secrets).toContain(`API_KEY=${secretValue}\n`);
    expect(secrets).toContain('MULTI_LINE="a b\\nc"\n');
    const saved = JSON.parse((await state('/bundle.json')).content.toString()) as Record<string, unknown>;
    expect(saved.bootstrapTokenSha256).toBe(createHash('sha256').update(main().bootstrapToken).digest('hex'));
    expect(saved.generation).toBe(3);
    // Modes are visible in the archive headers docker returns.
    expect([
      (await state('')).mode,
      (await state('/bundle.json')).mode,
      (await state('/secrets.env')).mode,
    ]).toEqual([0o700, 0o600, 0o600]);
    for (const root of ['/configs', '/workspace'] as const) {
      const listed = await backend.listFiles(ids.main, 3, root, '', 5);
      expect(
        listed.items.map((e) => e.path).filter((p) => /(^|\/)\.wo(\/|$)|bundle\.json|secrets\.env/.test(p)),
      ).toEqual([]);
    }
    await expect(read('/configs', '.wo/bundle.json')).rejects.toMatchObject({ code: 'invalid_path' });

    const events = registry.bootEvents.filter((e) => e.workspaceId === ids.main);
    expect(String(events.find((e) => e.body.phase === 'config-materialized')?.body.message)).toContain(
      '../escape.txt',
    );

    // The boot log never carries a token or a secret value.
    const log = await backend.bootLog(ids.main, 3);
    expect(log).toContain('agent: phase platform-health-ok');
    for (const secret of [secretValue, main().bootstrapToken, main().workspaceToken])
      expect(log).not.toContain(secret);
  });

  it('serves the agent card, /health and a deterministic message/send', async () => {
    const endpoint = await endpointOf(ids.main);
    const card = JSON.parse((await request(`${endpoint}/.well-known/agent.json`)).body) as Record<
      string,
      unknown
    >;
    // No A2A-Version header: the 0.3 shape (the SDK's compat layer), as a 0.3 caller expects.
    expect(card).toMatchObject({
      name: `agent-${ids.main.slice(-4)}`,
      protocolVersion: '0.3',
      preferredTransport: 'JSONRPC',
      capabilities: {
        streaming: true,
        extensions: [{ params: { workspaceId: ids.main, runtime: 'echo', generation: 3 } }],
      },
      defaultInputModes: ['text/plain'],
      defaultOutputModes: ['text/plain'],
      skills: [{ id: 'echo', name: 'echo', tags: ['echo', 'test'] }],
    });
    // /health is open to the liveness probe and says nothing about the workspace.
    const health = await request(`${endpoint}/health`, { credential: null });
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ ok: true });
    // Everything else needs the proxy's credential: none or a wrong one is refused, and no body
    // of the workspace's leaks.
    for (const credential of [null, 'ac-wrong', `${CREDENTIAL}x`]) {
      for (const [method, path, body] of [
        ['GET', '/.well-known/agent.json', undefined],
        ['POST', '/', rpc('message/send', { message: { role: 'user', messageId: 'x', parts: [] } })],
      ] as const) {
        const refused = await request(`${endpoint}${path}`, { method, body, credential });
        expect(refused.status, `${method} ${path} with ${credential}`).toBe(401);
        expect(refused.body).not.toContain(ids.main);
      }
    }

    const peer = { id: 'ws-peer', name: 'peer', role: 'tester', agentCardUrl: 'http://x/' };
    const answer = await request(endpoint, {
      method: 'POST',
      body: rpc(
        'message/send',
        {
          message: {
            role: 'user',
            messageId: 'm1',
            parts: [
              { kind: 'text', text: 'hello' },
              { kind: 'text', text: 'there' },
            ],
            metadata: { peer },
          },
        },
        'req-1',
      ),
    });
    expect(answer.status).toBe(200);
    const body = JSON.parse(answer.body) as { id: string; result: Record<string, unknown> };
    expect(body.id).toBe('req-1');
    expect(body.result).toMatchObject({
      kind: 'message',
      role: 'agent',
      parts: [
        {
          kind: 'text',
          text: `workspace agent-${ids.main.slice(-4)} (${ids.main}) on runtime echo received: hello there`,
        },
      ],
      metadata: { workspaceId: ids.main, runtime: 'echo', generation: 3, peer },
    });
    expect(body.result.messageId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers JSON-RPC errors: unknown method -32601, bad JSON -32700', async () => {
    const endpoint = await endpointOf(ids.main);
    const unknown = JSON.parse(
      (await request(endpoint, { method: 'POST', body: rpc('tasks/frobnicate', {}, 7) })).body,
    ) as unknown;
    expect(unknown).toMatchObject({ jsonrpc: '2.0', id: 7, error: { code: -32601 } });
    const bad = JSON.parse((await request(endpoint, { method: 'POST', body: '{not json' })).body) as unknown;
    expect(bad).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32700 } });
  });

  it('streams message/stream chunk by chunk (first chunk arrives long before the last)', async () => {
    const endpoint = await endpointOf(ids.main);
    const started = Date.now();
    const { contentType, events } = await readSse(
      endpoint,
      rpc(
        'message/stream',
        { message: { role: 'user', messageId: 'm2', parts: [{ kind: 'text', text: 'stream me' }] } },
        9,
      ),
    );
    expect(contentType).toMatch(/^text\/event-stream/);
    expect(events).toHaveLength(5);
    // The task, then one status update per chunk (0.3 shapes: no A2A-Version header).
    type Event = {
      id: number;
      result: { final?: boolean; kind: string; status: { message?: { parts: { text: string }[] } } };
    };
    const results = events.map((e) => JSON.parse(e.data) as Event);
    expect(results.map((r) => r.result.kind)).toEqual(['task', ...Array(4).fill('status-update')]);
    expect(results.every((r) => r.id === 9)).toBe(true);
    const updates = results.slice(1);
    expect(updates.map((r) => r.result.final)).toEqual([false, false, false, true]);
    expect(updates[0]?.result.status.message?.parts[0]?.text).toMatch(/^chunk 1 of 4/);
    expect(updates[3]?.result.status.message?.parts[0]?.text).toContain('received: stream me');
    const first = events[1]?.at ?? 0;
    const last = events[4]?.at ?? 0;
    // The agent sends chunk 4 ~900 ms after chunk 1: a buffered answer would deliver them together.
    expect(last - first).toBeGreaterThan(600);
    expect(first - started).toBeLessThan(last - started - 600);
    console.log(`stream chunk arrivals (ms after request): ${events.map((e) => e.at - started).join(', ')}`);
  });

  it('a reboot (docker stop + start) refreshes with the workspace token and re-registers', async () => {
    const before = await backend.describe(ids.main, 3);
    const mintsBefore = mints;
    const registersBefore = registry.registers.filter((r) => r.workspaceId === ids.main).length;
    const eventsBefore = registry.bootEvents.filter((e) => e.workspaceId === ids.main).length;

    await backend.stop(ids.main, 3);
    expect(await backend.status(ids.main, 3)).toBe('stopped');
    const after = await backend.start(specFor(ids.main, () => 'must-not-be-minted'));
    expect(after.instanceId).toBe(before?.instanceId);
    expect(mints).toBe(mintsBefore);

    await waitFor(
      're-registration after reboot',
      () => registry.registers.filter((r) => r.workspaceId === ids.main).length > registersBefore,
    );
    expect(registry.bootstrapCalls.filter((c) => c.workspaceId === ids.main)).toEqual([
      { workspaceId: ids.main, auth: 'bootstrap', status: 200 },
      { workspaceId: ids.main, auth: 'workspace', status: 200 },
    ]);
    await waitFor('platform-health-ok after reboot', () =>
      registry.bootEvents
        .filter((e) => e.workspaceId === ids.main)
        .slice(eventsBefore)
        .some((e) => e.body.phase === 'platform-health-ok'),
    );
    expect(registry.phases(ids.main).slice(eventsBefore)).toEqual([
      'boot',
      'config-materialized',
      'plugins-installed',
      'agent-started',
      'platform-health-ok',
    ]);
    expect(await backend.bootLog(ids.main, 3)).toContain('reboot of workspace');
  });

  it('a container started with an already-used bootstrap token exits non-zero with a clear message', async () => {
    await backend.start(specFor(ids.reused, () => main().bootstrapToken));
    const container = docker.getContainer(`ws-${ids.reused}-g3`);
    const state = await waitFor('the agent to exit', async () => {
      const s = (await container.inspect()).State;
      // The container stays exited (no daemon restart policy): its exit code is the agent's.
      return s.ExitCode !== 0 ? s : null;
    });
    expect(state.ExitCode).toBe(1);
    const log = await waitFor('the refusal in the log', async () => {
      const text = await backend.bootLog(ids.reused, 3);
      return text.includes('bootstrap refused') ? text : null;
    });
    expect(log).toContain('agent: bootstrap refused (401 invalid_token): bootstrap token already used');
    expect(log).not.toContain(main().bootstrapToken);
    expect(registry.phases(ids.reused)).toEqual([]);
  });

  it('a first bootstrap fetch whose answer is lost (connection cut) is fetched again and boots', async () => {
    const cut = registry.workspaces.get(ids.cut);
    await backend.start(specFor(ids.cut, () => cut?.bootstrapToken ?? ''));
    await waitFor('platform-health-ok after a lost bootstrap answer', () =>
      registry.phases(ids.cut).includes('platform-health-ok'),
    );
    // Same bootstrap token both times: the first answer was lost, the second delivered.
    expect(registry.bootstrapCalls.filter((c) => c.workspaceId === ids.cut)).toEqual([
      { workspaceId: ids.cut, auth: 'bootstrap', status: 0 },
      { workspaceId: ids.cut, auth: 'bootstrap', status: 200 },
    ]);
    expect(registry.registers.filter((r) => r.workspaceId === ids.cut)).toHaveLength(1);
    await backend.remove(ids.cut, { volumes: true });
  });

  it('boot does not wait for progress events to be answered; platform-health-ok comes last, after register', async () => {
    const slow = registry.workspaces.get(ids.slow);
    if (!slow) throw new Error('slow workspace not registered');
    let release = (): void => undefined;
    slow.holdBootEvents = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      await backend.start(specFor(ids.slow, () => slow.bootstrapToken));
      // Not one boot event answered yet, and still the agent serves and registers.
      const endpoint = await endpointOf(ids.slow);
      await waitFor('/health while boot events are unanswered', async () => {
        return (await request(`${endpoint}/health`, { credential: null })).status === 200;
      });
      await waitFor('register while boot events are unanswered', () =>
        registry.registers.some((r) => r.workspaceId === ids.slow),
      );
      // One at a time, in order: only the first has arrived; the final one waits for them all.
      expect(registry.phases(ids.slow)).toEqual(['boot']);
    } finally {
      release();
    }
    await waitFor('platform-health-ok of the slow workspace', () =>
      registry.phases(ids.slow).includes('platform-health-ok'),
    );
    expect(registry.phases(ids.slow)).toEqual([
      'boot',
      'config-materialized',
      'plugins-installed',
      'agent-started',
      'platform-health-ok',
    ]);
    const registered = registry.registers.find((r) => r.workspaceId === ids.slow);
    const healthOk = registry.bootEvents.find(
      (e) => e.workspaceId === ids.slow && e.body.phase === 'platform-health-ok',
    );
    expect(registered && healthOk && registered.at <= healthOk.at).toBe(true);
    await backend.remove(ids.slow, { volumes: true });
  });

  it('config.agent.neverHealthy: serves A2A but never registers nor heartbeats', async () => {
    const never = registry.workspaces.get(ids.never);
    await backend.start(specFor(ids.never, () => never?.bootstrapToken ?? ''));
    await waitFor('agent-started of the never-healthy workspace', () =>
      registry.phases(ids.never).includes('agent-started'),
    );
    const endpoint = await endpointOf(ids.never);
    await waitFor('never-healthy /health', async () => (await request(`${endpoint}/health`)).status === 200);
    // A negative: give it several heartbeat intervals (250 ms) to misbehave.
    const beatsOfMain = registry.heartbeats.filter((h) => h.workspaceId === ids.main).length;
    await waitFor(
      'four heartbeats of the main workspace as a clock',
      () => registry.heartbeats.filter((h) => h.workspaceId === ids.main).length >= beatsOfMain + 4,
    );
    expect(registry.phases(ids.never)).toEqual([
      'boot',
      'config-materialized',
      'plugins-installed',
      'agent-started',
    ]);
    expect(registry.registers.filter((r) => r.workspaceId === ids.never)).toEqual([]);
    expect(registry.heartbeats.filter((h) => h.workspaceId === ids.never)).toEqual([]);
  });

  it('a heartbeat answered 409 (stale generation) makes the agent exit 1', async () => {
    main().heartbeatStatus = 409;
    const container = docker.getContainer(`ws-${ids.main}-g3`);
    const state = await waitFor('the agent to exit on 409', async () => {
      const s = (await container.inspect()).State;
      return s.ExitCode !== 0 ? s : null;
    });
    expect(state.ExitCode).toBe(1);
    expect(await backend.bootLog(ids.main, 3)).toContain('agent: heartbeat refused (409 stale_generation)');
  });
});

// ---------------------------------------------------------------------------------------------

/** POSTs a JSON-RPC request and records each SSE event with its arrival time. */
function readSse(
  url: string,
  body: string,
): Promise<{ contentType: string; events: Array<{ data: string; at: number }> }> {
  return new Promise((resolve, reject) => {
    const events: Array<{ data: string; at: number }> = [];
    const req = http.request(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-wo-agent-credential': CREDENTIAL },
        timeout: 10_000,
      },
      (res) => {
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffered += chunk;
          let idx: number;
          while ((idx = buffered.indexOf('\n\n')) >= 0) {
            const frame = buffered.slice(0, idx);
            buffered = buffered.slice(idx + 2);
            const data = frame
              .split('\n')
              .filter((l) => l.startsWith('data:'))
              .map((l) => l.slice(5).trimStart())
              .join('\n');
            if (data) events.push({ data, at: Date.now() });
          }
        });
        res.on('end', () => resolve({ contentType: String(res.headers['content-type']), events }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('stream timed out')));
    req.on('error', reject);
    req.end(body);
  });
}
