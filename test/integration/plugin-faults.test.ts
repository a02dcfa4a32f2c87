/**
 * Plugin requests that cannot be carried out, on the real stack (Temporal, PostgreSQL): with
 * Temporal stopped or unreachable, or no worker polling the task queue, POST and DELETE
 * …/plugins answer 503 `temporal_unavailable` with Retry-After within the contract's 5 s and
 * change nothing (the installed v1 stays exactly as it was, so the next start still delivers it);
 * a start whose answer was lost cannot install when it lands later, and one that was carried out
 * is answered as accepted; a heartbeat with plugins unsettled answers while Temporal is away, and
 * a later heartbeat forwards the report it could not.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Client, WorkflowNotFoundError } from '@temporalio/client';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { EntityClient } from '../../src/api/entity.js';
import { PluginWorkflows } from '../../src/api/plugin-workflows.js';
import { DeadlineExceeded } from '../../src/api/temporal-deadline.js';
import { connectTemporal } from '../../src/api/temporal-connection.js';
import { bundlePlugins, requestInstall, settlePlugin } from '../../src/db/plugins.js';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import { loadPluginDir } from '../../src/plugins/catalog.js';
import { pluginWorkflowId } from '../../src/workflows/messages.js';
import { tcpFaultProxy, type ProxyMode } from '../support/tcp-fault-proxy.js';
import { REPO_ROOT, insertWorkspaceRow, serveApiWith, useStack, type ApiClient } from '../support/stack.js';

const CATALOG = path.join(REPO_ROOT, 'plugins');
const HELLO = loadPluginDir(path.join(CATALOG, 'hello-tools'), 'hello-tools');
/** The contract: Temporal or the worker unavailable → 503 within 5 s. */
const CONTRACT_MS = 5_000;

