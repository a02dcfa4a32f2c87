/**
 * A fake of the platform's registry API, the calls the reference agent makes (src/agent/*):
 * `GET /v1/registry/bootstrap`, `POST /v1/registry/boot-events`, `/register` and `/heartbeat`.
 * Plain node:http on 0.0.0.0 by default, so a container reaches it as host.docker.internal through
 * the host-gateway ExtraHosts entry (it comes in through the docker bridge, not loopback).
 *
 * Used by the agent and DockerBackend integration tests and by bench/provision.ts; it records
 * every call so a test can assert on what the agent sent and in which order.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Bundle } from '../../src/agent/bundle.js';

/** One authenticated POST of the agent (boot event, register or heartbeat). */
export interface RecordedCall {
  workspaceId: string;
  body: Record<string, unknown>;
  /** Date.now() when the registry received it. */
  at: number;
}

export interface BootstrapCall {
  workspaceId: string | null;
  auth: 'bootstrap' | 'workspace' | 'invalid';
  /** 0: the answer was lost (connection cut). */
  status: number;
}

/** What the registry knows about one workspace. Mutable: tests change it mid-run. */
export interface FakeWorkspace {
  bundle: Bundle;
  bootstrapToken: string;
  workspaceToken: string;
  /** Set by the first bootstrap with the bootstrap token. */
  bootstrapUsed: boolean;
  /**
   * Like the platform: a used bootstrap token answers again (same bundle) until the agent
   * registers, so an answer lost on the way can be fetched again.
   */
  registered: boolean;
  /** Bootstrap answers still to be lost: the request is served, then the connection is cut. */
  cutBootstrapAnswers: number;
  /** A reusable bootstrap token is never refused (a used one answers 401 otherwise). */
  reusableBootstrap: boolean;
  /** Status the heartbeat answers: 200, or e.g. 409 (answered as stale_generation). */
  heartbeatStatus: number;
  /** While set, boot events are recorded on arrival but answered only once it resolves. */
  holdBootEvents: Promise<void> | null;
}

export interface AddWorkspaceOptions {
  /** Default: a random `bt-<hex>` token. */
  bootstrapToken?: string;
  /** Default false: the bootstrap token works once, like the platform's. */
  reusableBootstrap?: boolean;
  /** Default 0: how many bootstrap answers are lost (connection cut after the token is used). */
  cutBootstrapAnswers?: number;
}

export interface FakeRegistryOptions {
  /** Interface to listen on (default 0.0.0.0: containers come in through the bridge gateway). */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
}

/** A bundle with sensible defaults (runtime echo, generation 1); `overrides` win. */
export function fakeBundle(workspaceId: string, overrides: Partial<Bundle> = {}): Bundle {
  return {
    workspaceId,
    orgId: 'org-test',
    name: `agent-${workspaceId.slice(-4)}`,
    runtime: 'echo',
    generation: 1,
    configHash: `hash-${workspaceId}`,
    config: { runtime: 'echo' },
    configYaml: 'runtime: echo\n',
    files: [],
    plugins: [],
    secrets: {},
    workspaceToken: `wt-${randomBytes(16).toString('hex')}`,
    agentCredential: `ac-${randomBytes(16).toString('hex')}`,
    heartbeatIntervalMs: 1_000,
    ...overrides,
  };
}

export class FakeRegistry {
  readonly workspaces = new Map<string, FakeWorkspace>();
  readonly bootstrapCalls: BootstrapCall[] = [];
  readonly bootEvents: RecordedCall[] = [];
  readonly registers: RecordedCall[] = [];
  readonly heartbeats: RecordedCall[] = [];
  port = 0;
  private server: http.Server | null = null;

  /**
   * Adds a workspace; its bootstrap token works until the agent registers (unless reusable), its
   * workspace token always.
   */
  add(bundle: Bundle, opts: AddWorkspaceOptions = {}): FakeWorkspace {
    const entry: FakeWorkspace = {
      bundle,
      bootstrapToken: opts.bootstrapToken ?? `bt-${randomBytes(16).toString('hex')}`,
      workspaceToken: bundle.workspaceToken,
      bootstrapUsed: false,
      registered: false,
      cutBootstrapAnswers: opts.cutBootstrapAnswers ?? 0,
      reusableBootstrap: opts.reusableBootstrap ?? false,
      heartbeatStatus: 200,
      holdBootEvents: null,
    };
    this.workspaces.set(bundle.workspaceId, entry);
    return entry;
  }

