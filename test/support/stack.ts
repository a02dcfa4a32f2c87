/**
 * A real stack for integration tests: this process runs the API (+ optionally a worker) against the
 * run's PostgreSQL, Temporal dev server and dockerd. Each stack gets its own task queue, so
 * workflows of one test file only ever run on that file's workers.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import Dockerode from 'dockerode';
import pino from 'pino';
import { afterAll, beforeAll, inject } from 'vitest';
import './quiet-runtime.js';
import { loadConfig, type Config } from '../../src/config.js';
import { apiSettings, startService, type RunningService } from '../../src/service.js';
import { createApp } from '../../src/api/app.js';
import type { ApiDeps } from '../../src/api/deps.js';
import type { EntityClient } from '../../src/api/entity.js';
import { SecretBox } from '../../src/security/secrets.js';
import type { Queryable } from '../../src/db/queryable.js';
import { insertWorkspace } from '../../src/db/workspaces.js';
import type { OrphanRemoval, OrphanSweepResult } from '../../src/domain/orphans.js';
import { newId } from '../../src/security/tokens.js';
import { workspaceWorkflowId } from '../../src/workflows/messages.js';
import '../setup/context.js';
import { waitFor } from '../setup/wait-for.js';
import { tempDir } from './temp-dirs.js';

export interface StackOptions {
  worker?: boolean;
  env?: Record<string, string>;
  /** The service's logger (default: pino at LOG_LEVEL to stdout); a suite can read what it logs. */
  log?: pino.Logger;
}

export interface Stack {
  config: Config;
  service: RunningService;
  url: string;
  adminToken: string;
  docker: Dockerode;
  api: ApiClient;
  /** Orgs created through createOrg on this stack: their workspaces are this stack's to clean up. */
  orgIds: Set<string>;
  /** Whether a worker runs in this process (workflows of this stack's task queue progress). */
  worker: boolean;
  /**
   * What else a failed wait should print about a workspace (the parity stacks add what ec2-sim
   * knows of its instances), next to its boot log.
   */
  diagnose?: (workspace: Json) => Promise<string>;
  close(): Promise<void>;
}

export function testEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: inject('DATABASE_URL'),
    TEMPORAL_ADDRESS: inject('TEMPORAL_ADDRESS'),
    TEMPORAL_NAMESPACE: inject('TEMPORAL_NAMESPACE'),
    RUNTIME_IMAGE: inject('RUNTIME_IMAGE'),
    DATA_DIR: tempDir('wo-data-'),
    ADMIN_TOKEN: randomBytes(16).toString('hex'),
    SECRETS_KEY: randomBytes(32).toString('base64'),
    TASK_QUEUE: `test-${randomBytes(4).toString('hex')}`,
    PORT: '0',
    BOOT_DEADLINE_MS: '60000',
    HEARTBEAT_INTERVAL_MS: '1000',
    LOG_LEVEL: 'warn',
    // Worker processes of parallel test files would contend for one default port.
    WORKER_METRICS_ADDRESS: 'off',
    // Every test calls from 127.0.0.1, some hundreds at once: one peer as far as a per-peer cap
    // goes (whose default depends on the machine's descriptor limit). Its own test sets it.
    API_MAX_CONNECTIONS_PER_CLIENT: 'off',
    // The run's Temporal server is shared by every file: no file schedules sweeps unless it asks.
    SWEEP_SCHEDULES: 'off',
    // Suites that stop resources out of band test the user's start/restart: nothing restarts by
    // itself unless a suite asks (test/parity/self-healing.test.ts).
    AUTO_RESTART_POLICY: 'never',
    ...extra,
  };
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  // A stack without a worker still takes creates (their entities wait in Temporal), unless a test
  // asks for the default refusal.
  const env = testEnv({ ...(opts.worker === false ? { ACCEPT_WITHOUT_WORKER: '1' } : {}), ...opts.env });
  const config = loadConfig(env);
  const service = await startService(config, {
    api: true,
    worker: opts.worker ?? true,
    log: opts.log ?? pino({ level: env.LOG_LEVEL ?? 'warn' }),
  });
  const url = service.url!;
  const api = new ApiClient(url);
  return {
    config,
    service,
    url,
    adminToken: config.ADMIN_TOKEN,
    docker: new Dockerode(),
    api,
    orgIds: new Set(),
    worker: opts.worker ?? true,
    close: () => service.close(),
  };
}

export interface StackFixture {
  readonly stack: Stack;
  /** API key of an org created for this describe block. */
  readonly key: string;
  readonly orgId: string;
}

/** Starts a stack and an org before the describe block's tests, and stops the stack after them. */
export function useStack(opts: StackOptions = {}): StackFixture {
  let stack: Stack | undefined;
  let org: { id: string; apiKey: string } | undefined;
  beforeAll(async () => {
    stack = await startStack(opts);
    org = await createOrg(stack);
  });
  afterAll(async () => {
    if (stack) await deleteLeftoverWorkspaces(stack);
    await stack?.close();
  });
  return {
    get stack() {
      return stack!;
    },
    get key() {
      return org!.apiKey;
    },
    get orgId() {
      return org!.id;
    },
  };
}

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
}

