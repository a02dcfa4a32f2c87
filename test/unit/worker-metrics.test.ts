/**
 * Workers sharing a host and one WORKER_METRICS_ADDRESS range (docker-compose.yml's replicas in
 * the host's network) each serve the SDK's metrics on a port of their own: the first of the range
 * no other process holds. Real Temporal runtimes, one per child process (the runtime is a process
 * singleton); no server needed, the exporter serves at install.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import readline from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { metricsAddresses } from '../../src/worker/metrics-address.js';
import { workerMetricsUrls } from '../../src/service.js';
import { loadConfig } from '../../src/config.js';
import { REPO_ROOT } from '../setup/services.js';
import { mergeWorkerPages } from '../../src/api/worker-metrics.js';
import { TS_NODE_ARGS } from '../support/ts-node-args.js';

/** A worker process's runtime, installed with `setting`; its first stdout line says what it served. */
function installIn(setting: string): { child: ChildProcess; served: Promise<string> } {
  const script = `
    import pino from 'pino';
    import { installWorkerRuntime } from './src/worker/runtime.ts';
    console.log('served ' + installWorkerRuntime(pino({ level: 'silent' }), ${JSON.stringify(setting)}));
    // Held until the test ends its stdin, so the next child meets this one's port taken.
    process.stdin.resume();
    process.stdin.on('end', () => process.exit(0));
  `;
  const child = spawn(process.execPath, [...TS_NODE_ARGS, '--input-type=module', '-e', script], {
    cwd: REPO_ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: child.stdout! });
  const served = new Promise<string>((resolve, reject) => {
    lines.once('line', (line) => resolve(line.replace(/^served /, '')));
    child.once('exit', (code) => reject(new Error(`the child exited ${code} before installing`)));
  });
  return { child, served };
}

async function listen(port: number): Promise<Server | null> {
  const server = createServer();
  server.listen(port, '127.0.0.1');
  const outcome = await Promise.race([
    once(server, 'listening').then(() => true),
    once(server, 'error').then(() => false),
  ]);
  return outcome ? server : null;
}

/** Three consecutive free ports, the first held by this process (another program on the host). */
async function rangeWithFirstTaken(): Promise<{ first: number; holder: Server }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = 20_000 + Math.floor(Math.random() * 40_000);
    const servers = await Promise.all([first, first + 1, first + 2].map(listen));
    const [holder, ...others] = servers;
    await Promise.all(others.map((s) => s && new Promise((r) => s.close(r))));
    if (holder && others.every(Boolean)) return { first, holder };
    if (holder) await new Promise((r) => holder.close(r));
  }
  throw new Error('no three consecutive free ports found');
}

describe('WORKER_METRICS_ADDRESS', () => {
  const children: ChildProcess[] = [];
  let holder: Server | undefined;
  afterAll(async () => {
    for (const c of children) c.stdin?.end();
    await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit') : null)));
    if (holder) await new Promise((r) => holder!.close(r));
  });

  it('the forms: one address, each port of a range in order, none for off', () => {
    expect(metricsAddresses('127.0.0.1:9464')).toEqual(['127.0.0.1:9464']);
    expect(metricsAddresses('[::1]:9464-9466')).toEqual(['[::1]:9464', '[::1]:9465', '[::1]:9466']);
    expect(metricsAddresses('off')).toEqual([]);
    expect(metricsAddresses('127.0.0.1:9466-9464')).toBeNull();
  });

  it('replicas sharing a range serve on ports of their own past one another program holds; past the range, none and the worker runs on', async () => {
    const taken = await rangeWithFirstTaken();
    holder = taken.holder;
    const setting = `127.0.0.1:${taken.first}-${taken.first + 2}`;
    const served: string[] = [];
    // One after another, as replicas come up: each meets the ports of those before it taken.
    for (let i = 0; i < 3; i++) {
      const worker = installIn(setting);
      children.push(worker.child);
      served.push(await worker.served);
    }
    expect(served).toEqual([`127.0.0.1:${taken.first + 1}`, `127.0.0.1:${taken.first + 2}`, 'undefined']);
    for (const address of served.slice(0, 2)) {
      const res = await fetch(`http://${address}/metrics`);
      expect(res.status, address).toBe(200);
      expect(res.headers.get('content-type'), address).toMatch(/^text\/plain/);
    }
    // The one that found no port is alive with a runtime (installed without metrics).
    expect(children[2]!.exitCode).toBeNull();
  });

  it("the API appends the page its own process's runtime serves, never the configured port it could not bind", () => {
    const env = {
      ADMIN_TOKEN: 'a'.repeat(32),
      SECRETS_KEY: Buffer.alloc(32, 1).toString('base64'),
      RUNTIME_IMAGE: 'wo-runtime:test',
      WORKER_METRICS_ADDRESS: '0.0.0.0:9464-9470',
    };
    const config = loadConfig(env);
    expect(workerMetricsUrls(config, '0.0.0.0:9465')).toEqual(['http://127.0.0.1:9465/metrics']);
    expect(workerMetricsUrls(config, undefined)).toEqual([]);
    const configured = loadConfig({
      ...env,
      WORKER_METRICS_URL: 'http://worker-1:9464/metrics, http://worker-2:9464/metrics',
    });
    expect(workerMetricsUrls(configured, '0.0.0.0:9465')).toEqual([
      'http://worker-1:9464/metrics',
      'http://worker-2:9464/metrics',
    ]);
    expect(workerMetricsUrls(loadConfig({ ...env, WORKER_METRICS_URL: 'off' }), '0.0.0.0:9465')).toEqual([]);
    // A page listed twice is fetched once (its series would be there twice).
    const twice = loadConfig({ ...env, WORKER_METRICS_URL: 'http://w:9464/metrics,http://w:9464/metrics' });
    expect(workerMetricsUrls(twice, undefined)).toEqual(['http://w:9464/metrics']);
    for (const bad of ['', ',', 'ftp://worker-1/metrics', 'http://worker-1:9464/metrics,not a url'])
      expect(() => loadConfig({ ...env, WORKER_METRICS_URL: bad }), bad).toThrow(/WORKER_METRICS_URL/);
  });
});