  /** The platform URL as a container sees it (through ExtraHosts host.docker.internal:host-gateway). */
  get containerUrl(): string {
    return `http://host.docker.internal:${this.port}`;
  }

  /** Boot phases the workspace reported, in arrival order. */
  phases(workspaceId: string): string[] {
    return this.bootEvents.filter((e) => e.workspaceId === workspaceId).map((e) => String(e.body.phase));
  }

  async start(opts: FakeRegistryOptions = {}): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, Buffer.concat(chunks).toString('utf8'), res));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, opts.host ?? '0.0.0.0', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private byToken(token: string): { entry: FakeWorkspace; kind: 'bootstrap' | 'workspace' } | null {
    for (const entry of this.workspaces.values()) {
      if (entry.bootstrapToken === token) return { entry, kind: 'bootstrap' };
      if (entry.workspaceToken === token) return { entry, kind: 'workspace' };
    }
    return null;
  }

  private handle(req: http.IncomingMessage, body: string, res: http.ServerResponse): void {
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    };
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const found = this.byToken(token);
    const path = req.url ?? '';

    if (req.method === 'GET' && path === '/v1/registry/bootstrap') {
      const spent =
        found?.kind === 'bootstrap' &&
        found.entry.bootstrapUsed &&
        found.entry.registered &&
        !found.entry.reusableBootstrap;
      if (!found || spent) {
        this.bootstrapCalls.push({
          workspaceId: found ? found.entry.bundle.workspaceId : null,
          auth: 'invalid',
          status: 401,
        });
        const message = found ? 'bootstrap token already used' : 'unknown token';
        return send(401, { error: { code: 'invalid_token', message } });
      }
      if (found.kind === 'bootstrap') found.entry.bootstrapUsed = true;
      if (found.entry.cutBootstrapAnswers > 0) {
        // The platform did its part; the answer never reaches the agent.
        found.entry.cutBootstrapAnswers--;
        this.bootstrapCalls.push({
          workspaceId: found.entry.bundle.workspaceId,
          auth: found.kind,
          status: 0,
        });
        req.socket.destroy();
        return;
      }
      this.bootstrapCalls.push({
        workspaceId: found.entry.bundle.workspaceId,
        auth: found.kind,
        status: 200,
      });
      return send(200, found.entry.bundle);
    }

    if (!found || found.kind !== 'workspace')
      return send(401, { error: { code: 'invalid_token', message: 'workspace token required' } });
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(body) as Record<string, unknown>;
    } catch {
      return send(400, { error: { code: 'invalid_json', message: 'body is not JSON' } });
    }
    const record: RecordedCall = {
      workspaceId: found.entry.bundle.workspaceId,
      body: parsed,
      at: Date.now(),
    };
    if (req.method === 'POST' && path === '/v1/registry/boot-events') {
      this.bootEvents.push(record);
      const hold = found.entry.holdBootEvents;
      if (hold) return void hold.then(() => send(204, {}));
      return send(204, {});
    }
    if (req.method === 'POST' && path === '/v1/registry/register') {
      this.registers.push(record);
      found.entry.registered = true;
      return send(200, { ok: true });
    }
    if (req.method === 'POST' && path === '/v1/registry/heartbeat') {
      this.heartbeats.push(record);
      const status = found.entry.heartbeatStatus;
      if (status === 409)
        return send(409, { error: { code: 'stale_generation', message: 'generation superseded' } });
      return send(status, { ok: true });
    }
    send(404, { error: { code: 'not_found', message: path } });
  }
}

/** Starts a fake registry (0.0.0.0, free port unless told otherwise). Call stop() when done. */
export async function startFakeRegistry(opts: FakeRegistryOptions = {}): Promise<FakeRegistry> {
  const registry = new FakeRegistry();
  await registry.start(opts);
  return registry;
}
