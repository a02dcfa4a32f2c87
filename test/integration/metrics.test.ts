/**
 * What an operator scrapes and reads (docs/operations.md "Metrics" and "Logs"), on the real stack
 * as it is deployed: the API in this process and the worker as a separate process, so every figure
 * the worker observes must reach /metrics through the DB. After a provision to online and a sweep,
 * /metrics exposes each named series with its labels, the worker serves the SDK's temporal_*
 * series on its own port, and the log lines of both processes carry the request id, workspace and
 * workflow, never the org key or a secret value. Docker only: none of it is a backend's.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BOOT_PHASES } from '../../src/api/schemas.js';
import { recordProvision } from '../../src/db/metrics.js';
import { createLogger } from '../../src/log.js';
import { createFreshDatabase, type FreshDatabase } from '../setup/databases.js';
import { freePort } from '../setup/free-port.js';
import { waitFor } from '../setup/wait-for.js';
import {
  createOrg,
  deleteLeftoverWorkspaces,
  startStack,
  testEnv,
  waitForStatus,
  type Stack,
} from '../support/stack.js';
import { findSamples, samples } from '../support/prometheus.js';
import { spawnWorker, type WorkerProcess } from '../support/worker-process.js';

/** A second replica's page: the same family as the real worker's, for another task queue. */
const REPLICA_PAGE = [
  '# HELP temporal_activity_execution_latency Histogram of activity execution latencies',
  '# TYPE temporal_activity_execution_latency histogram',
  'temporal_activity_execution_latency_bucket{task_queue="replica",le="+Inf"} 3',
  'temporal_activity_execution_latency_sum{task_queue="replica"} 120',
  'temporal_activity_execution_latency_count{task_queue="replica"} 3',
  '',
].join('\n');