describe("the workers' pages on the API's /metrics", () => {
  const page = (n: number) =>
    [
      '# HELP temporal_request Client requests',
      '# TYPE temporal_request counter',
      `temporal_request{namespace="default",operation="PollWorkflowTaskQueue"} ${n}`,
      '# HELP temporal_workflow_task_execution_latency Workflow task latency',
      '# TYPE temporal_workflow_task_execution_latency histogram',
      `temporal_workflow_task_execution_latency_bucket{task_queue="q",le="+Inf"} ${n}`,
      `temporal_workflow_task_execution_latency_sum{task_queue="q"} ${n * 10}`,
      `temporal_workflow_task_execution_latency_count{task_queue="q"} ${n}`,
      '# HELP process_cpu_seconds_total not the SDK',
      '# TYPE process_cpu_seconds_total counter',
      'process_cpu_seconds_total 9',
      'temporal_num_pollers 2',
      '',
    ].join('\n');

  it('one worker: its temporal_* lines as they are, nothing else', () => {
    const out = mergeWorkerPages([{ source: '127.0.0.1:9464', text: page(1) }], false);
    expect(out).toBe(
      page(1)
        .split('\n')
        .filter((l) => /^(# (HELP|TYPE) )?temporal_/.test(l))
        .join('\n') + '\n',
    );
  });

  it("several: each family declared once, with every worker's samples told apart by wo_worker", () => {
    const out = mergeWorkerPages(
      [
        { source: '127.0.0.1:9464', text: page(1) },
        { source: '127.0.0.1:9465', text: page(2) },
      ],
      true,
    );
    const lines = out.trimEnd().split('\n');
    expect(lines.filter((l) => l === '# TYPE temporal_request counter')).toHaveLength(1);
    expect(
      lines.filter((l) => l.startsWith('# TYPE temporal_workflow_task_execution_latency ')),
    ).toHaveLength(1);
    // A family's samples follow its own TYPE line, both workers', before the next family begins.
    const histogram = lines.indexOf('# TYPE temporal_workflow_task_execution_latency histogram');
    expect(lines.slice(histogram + 1, histogram + 7)).toEqual([
      'temporal_workflow_task_execution_latency_bucket{wo_worker="127.0.0.1:9464",task_queue="q",le="+Inf"} 1',
      'temporal_workflow_task_execution_latency_sum{wo_worker="127.0.0.1:9464",task_queue="q"} 10',
      'temporal_workflow_task_execution_latency_count{wo_worker="127.0.0.1:9464",task_queue="q"} 1',
      'temporal_workflow_task_execution_latency_bucket{wo_worker="127.0.0.1:9465",task_queue="q",le="+Inf"} 2',
      'temporal_workflow_task_execution_latency_sum{wo_worker="127.0.0.1:9465",task_queue="q"} 20',
      'temporal_workflow_task_execution_latency_count{wo_worker="127.0.0.1:9465",task_queue="q"} 2',
    ]);
    // A sample with no labels, and no declaration of its own, gets the label too.
    expect(lines).toContain('temporal_num_pollers{wo_worker="127.0.0.1:9465"} 2');
    expect(out).not.toContain('process_cpu_seconds_total');
    // Every series once: no two samples alike.
    const samples = lines.filter((l) => !l.startsWith('#'));
    expect(new Set(samples.map((l) => l.replace(/ \S+$/, ''))).size).toBe(samples.length);
  });
});
