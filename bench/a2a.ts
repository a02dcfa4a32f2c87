/**
 * A2A proxy overhead: `message/send` straight to the agent vs through the orchestrator's proxy.
 *
 *   npx tsx bench/a2a.ts [--requests 2000] [--concurrency 1,16] [--backends docker[,ec2]]
 *
 * One run starts its own PostgreSQL, Temporal dev server and the real service in-process
 * (bench/bench-env.ts), provisions one workspace per backend and waits for `online`. Then, per
 * backend, a bounded closed loop (node:http, keep-alive agent, `concurrency` requests in flight)
 * sends the same JSON-RPC `message/send`:
 *
 * - direct: POST / to the workspace's recorded `endpoint` (the agent's A2A server);
 * - bare: POST / to a bare keep-alive reverse proxy started by the bench (node:http server +
 *   undici Pool to the same endpoint, no auth, no log): what a user would put in front instead;
 * - proxied: POST /v1/workspaces/:id/a2a on the API with the org API key.
 *
 * After an untimed warm-up of each kind, the timed requests run per concurrency in ABCABC blocks
 * (direct, bare, proxied, twice; requests/2 each), so all kinds see the same machine state. Every
 * answer must be 200 with a JSON-RPC `result`. Report (Markdown) to stdout and .data/bench-a2a.md;
 * progress on stderr; the last lines of stdout are one JSON line per backend and concurrency (fields
 * in docs/benchmarks.md). The workspaces are deleted and every service stopped in `finally`.
 */
import { AGENT_CREDENTIAL_HEADER } from '../src/security/agent-credential.js';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import type { BackendKind } from '../src/backends/backend.js';
import {
  fmt,
  loadAvg,
  reportHead,
  parseBackends,
  parseInt,
  pct,
  row,
  runBench,
  times,
  type BenchEnv,
  type BenchMeta,
  type Workspace,
} from './bench-env.js';
import { guard, progress, runMain } from './provision-util.js';

/** Per-request cap; a slower answer counts as an error. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Cap on one block of the load loop: the loop stops issuing requests past it. */
const BLOCK_TIMEOUT_MS = 120_000;
const BLOCKS = 2;

interface Target {
  url: URL;
  headers: Record<string, string>;
}

interface LoadResult {
  latencies: number[];
  errors: number;
  firstError: string | null;
  wallMs: number;
}

function sendBody(i: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      jsonrpc: '2.0',
      id: i,
      method: 'message/send',
      params: {
        message: {
          kind: 'message',
          role: 'user',
          messageId: randomUUID(),
          parts: [{ kind: 'text', text: `bench ping ${i}` }],
        },
      },
    }),
  );
}

function once(agent: http.Agent, target: Target, body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(target.url, {
      method: 'POST',
      agent,
      headers: {
        ...target.headers,
        'content-type': 'application/json',
        accept: 'application/json',
        'content-length': String(body.length),
      },
      timeout: REQUEST_TIMEOUT_MS,
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
        try {
          const rpc = JSON.parse(text) as { result?: unknown };
          if (typeof rpc.result !== 'object' || rpc.result === null)
            return reject(new Error(`no JSON-RPC result: ${text.slice(0, 200)}`));
        } catch {
          return reject(new Error(`not JSON: ${text.slice(0, 200)}`));
        }
        resolve();
      });
    });
    req.end(body);
  });
}