describe('metrics and logs of a provision', () => {
  let apiLog = '';
  const capture = new Writable({
    write(chunk: Buffer, _enc, done) {
      apiLog += chunk.toString();
      done();
    },
  });
  let stack: Stack;
  let worker: WorkerProcess;
  let orgKey = '';
  let workerMetricsUrl = '';
  let replica: Server;
  let replicaPort = 0;
  let downUrl = '';
  let env: Record<string, string> = {};
  // A database of its own: the run's shared one counts other files' workspaces and workflows.
  let database: FreshDatabase | undefined;
  const secretValue = `sk-live-${randomBytes(12).toString('hex')}`;

  beforeAll(async () => {
    database = await createFreshDatabase(inject('DATABASE_URL'), 'metrics');
    env = testEnv({ DATABASE_URL: database.url });
    const metricsPort = await freePort();
    workerMetricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    // Two replicas more, as compose lists them: one serving a page of its own, one down.
    replica = createServer((_req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end(REPLICA_PAGE);
    });
    await new Promise<void>((resolve) => replica.listen(0, '127.0.0.1', resolve));
    replicaPort = (replica.address() as AddressInfo).port;
    downUrl = `http://127.0.0.1:${await freePort()}/metrics`;
    stack = await startStack({
      // As deployed (docker-compose.yml): the API's /metrics appends the workers' temporal_*.
      env: {
        ...env,
        WORKER_METRICS_URL: `${workerMetricsUrl},http://127.0.0.1:${replicaPort}/metrics,${downUrl}`,
      },
      worker: false,
      log: createLogger({ level: 'debug', destination: capture, hide: [env.ADMIN_TOKEN] }),
    });
    orgKey = (await createOrg(stack)).apiKey;
    worker = await spawnWorker(
      {
        ...env,
        DOCKER_PLATFORM_URL: `http://host.docker.internal:${stack.service.port!}`,
        WORKER_METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
      },
      { logLevel: 'debug' },
    );
  });
  afterAll(async () => {
    // A failed test leaves its workspace: deleted while the worker still runs.
    if (stack && worker) await deleteLeftoverWorkspaces(stack, { workerElsewhere: true });
    await worker?.kill('SIGTERM');
    await stack?.close();
    await database?.drop();
    await new Promise((resolve) => (replica ? replica.close(resolve) : resolve(undefined)));
  });

  const scrape = async (): Promise<string> => {
    const res = await fetch(`${stack.url}/metrics`);
    expect(res.status).toBe(200);
    return res.text();
  };

  it('exposes every named series after a provision, a sweep and a delete; the worker serves temporal_*', async () => {
    // A fresh deployment (its own database: no sweep ran yet) has every sweep's run counters, at 0.
    const fresh = await scrape();
    for (const sweep of ['health', 'orphans', 'budget']) {
      expect(findSamples(fresh, 'wo_sweep_runs_total', { sweep, outcome: 'ok' })).toEqual([
        expect.objectContaining({ value: 0 }),
      ]);
    }

    const created = await fetch(`${stack.url}/v1/workspaces`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${orgKey}`,
        'content-type': 'application/json',
        'x-request-id': 'obs-create-1',
      },
      body: JSON.stringify({ name: 'measured', backend: 'docker', secrets: { API_KEY: secretValue } }),
    });
    expect(created.status).toBe(202);
    expect(created.headers.get('x-request-id')).toBe('obs-create-1');
    const id = String(((await created.json()) as { id: string }).id);
    await waitForStatus(stack, orgKey, id, 'online');

    const sweep = await stack.api.callRetrying503('POST', '/v1/admin/sweeps/health/run', {
      token: stack.adminToken,
    });
    expect(sweep.status).toBe(200);

    await waitFor(
      async () => {
        const t = await scrape();
        const swept = findSamples(t, 'wo_workflow_outcomes_total', {
          workflow: 'healthSweepWorkflow',
          outcome: 'completed',
        });
        // The worker times the provision just after the workspace reads online.
        const timed = findSamples(t, 'wo_provision_duration_seconds_count', {
          backend: 'docker',
          phase: 'total',
        });
        return swept.length > 0 && timed.length > 0 ? t : null;
      },
      { timeoutMs: 30_000, intervalMs: 250, describe: 'the health sweep and the provision to be counted' },
    );
    // Observed once per generation: a retried transition activity adds nothing twice.
    expect(await recordProvision(stack.service.db.pool, id, 1, BOOT_PHASES)).toBe(false);
    let text = await scrape();

    // HTTP: the create under its route pattern; no route label carries an id.
    const creates = findSamples(text, 'wo_http_request_duration_seconds_count', {
      route: '/v1/workspaces',
      method: 'POST',
      status: '202',
    });
    expect(creates[0]?.value).toBeGreaterThanOrEqual(1);
    expect(
      findSamples(text, 'wo_http_request_duration_seconds_count', {
        route: '/v1/workspaces/:id',
        method: 'GET',
      })[0]?.value,
    ).toBeGreaterThanOrEqual(1);
    for (const s of samples(text, 'wo_http_request_duration_seconds_count')) {
      expect(s.labels.route).not.toContain(id);
      expect(s.labels.route === 'unmatched' || s.labels.route!.startsWith('/')).toBe(true);
    }

    // Workspaces by status and backend, read from the DB.
    expect(
      findSamples(text, 'wo_workspaces', { status: 'online', backend: 'docker' })[0]?.value,
    ).toBeGreaterThanOrEqual(1);

    // The NOTIFY queue the API's change feed listens on: read from PostgreSQL, nearly empty.
    const notifyQueue = findSamples(text, 'wo_pg_notify_queue_usage', {});
    expect(notifyQueue).toHaveLength(1);
    expect(notifyQueue[0]!.value).toBeGreaterThanOrEqual(0);
    expect(notifyQueue[0]!.value).toBeLessThan(0.01);

    // Provision phases, recorded by the worker process, served by this API.
    for (const phase of ['total', 'resource', 'boot', 'agent-started']) {
      const buckets = findSamples(text, 'wo_provision_duration_seconds_bucket', { backend: 'docker', phase });
      expect(buckets.length, `buckets of phase ${phase}`).toBeGreaterThan(2);
      const inf = buckets.find((b) => b.labels.le === '+Inf')!;
      expect(inf.value).toBeGreaterThanOrEqual(1);
      // Cumulative: never decreasing with the bound.
      const values = buckets.map((b) => b.value);
      expect(values).toEqual([...values].sort((a, b) => a - b));
      const count = findSamples(text, 'wo_provision_duration_seconds_count', {
        backend: 'docker',
        phase,
      })[0]!;
      // One provision, observed once.
      expect(count.value).toBe(1);
      expect(inf.value).toBe(1);
    }
    expect(
      findSamples(text, 'wo_provision_duration_seconds_sum', { backend: 'docker', phase: 'total' })[0]!.value,
    ).toBeGreaterThan(0);

    // The sweep that ran through the admin route.
    expect(
      samples(text, 'wo_sweep_runs_total')
        .filter((s) => s.labels.sweep === 'health')
        .reduce((n, s) => n + s.value, 0),
    ).toBeGreaterThanOrEqual(1);
    expect(findSamples(text, 'wo_sweep_duration_seconds', { sweep: 'health' })).toHaveLength(1);

    // The entity's execution ends with the workspace.
    const del = await stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: orgKey });
    expect(del.status).toBe(202);
    await waitForStatus(stack, orgKey, id, 'deleted');
    text = await waitFor(
      async () => {
        const t = await scrape();
        return findSamples(t, 'wo_workflow_outcomes_total', {
          workflow: 'workspaceWorkflow',
          outcome: 'completed',
        }).length > 0
          ? t
          : null;
      },
      { timeoutMs: 30_000, intervalMs: 250, describe: 'the workspace workflow to be counted' },
    );
    expect(findSamples(text, 'wo_workspaces', { status: 'online', backend: 'docker' })).toHaveLength(1);

    // The worker's own endpoint: the SDK's metrics, for this worker's task queue.
    const workerText = await waitFor(
      async () => {
        const res = await fetch(workerMetricsUrl);
        const t = await res.text();
        return res.ok && t.includes(`task_queue="${env.TASK_QUEUE}"`) ? t : null;
      },
      { timeoutMs: 30_000, intervalMs: 250, describe: 'the worker to serve temporal_* metrics' },
    );
    const temporalSeries = workerText.split('\n').filter((l) => l.startsWith('temporal_'));
    expect(temporalSeries.length).toBeGreaterThan(0);
    expect(temporalSeries.some((l) => l.startsWith('temporal_activity_execution_latency'))).toBe(true);
    // And the API's one scrape has them (api.md: /metrics has the workers' temporal_*), its own
    // too: each family declared once, every replica's samples labelled with its page, the one down
    // left out (and logged).
    const apiText = await scrape();
    const workerPort = new URL(workerMetricsUrl).port;
    expect(apiText).toMatch(
      new RegExp(
        `^temporal_activity_execution_latency\\S*\\{wo_worker="127\\.0\\.0\\.1:${workerPort}",[^}]*task_queue="${env.TASK_QUEUE}"`,
        'm',
      ),
    );
    expect(apiText).toContain(
      `temporal_activity_execution_latency_count{wo_worker="127.0.0.1:${replicaPort}",task_queue="replica"} 3`,
    );
    expect(apiText.match(/^# TYPE temporal_activity_execution_latency /gm)).toHaveLength(1);
    expect(apiText).toMatch(/^wo_http_requests_total\{/m);
    expect(apiLog).toContain(downUrl);

    // Logs: the create's lines carry its request id and the workspace it made; the worker's
    // activity lines carry the workflow and the workspace; no process logs the key or the secret.
    const apiLines = apiLog
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const createLines = apiLines.filter((l) => l.requestId === 'obs-create-1');
    expect(createLines.length).toBeGreaterThan(0);
    for (const l of createLines) {
      expect(l.workspaceId).toBe(id);
      expect(l.workflowId).toBe(`workspace:${id}`);
    }
    expect(createLines.some((l) => l.msg === 'request answered' && l.route === '/v1/workspaces')).toBe(true);
    const polled = apiLines.filter((l) => l.route === '/v1/workspaces/:id' && l.method === 'GET');
    expect(polled.length).toBeGreaterThan(0);
    for (const l of polled) {
      expect(l.workspaceId).toBe(id);
      expect(typeof l.requestId).toBe('string');
    }
    const workerLines = worker
      .output()
      .split('\n')
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return []; // the line being written as the output was read
        }
      });
    const activityLines = workerLines.filter((l) => l.activityType === 'startResource');
    expect(activityLines.length).toBeGreaterThan(0);
    for (const l of activityLines) {
      expect(l.workflowId).toBe(`workspace:${id}`);
      expect(l.workspaceId).toBe(id);
    }
    for (const [where, out] of [
      ['api', apiLog],
      ['worker', worker.output()],
    ] as const) {
      expect(out, `${where} log`).not.toContain(orgKey);
      expect(out, `${where} log`).not.toContain(secretValue);
      expect(out, `${where} log`).not.toContain(env.ADMIN_TOKEN);
    }
  });
});