// The contract's JSON answers are objects; tests read fields freely from them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- test convenience for reading JSON answers
type Json = any;

export class ApiClient {
  constructor(readonly url: string) {}

  async call(
    method: string,
    pathName: string,
    opts: { token?: string; body?: unknown; rawBody?: string } = {},
  ): Promise<ApiResponse<Json>> {
    const headers: Record<string, string> = {};
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let body: string | undefined;
    if (opts.rawBody !== undefined) {
      body = opts.rawBody;
      headers['content-type'] = 'application/json';
    } else if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    const started = Date.now();
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${this.url}${pathName}`, {
        method,
        headers,
        body,
        signal: AbortSignal.timeout(30_000),
      });
      text = await res.text();
    } catch (err) {
      // A test with several calls must say which one got no answer (a timeout says nothing else).
      throw new Error(
        `${method} ${pathName}: no answer after ${Date.now() - started} ms (at ${new Date().toISOString()})`,
        {
          cause: err,
        },
      );
    }
    let parsed: Json = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    const answer = { status: res.status, body: parsed, headers: res.headers };
    // WO_OPENAPI_CHECK=1: every answer of every suite is checked against /openapi.json's schemas.
    if (process.env.WO_OPENAPI_CHECK === '1') {
      const { checkResponse } = await import('./openapi-check.js');
      checkResponse(method, pathName, {
        status: res.status,
        contentType: res.headers.get('content-type'),
        body: parsed,
      });
    }
    return answer;
  }

  /**
   * A call as a client of the contract makes it: a 503 means "nothing was changed, try again after
   * Retry-After" (e.g. the API's Temporal deadline ran out on a loaded machine), so the same call
   * is repeated after that many seconds, until `deadlineMs`. Any other answer is returned.
   */
  async callRetrying503(
    method: string,
    pathName: string,
    opts: {
      token?: string;
      body?: unknown;
      deadlineMs?: number;
      onRetry?: (res: ApiResponse<Json>) => void;
    } = {},
  ): Promise<ApiResponse<Json>> {
    const deadline = Date.now() + (opts.deadlineMs ?? 120_000);
    for (;;) {
      const res = await this.call(method, pathName, opts);
      if (res.status !== 503 || Date.now() > deadline) return res;
      opts.onRetry?.(res);
      const retryAfterS = Number(res.headers.get('retry-after') ?? '1') || 1;
      // The server's own pacing, not a readiness guess: the call is simply repeated.
      await new Promise((resolve) => setTimeout(resolve, retryAfterS * 1000));
    }
  }
}

/** Creates an org and returns its API key. */
export async function createOrg(stack: Stack, name = 'acme'): Promise<{ id: string; apiKey: string }> {
  const res = await stack.api.call('POST', '/v1/orgs', { token: stack.adminToken, body: { name } });
  if (res.status !== 201) throw new Error(`create org: ${res.status} ${JSON.stringify(res.body)}`);
  stack.orgIds.add(res.body.id);
  return res.body as { id: string; apiKey: string };
}

/**
 * Deletes every workspace of this stack's orgs that a test left behind, and waits until each is
 * `deleted`, so no container, volume or instance outlives the test file. Tests still delete what
 * they create; this is the net under a failed or forgetful one.
 */
export async function deleteLeftoverWorkspaces(
  stack: Stack,
  /** `workerElsewhere`: a worker on the stack's task queue runs in another process. */
  opts: { workerElsewhere?: boolean } = {},
): Promise<void> {
  if (stack.orgIds.size === 0) return;
  if (!(stack.worker || opts.workerElsewhere)) {
    // Nothing runs these rows' entities (no worker: no container or instance was made): marked
    // deleted, so that no later file's orphan sweep takes a bare row for a lost create and starts it.
    await stack.service.db.pool.query(
      `UPDATE workspaces SET status = 'deleted' WHERE org_id = ANY($1) AND status <> 'deleted'`,
      [[...stack.orgIds]],
    );
    return;
  }
  const { rows } = await stack.service.db.pool.query<{ id: string }>(
    `SELECT id FROM workspaces WHERE org_id = ANY($1) AND status <> 'deleted'`,
    [[...stack.orgIds]],
  );
  await Promise.all(
    rows.map(async ({ id }) => {
      const res = await stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: stack.adminToken });
      if (res.status !== 202) throw new Error(`cleanup: DELETE ${id} answered ${res.status}`);
      await waitForStatus(stack, stack.adminToken, id, 'deleted');
    }),
  );
}

export async function waitForStatus(
  stack: Stack,
  token: string,
  id: string,
  status: string | ((w: Json) => boolean),
  timeoutMs = 90_000,
): Promise<Json> {
  const ok = typeof status === 'string' ? (w: Json) => w.status === status : status;
  let last: Json;
  try {
    return await waitFor(
      async () => {
        const res = await stack.api.call('GET', `/v1/workspaces/${id}`, { token });
        if (res.status !== 200) throw new Error(`GET ${id}: ${res.status}`);
        last = res.body;
        if (!ok(res.body)) {
          const error = res.body.error ? `: ${res.body.error}` : '';
          throw new Error(
            `now ${res.body.status}/${res.body.phase} at generation ${res.body.generation}${error}`,
          );
        }
        return res.body;
      },
      { timeoutMs, intervalMs: 200, describe: `workspace ${id} to reach ${String(status)}` },
    );
  } catch (err) {
    // A wait that ends elsewhere (say, a missed boot deadline on a loaded CI machine) is only
    // worth its report with the boot's own account of where the time went.
    if (err instanceof Error && last !== undefined) {
      err.message += `\n${await workspaceDiagnostics(stack, token, last)}`;
    }
    throw err;
  }
}

/** The boot log's events and console tail, plus whatever the stack's `diagnose` adds; never throws. */
async function workspaceDiagnostics(stack: Stack, token: string, workspace: Json): Promise<string> {
  const lines: string[] = [`workspace: ${JSON.stringify(workspace)}`];
  try {
    const res = await stack.api.call('GET', `/v1/workspaces/${workspace.id}/boot-log`, { token });
    if (res.status === 200) {
      const events = (res.body.events ?? []) as { ts: string; phase: string; message?: string }[];
      lines.push(`boot events (${events.length}):`);
      for (const e of events.slice(-20))
        lines.push(`  ${e.ts} ${e.phase}${e.message ? ` ${e.message}` : ''}`);
      const tail = String(res.body.console ?? '')
        .trimEnd()
        .split('\n')
        .slice(-30);
      lines.push(`console (last ${tail.length} lines):`, ...tail.map((l) => `  ${l}`));
    } else lines.push(`boot log: ${res.status}`);
  } catch (err) {
    lines.push(`boot log: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (stack.diagnose) {
    lines.push(await stack.diagnose(workspace).catch((err: unknown) => `diagnose: ${String(err)}`));
  }
  return lines.join('\n');
}

/** Runs one orphan sweep now through the operator's entry point (a 503 retried, as a client would). */
export async function runOrphanSweep(stack: Stack): Promise<OrphanSweepResult> {
  const res = await stack.api.callRetrying503('POST', '/v1/admin/sweeps/orphans/run', {
    token: stack.adminToken,
  });
  if (res.status !== 200) throw new Error(`orphan sweep: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as OrphanSweepResult;
}

/** Runs orphan sweeps until one removes something of the workspace (once past the grace period). */
export async function orphanRemovalOf(
  stack: Stack,
  workspaceId: string,
  timeoutMs = 30_000,
): Promise<OrphanRemoval> {
  return waitFor(
    async () => (await runOrphanSweep(stack)).removed.find((r) => r.workspaceId === workspaceId),
    {
      timeoutMs,
      intervalMs: 500,
      describe: `the orphan sweep to remove something of ${workspaceId}`,
    },
  );
}

/** Containers of a workspace, by label, in any state. */
export async function containersOf(docker: Dockerode, workspaceId: string) {
  return docker.listContainers({ all: true, filters: { label: [`wo.workspace-id=${workspaceId}`] } });
}

export async function volumesOf(docker: Dockerode, workspaceId: string) {
  const { Volumes } = await docker.listVolumes();
  return (Volumes ?? []).filter((v) => v.Name.startsWith(`ws-${workspaceId}-`));
}

export const REPO_ROOT = path.resolve(new URL('../..', import.meta.url).pathname);

/**
 * A bare docker workspace row with no workflow behind it (what an ambiguous create leaves, or a
 * fixture for routes that only read rows); its id.
 */
export async function insertWorkspaceRow(
  db: Queryable,
  orgId: string,
  name: (id: string) => string = () => 'row',
): Promise<string> {
  const id = newId();
  await insertWorkspace(db, {
    id,
    orgId,
    name: name(id),
    backend: 'docker',
    template: null,
    runtime: 'claude-code',
    config: {},
    workflowId: workspaceWorkflowId(id),
    parentId: null,
    budgetLimitCents: null,
  });
  return id;
}

/**
 * The stack's API once more, on its own port, with `entity` (and any of `extra`, e.g. `plugins`)
 * standing in for the Temporal side: for routes whose answer depends on what the workflow service
 * says (a start that fails, the input a start receives, a Temporal that cannot be reached).
 */
export async function serveApiWith(
  stack: Stack,
  entity: Partial<EntityClient>,
  extra: Partial<ApiDeps> = {},
): Promise<{ api: ApiClient; close(): Promise<void> }> {
  const c = stack.config;
  const server = createServer(
    createApp({
      db: stack.service.db.pool,
      entity: entity as EntityClient,
      backends: stack.service.backends,
      secrets: new SecretBox(c.SECRETS_KEY, c.SECRETS_OLD_KEYS),
      log: pino({ level: 'silent' }),
      settings: apiSettings(c),
      readiness: {},
      ...extra,
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    api: new ApiClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