/** `requests` requests, `concurrency` in flight at any time, bounded by BLOCK_TIMEOUT_MS. */
async function load(
  agent: http.Agent,
  target: Target,
  requests: number,
  concurrency: number,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let next = 0;
  const t0 = performance.now();
  const deadline = t0 + BLOCK_TIMEOUT_MS;
  const worker = async () => {
    while (next < requests && performance.now() < deadline) {
      const i = next++;
      const body = sendBody(i);
      const start = performance.now();
      try {
        await once(agent, target, body);
        latencies.push(performance.now() - start);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { latencies, errors, firstError, wallMs: performance.now() - t0 };
}

interface KindResult {
  latencies: number[];
  errors: number;
  firstError: string | null;
  wallMs: number;
}

function merge(parts: LoadResult[]): KindResult {
  return {
    latencies: parts.flatMap((p) => p.latencies).sort((a, b) => a - b),
    errors: parts.reduce((s, p) => s + p.errors, 0),
    firstError: parts.find((p) => p.firstError)?.firstError ?? null,
    wallMs: parts.reduce((s, p) => s + p.wallMs, 0),
  };
}

/** The three ways to the same agent, in the order each block runs them. */
const KINDS = ['direct', 'bare', 'proxied'] as const;
type Kind = (typeof KINDS)[number];

interface ConcurrencyResult {
  concurrency: number;
  kinds: Record<Kind, KindResult>;
  activityRows: number;
  load: [string, string];
}

interface BackendResult {
  backend: BackendKind;
  workspace: Workspace;
  runs: ConcurrencyResult[];
}

/**
 * A bare keep-alive reverse proxy to `endpoint`: a node:http server that forwards each request
 * through an undici Pool (kept-alive upstream connections) with the agent credential, streaming
 * both bodies. No auth, no lookups, no log: the floor any proxy in front of the agent pays.
 */
async function startBareProxy(
  endpoint: string,
  credential: string,
  connections: number,
): Promise<{ url: URL; close: () => Promise<void> }> {
  const pool = new Pool(new URL(endpoint).origin, { connections, pipelining: 1 });
  const server = http.createServer((req, res) => {
    void (async () => {
      const upstream = await pool.request({
        path: '/',
        method: 'POST',
        headers: {
          'content-type': req.headers['content-type'] ?? 'application/json',
          accept: req.headers.accept ?? 'application/json',
          [AGENT_CREDENTIAL_HEADER]: credential,
        },
        body: req,
      });
      res.writeHead(upstream.statusCode, {
        'content-type': String(upstream.headers['content-type'] ?? 'application/json'),
      });
      await pipeline(upstream.body, res);
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(502).end(String(err));
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: new URL(`http://127.0.0.1:${port}/`),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.close();
    },
  };
}

async function benchBackend(
  env: BenchEnv,
  backend: BackendKind,
  run: string,
  requests: number,
  concurrencies: number[],
  warmup: number,
): Promise<BackendResult> {
  progress(`${backend}: provisioning one workspace`);
  const workspace = await env.provision(backend, `${run}-${backend}-a2a`);
  progress(`${backend}: workspace ${workspace.id} online at ${workspace.endpoint}`);
  const credential = env.agentCredential(workspace.id, workspace.generation);
  const maxConcurrency = Math.max(...concurrencies);
  const bare = await startBareProxy(workspace.endpoint, credential, maxConcurrency);
  const targets: Record<Kind, Target> = {
    // The agent refuses calls without the proxy's per-generation credential: present it directly.
    direct: { url: new URL('/', workspace.endpoint), headers: { [AGENT_CREDENTIAL_HEADER]: credential } },
    bare: { url: bare.url, headers: {} },
    proxied: {
      url: new URL(`/v1/workspaces/${workspace.id}/a2a`, env.url),
      headers: { authorization: `Bearer ${env.token}` },
    },
  };
  const agents = Object.fromEntries(
    KINDS.map((k) => [k, new http.Agent({ keepAlive: true, maxSockets: maxConcurrency })]),
  ) as Record<Kind, http.Agent>;
  try {
    progress(`${backend}: warm-up, ${warmup} requests of each kind (untimed)`);
    for (const kind of KINDS) {
      const w = await guard(load(agents[kind], targets[kind], warmup, maxConcurrency));
      if (w.errors > 0) throw new Error(`warm-up to ${targets[kind].url.href} failed: ${w.firstError}`);
    }
    const runs: ConcurrencyResult[] = [];
    for (const concurrency of concurrencies) {
      const loadBefore = loadAvg();
      const activityBefore = await activityCount(env, workspace.id);
      const parts: Record<Kind, LoadResult[]> = { direct: [], bare: [], proxied: [] };
      const perBlock = Math.ceil(requests / BLOCKS);
      for (let b = 0; b < BLOCKS; b++) {
        progress(
          `${backend}: concurrency ${concurrency}, block ${b + 1}/${BLOCKS}: ${perBlock} each of ${KINDS.join(', ')}`,
        );
        for (const kind of KINDS) {
          parts[kind].push(await guard(load(agents[kind], targets[kind], perBlock, concurrency)));
        }
      }
      runs.push({
        concurrency,
        kinds: { direct: merge(parts.direct), bare: merge(parts.bare), proxied: merge(parts.proxied) },
        activityRows: (await activityCount(env, workspace.id)) - activityBefore,
        load: [loadBefore, loadAvg()],
      });
    }
    return { backend, workspace, runs };
  } finally {
    for (const a of Object.values(agents)) a.destroy();
    await bare.close();
  }
}

async function activityCount(env: BenchEnv, workspaceId: string): Promise<number> {
  const { rows } = await env.service.db.pool.query<{ n: string }>(
    'SELECT count(*) AS n FROM activity WHERE workspace_id = $1',
    [workspaceId],
  );
  return Number(rows[0]?.n ?? 0);
}

function stats(k: KindResult) {
  return {
    n: k.latencies.length,
    p50: pct(k.latencies, 50),
    p99: pct(k.latencies, 99),
    rps: k.latencies.length / (k.wallMs / 1000),
  };
}

/** The machine-readable result of one backend at one concurrency (fields: docs/benchmarks.md). */
function resultLine(backend: BackendKind, r: ConcurrencyResult): string {
  const d = stats(r.kinds.direct);
  const b = stats(r.kinds.bare);
  const p = stats(r.kinds.proxied);
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return JSON.stringify({
    bench: 'a2a',
    backend,
    concurrency: r.concurrency,
    p50Ratio: round(p.p50 / d.p50),
    throughputRatio: round(p.rps / d.rps),
    addedP50Ms: round(p.p50 - d.p50),
    bareProxyRatio: round(p.p50 / b.p50),
    errors: r.kinds.direct.errors + r.kinds.bare.errors + r.kinds.proxied.errors,
  });
}

const KIND_LABEL: Record<Kind, string> = {
  direct: 'direct (agent endpoint)',
  bare: 'bare proxy (undici, keep-alive)',
  proxied: 'proxied (/v1/workspaces/:id/a2a)',
};

function report(
  opts: BenchMeta & {
    results: BackendResult[];
    requests: number;
    concurrencies: number[];
    warmup: number;
  },
): string {
  const lines: string[] = [
    ...reportHead('A2A proxy overhead (`message/send`)', opts),
    `- Per backend, concurrency and kind: ${opts.requests} timed requests, concurrency ` +
      `${opts.concurrencies.join(' then ')} (closed loop,`,
    '  node:http keep-alive agent, one per kind), after an untimed warm-up of ' +
      `${opts.warmup} requests of each kind.`,
    `  Timed requests ran in ${BLOCKS * KINDS.length} back-to-back blocks per concurrency: ` +
      `${KINDS.join(', ')}, ${KINDS.join(', ')}.`,
    '',
    '| backend | concurrency | kind | ok | errors | p50 ms | p99 ms | req/s |',
    '|---|---:|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of opts.results) {
    for (const c of r.runs) {
      for (const kind of KINDS) {
        const k = c.kinds[kind];
        const s = stats(k);
        lines.push(
          row([
            r.backend,
            String(c.concurrency),
            KIND_LABEL[kind],
            String(s.n),
            String(k.errors),
            fmt(s.p50),
            fmt(s.p99),
            fmt(s.rps, 0),
          ]),
        );
      }
    }
  }
  lines.push(
    '',
    '| backend | concurrency | proxied/direct p50 | proxied/direct p99 | proxied/direct throughput | added p50 ms | proxied/bare p50 |',
    '|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of opts.results) {
    for (const c of r.runs) {
      const d = stats(c.kinds.direct);
      const b = stats(c.kinds.bare);
      const p = stats(c.kinds.proxied);
      lines.push(
        row([
          r.backend,
          String(c.concurrency),
          times(p.p50, d.p50),
          times(p.p99, d.p99),
          times(p.rps, d.rps),
          fmt(p.p50 - d.p50),
          times(p.p50, b.p50),
        ]),
      );
    }
  }
  lines.push('', '## Notes', '');
  for (const r of opts.results) {
    lines.push(
      `- ${r.backend}: workspace \`${r.workspace.id}\`, agent endpoint \`${r.workspace.endpoint}\`.`,
    );
    for (const c of r.runs) {
      lines.push(
        `  Concurrency ${c.concurrency}: load average ${c.load[0]} before its blocks, ${c.load[1]} after; ` +
          `the proxy wrote ${c.activityRows} \`activity\` rows for this workspace (one inbound row per ` +
          'proxied call); direct and bare calls write none.',
      );
      const errs = KINDS.map((k) => c.kinds[k].firstError).filter(Boolean);
      if (errs.length > 0) lines.push(`  First error: ${errs[0]}`);
    }
  }
  lines.push(
    '- What the proxy adds per call over the bare proxy: API-key auth, the workspace lookup, the',
    "  workspace's secrets for redaction, the agent credential, the budget check, and the activity row",
    '  written before the response ends.',
    '- Everything is loopback / docker-bridge traffic on this one machine; client, API, PostgreSQL,',
    '  Temporal and the agent share the CPUs, so the ratios are for this machine only.',
    '- Latency is per request from write to the last byte of the answer; percentiles are nearest-rank.',
    '  req/s = successful requests / summed wall time of that kind’s blocks.',
    '',
    '## Result lines',
    '',
    ...opts.results.flatMap((r) => r.runs.map((c) => resultLine(r.backend, c))),
    '',
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '1,16' },
      warmup: { type: 'string', default: '200' },
      backends: { type: 'string', default: 'docker' },
    },
    strict: true,
  });
  const requests = parseInt('requests', values.requests, 1, 100_000);
  const concurrencies = values.concurrency.split(',').map((c) => parseInt('concurrency', c, 1, 256));
  const warmup = parseInt('warmup', values.warmup, 0, 10_000);
  const backends = parseBackends(values.backends);
  await runBench({
    script: 'bench/a2a.ts',
    runPrefix: 'ba',
    reportName: 'bench-a2a.md',
    backends,
    measure: async (env, run) => {
      const results: BackendResult[] = [];
      for (const backend of backends) {
        results.push(await benchBackend(env, backend, run, requests, concurrencies, warmup));
      }
      return results;
    },
    report: (results, meta) => report({ ...meta, results, requests, concurrencies, warmup }),
  });
}

runMain(main);