describe('plugin requests that cannot be carried out', () => {
  const t = useStack({ env: { PLUGINS_DIR: CATALOG } });
  const rows: string[] = [];
  // Bare rows with no entity: marked deleted here, not deleted through the API by the fixture.
  afterEach(async () => {
    await t.stack.service.db.pool.query(`UPDATE workspaces SET status = 'deleted' WHERE id = ANY($1)`, [
      rows,
    ]);
  });

  /** A workspace row (generation 1, config hash `h`) in `status`. */
  async function workspace(status: string): Promise<string> {
    const id = await insertWorkspaceRow(t.stack.service.db.pool, t.orgId, (i) => `plug-${i}`);
    rows.push(id);
    await t.stack.service.db.pool.query(
      `UPDATE workspaces SET status = $2, generation = 1, boot_config_hash = 'h' WHERE id = $1`,
      [id, status],
    );
    return id;
  }

  /** hello-tools v0.0.1 installed, as its workflow lands it. */
  async function installedV1(id: string): Promise<void> {
    const requestId = randomBytes(8).toString('hex');
    await requestInstall(t.stack.service.db.pool, {
      workspaceId: id,
      name: 'hello-tools',
      version: '0.0.1',
      sha256: 'a'.repeat(64),
      source: 'local://hello-tools',
      files: [{ path: 'plugin.yaml', contentBase64: Buffer.from('name: hello-tools\n').toString('base64') }],
      requestId,
    });
    await settlePlugin(t.stack.service.db.pool, id, 'hello-tools', requestId, { kind: 'installed' });
  }

  /** Everything the workspace's plugin rows hold, every column: "unchanged" means equal to this. */
  const stored = async (id: string) =>
    (
      await t.stack.service.db.pool.query(
        `SELECT to_jsonb(p) AS row FROM workspace_plugins p WHERE workspace_id = $1 ORDER BY name`,
        [id],
      )
    ).rows.map((r: { row: unknown }) => r.row);

  const list = async (id: string) =>
    (await t.stack.api.call('GET', `/v1/workspaces/${id}/plugins`, { token: t.key })).body.items;

  const noRun = async (id: string) =>
    t.stack.service.temporal.workflow
      .getHandle(pluginWorkflowId(id, 'hello-tools'))
      .describe()
      .then(
        () => 'a plugin workflow exists',
        (err: unknown) => (err instanceof WorkflowNotFoundError ? 'none' : String(err)),
      );

  /** The API with its plugin workflows (and worker check) on `client` and `taskQueue`. */
  async function apiOn(client: Client, taskQueue: string, plugins?: PluginWorkflows) {
    const entity = new EntityClient(client, taskQueue);
    return serveApiWith(t.stack, entity, {
      plugins:
        plugins ??
        new PluginWorkflows(client, taskQueue, {
          requireWorker: (deadline) => entity.requireWorker(deadline),
        }),
    });
  }

  /** Temporal through a proxy set to `mode`: `refuse` is a stopped server, `stall` a network dropping packets. */
  async function temporalAway(mode: ProxyMode) {
    const [host, port] = inject('TEMPORAL_ADDRESS').split(':');
    const proxy = await tcpFaultProxy({ host: host!, port: Number(port) });
    await proxy.set(mode);
    // The API's own kind of connection: closed while a refused call waits for its next retry.
    const connection = await connectTemporal(`127.0.0.1:${proxy.port}`, { lazy: true });
    const served = await apiOn(
      new Client({ connection, namespace: t.stack.config.TEMPORAL_NAMESPACE }),
      t.stack.config.TASK_QUEUE,
    );
    return {
      api: served.api,
      close: async () => {
        await served.close();
        await connection.close();
        await proxy.close();
      },
    };
  }

  /** A queue no worker polls, on the real Temporal. */
  const noWorker = () => apiOn(t.stack.service.temporal, `nobody-polls-${randomBytes(4).toString('hex')}`);

  async function refusedInTime(api: ApiClient, method: string, p: string, body?: unknown) {
    const began = Date.now();
    const res = await api.call(method, p, { token: t.key, body });
    const tookMs = Date.now() - began;
    expect(res.status, `${method} ${p}: ${JSON.stringify(res.body)}`).toBe(503);
    expect(res.body.error.code).toBe('temporal_unavailable');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(tookMs).toBeLessThan(CONTRACT_MS);
  }

  it.each([
    ['Temporal stopped', () => temporalAway('refuse')],
    ['Temporal unreachable (packets dropped)', () => temporalAway('stall')],
    ['no worker polling the task queue', noWorker],
  ])('%s: POST and DELETE answer 503 with Retry-After within 5 s and change nothing', async (_, serve) => {
    // Stopped: the accepted request at the end settles at once (stored for the next start).
    const id = await workspace('stopped');
    await installedV1(id);
    const fresh = await workspace('stopped');
    const before = await stored(id);
    const listed = await list(id);
    expect(listed).toMatchObject([{ name: 'hello-tools', version: '0.0.1', status: 'installed' }]);
    const delivered = await bundlePlugins(t.stack.service.db.pool, id);

    const broken = await serve();
    try {
      await refusedInTime(broken.api, 'POST', `/v1/workspaces/${id}/plugins`, {
        source: 'local://hello-tools',
      });
      await refusedInTime(broken.api, 'DELETE', `/v1/workspaces/${id}/plugins/hello-tools`);
      await refusedInTime(broken.api, 'POST', `/v1/workspaces/${fresh}/plugins`, {
        source: 'local://hello-tools',
      });
    } finally {
      await broken.close();
    }

    // v1 exactly as it was, still what the next start delivers; no row for the new name; no run.
    expect(await stored(id)).toEqual(before);
    expect(await list(id)).toEqual(listed);
    expect(await bundlePlugins(t.stack.service.db.pool, id)).toEqual(delivered);
    expect(await stored(fresh)).toEqual([]);
    expect(await noRun(id)).toBe('none');
    expect(await noRun(fresh)).toBe('none');

    // The same requests through the working API are accepted (nothing was left in flight).
    const accepted = await t.stack.api.call('DELETE', `/v1/workspaces/${id}/plugins/hello-tools`, {
      token: t.key,
    });
    expect(accepted.status).toBe(202);
    await t.stack.service.temporal.workflow.getHandle(pluginWorkflowId(id, 'hello-tools')).result();
  });

  it('a start whose answer was lost installs nothing when it lands later', async () => {
    const id = await workspace('online');
    await installedV1(id);
    const before = await stored(id);
    const late: Array<() => Promise<void>> = [];
    // The deadline fires before Temporal's answer; the start itself reaches Temporal afterwards.
    class LostAnswer extends PluginWorkflows {
      override async start(input: Parameters<PluginWorkflows['start']>[0]): Promise<void> {
        late.push(() => super.start(input, Date.now() + 4_000));
        throw new DeadlineExceeded('temporal call timed out');
      }
    }
    const client = t.stack.service.temporal;
    const queue = t.stack.config.TASK_QUEUE;
    const served = await apiOn(client, queue, new LostAnswer(client, queue));
    try {
      await refusedInTime(served.api, 'POST', `/v1/workspaces/${id}/plugins`, {
        source: 'local://hello-tools',
      });
    } finally {
      await served.close();
    }
    expect(await stored(id)).toEqual(before);

    expect(late).toHaveLength(1);
    await late[0]!();
    const run = client.workflow.getHandle(pluginWorkflowId(id, 'hello-tools'));
    expect(await run.result()).toEqual({ outcome: 'superseded' });
    expect(await stored(id)).toEqual(before);
  });

  it('a start whose answer was lost but that was carried out is answered 202 with the request', async () => {
    // Stopped: the run stores the install for the next start (`pending`) and ends.
    const id = await workspace('stopped');
    await installedV1(id);
    const client = t.stack.service.temporal;
    const queue = t.stack.config.TASK_QUEUE;
    class CarriedOutUnanswered extends PluginWorkflows {
      override async start(...args: Parameters<PluginWorkflows['start']>): Promise<void> {
        await super.start(...args);
        await client.workflow.getHandle(pluginWorkflowId(id, 'hello-tools')).result();
        throw new DeadlineExceeded('temporal call timed out');
      }
    }
    const served = await apiOn(client, queue, new CarriedOutUnanswered(client, queue));
    try {
      const res = await served.api.call('POST', `/v1/workspaces/${id}/plugins`, {
        token: t.key,
        body: { source: 'local://hello-tools' },
      });
      expect(res.status).toBe(202);
      expect(res.body).toMatchObject({ name: 'hello-tools', version: HELLO.version });
    } finally {
      await served.close();
    }
    expect(await list(id)).toMatchObject([
      { name: 'hello-tools', version: HELLO.version, status: 'pending' },
    ]);
  });

  it('a heartbeat with plugins unsettled answers while Temporal is away; a later one forwards the report', async () => {
    const id = await workspace('online');
    // Three installs in flight that the heartbeat reports done: their reports go at once, not in turn.
    const unsettled = ['hello-tools', 'extra-a', 'extra-b'].map((name) => ({
      name,
      installId: randomBytes(8).toString('hex'),
    }));
    for (const p of unsettled) {
      await requestInstall(t.stack.service.db.pool, {
        workspaceId: id,
        name: p.name,
        version: HELLO.version,
        sha256: HELLO.sha256,
        source: `local://${p.name}`,
        files: HELLO.files,
        requestId: p.installId,
      });
    }
    const requestId = unsettled[0]!.installId;
    // Its run, on a queue nobody polls: it waits, and every signal it is sent stays in its history.
    const run = await t.stack.service.temporal.workflow.start('pluginWorkflow', {
      taskQueue: `nobody-polls-${randomBytes(4).toString('hex')}`,
      workflowId: pluginWorkflowId(id, 'hello-tools'),
      args: [
        { workspaceId: id, name: 'hello-tools', action: 'install', requestId, reportDeadlineMs: 60_000 },
      ],
    });
    const token = await mintWorkspaceToken(t.stack.service.db.pool, id, 1);
    const heartbeat = (api: ApiClient) =>
      api.call('POST', '/v1/registry/heartbeat', {
        token,
        body: {
          workspaceId: id,
          generation: 1,
          configHash: 'h',
          plugins: unsettled,
        },
      });
    const reports = async () =>
      ((await run.fetchHistory()).events ?? []).filter(
        (e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'pluginsReported',
      );
    try {
      const away = await temporalAway('stall');
      try {
        const began = Date.now();
        const res = await heartbeat(away.api);
        expect(res.status).toBe(200);
        expect(Date.now() - began).toBeLessThan(CONTRACT_MS);
      } finally {
        await away.close();
      }
      // Not forwarded, not lost: the request is still unsettled, so the next heartbeat reports it.
      expect(await stored(id)).toMatchObject(
        [...unsettled]
          .sort((a, b) => a.name.localeCompare(b.name))
          .map((p) => ({ name: p.name, status: 'installing', request_id: p.installId })),
      );
      expect(await reports()).toEqual([]);
      expect((await heartbeat(t.stack.api)).status).toBe(200);
      expect(await reports()).toHaveLength(1);
    } finally {
      await run.terminate('test cleanup');
    }
  });
  it('a request whose API stopped before starting its run is carried out: by the next request, or by the orphan sweep', async () => {
    const pool = t.stack.service.db.pool;
    const run = (id: string) =>
      t.stack.service.temporal.workflow.getHandle(pluginWorkflowId(id, 'hello-tools'));
    /** Recorded as the API records a request, then no start: the API was killed between the two. */
    async function recordedOnly(id: string): Promise<string> {
      const requestId = randomBytes(8).toString('hex');
      const recorded = await requestInstall(pool, {
        workspaceId: id,
        name: 'hello-tools',
        version: HELLO.version,
        sha256: HELLO.sha256,
        source: 'local://hello-tools',
        files: HELLO.files,
        requestId,
      });
      expect(recorded?.row.status).toBe('installing');
      return requestId;
    }
    /** The request as it is past the lost threshold (30 s), without waiting for it. */
    const aged = (id: string) =>
      pool.query(
        `UPDATE workspace_plugins SET updated_at = now() - interval '1 minute' WHERE workspace_id = $1`,
        [id],
      );
    const install = (id: string) =>
      t.stack.api.call('POST', `/v1/workspaces/${id}/plugins`, {
        token: t.key,
        body: { source: 'local://hello-tools' },
      });

    // Fresh: a request in flight (its API may be starting it right now): 409, and no run is made.
    const a = await workspace('stopped');
    const lostA = await recordedOnly(a);
    const fresh = await install(a);
    expect(fresh.status).toBe(409);
    expect(fresh.body.error.message).toMatch(/in progress/);
    expect(await noRun(a)).toBe('none');

    // Past the threshold: the next request starts the lost request's run and is told so (409);
    // the run settles it (stopped: stored for the next start) and the plugin takes requests again.
    await aged(a);
    const told = await install(a);
    expect(told.status).toBe(409);
    expect(told.body.error.message).toMatch(/left unstarted and has been resumed/);
    expect(await run(a).result()).toEqual({ outcome: 'pending' });
    expect(await stored(a)).toMatchObject([{ status: 'pending', request_id: lostA }]);
    const next = await install(a);
    expect(next.status).toBe(202);
    expect(await run(a).result()).toEqual({ outcome: 'pending' });

    // Nobody asks: the orphan sweep starts it. A lost-looking request whose run is there (a
    // booting workspace's delivery waits) is left to that run.
    const b = await workspace('stopped');
    const lostB = await recordedOnly(b);
    await aged(b);
    const c = await workspace('provisioning');
    const busyC = await recordedOnly(c);
    await aged(c);
    const running = await t.stack.service.temporal.workflow.start('pluginWorkflow', {
      taskQueue: t.stack.config.TASK_QUEUE,
      workflowId: pluginWorkflowId(c, 'hello-tools'),
      args: [
        {
          workspaceId: c,
          name: 'hello-tools',
          action: 'install',
          requestId: busyC,
          reportDeadlineMs: 60_000,
        },
      ],
    });
    try {
      const sweep = await t.stack.api.call('POST', '/v1/admin/sweeps/orphans/run', {
        token: t.stack.adminToken,
      });
      expect(sweep.status).toBe(200);
      const { resumed, failed } = sweep.body.pluginRequests as {
        resumed: Array<{ workspaceId: string }>;
        failed: Array<{ workspaceId: string }>;
      };
      expect(resumed).toContainEqual({
        workspaceId: b,
        name: 'hello-tools',
        action: 'install',
        requestId: lostB,
      });
      expect(resumed.map((r) => r.workspaceId)).not.toContain(c);
      expect(failed.map((r) => r.workspaceId)).not.toContain(c);
      expect(await run(b).result()).toEqual({ outcome: 'pending' });
      expect(await stored(b)).toMatchObject([{ status: 'pending', request_id: lostB }]);
      expect((await running.describe()).status.name).toBe('RUNNING');
    } finally {
      await running.terminate('test cleanup');
    }
  });
});
