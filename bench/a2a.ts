/**
 * A2A proxy overhead: `message/send` straight to the agent vs through the orchestrator's proxy.
 *
 *   npx tsx bench/a2a.ts [--requests 2000] [--concurrency 16] [--backends docker[,ec2]]
 *
 * One run starts its own PostgreSQL, Temporal dev server and the real service in-process
 * (bench/bench-env.ts), provisions one workspace per backend and waits for `online`. Then, per
 * backend, a bounded closed loop (node:http, keep-alive agent, `concurrency` requests in flight)
 * sends the same JSON-RPC `message/send`:
 *
 * - direct: POST / to the workspace's recorded `endpoint` (the agent's A2A server);
 * - proxied: POST /v1/workspaces/:id/a2a on the API with the org API key.
 *
 * After an untimed warm-up of each kind, the timed requests run in ABAB blocks (direct, proxied,
 * direct, proxied; requests/2 each), so both kinds see the same machine state. Every answer must
 * be 200 with a JSON-RPC `result`. Report (Markdown) to stdout and .data/bench-a2a.md; progress on
 * stderr. The workspaces are deleted and every service stopped in `finally`.
 */
import { AGENT_CREDENTIAL_HEADER } from '../src/security/agent-credential.js';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
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

interface BackendResult {
  backend: BackendKind;
  workspace: Workspace;
  direct: KindResult;
  proxied: KindResult;
  activityRows: number;
  load: [string, string];
}

async function benchBackend(
  env: BenchEnv,
  backend: BackendKind,
  run: string,
  requests: number,
  concurrency: number,
  warmup: number,
): Promise<BackendResult> {
  progress(`${backend}: provisioning one workspace`);
  const workspace = await env.provision(backend, `${run}-${backend}-a2a`);
  progress(`${backend}: workspace ${workspace.id} online at ${workspace.endpoint}`);
  // The agent refuses calls without the proxy's per-generation credential: present it directly.
  const direct: Target = {
    url: new URL('/', workspace.endpoint),
    headers: { [AGENT_CREDENTIAL_HEADER]: env.agentCredential(workspace.id, workspace.generation) },
  };
  const proxied: Target = {
    url: new URL(`/v1/workspaces/${workspace.id}/a2a`, env.url),
    headers: { authorization: `Bearer ${env.token}` },
  };
  const directAgent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const proxiedAgent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  try {
    const loadBefore = loadAvg();
    progress(`${backend}: warm-up, ${warmup} requests of each kind (untimed)`);
    for (const [agent, target] of [
      [directAgent, direct],
      [proxiedAgent, proxied],
    ] as const) {
      const w = await guard(load(agent, target, warmup, concurrency));
      if (w.errors > 0) throw new Error(`warm-up to ${target.url.href} failed: ${w.firstError}`);
    }
    const activityBefore = await activityCount(env, workspace.id);
    const directParts: LoadResult[] = [];
    const proxiedParts: LoadResult[] = [];
    const perBlock = Math.ceil(requests / BLOCKS);
    for (let b = 0; b < BLOCKS; b++) {
      progress(`${backend}: block ${b + 1}/${BLOCKS}: ${perBlock} direct, then ${perBlock} proxied`);
      directParts.push(await guard(load(directAgent, direct, perBlock, concurrency)));
      proxiedParts.push(await guard(load(proxiedAgent, proxied, perBlock, concurrency)));
    }
    const activityRows = (await activityCount(env, workspace.id)) - activityBefore;
    return {
      backend,
      workspace,
      direct: merge(directParts),
      proxied: merge(proxiedParts),
      activityRows,
      load: [loadBefore, loadAvg()],
    };
  } finally {
    directAgent.destroy();
    proxiedAgent.destroy();
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

function report(
  opts: BenchMeta & {
    results: BackendResult[];
    requests: number;
    concurrency: number;
    warmup: number;
  },
): string {
  const lines: string[] = [
    ...reportHead('A2A proxy overhead (`message/send`)', opts),
    `- Per backend and kind: ${opts.requests} timed requests, concurrency ${opts.concurrency} (closed loop,`,
    '  node:http keep-alive agent, one per kind), after an untimed warm-up of ' +
      `${opts.warmup} requests of each kind.`,
    `  Timed requests ran in ${BLOCKS * 2} back-to-back blocks: direct, proxied, direct, proxied.`,
    '',
    '| backend | kind | ok | errors | p50 ms | p99 ms | req/s |',
    '|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of opts.results) {
    for (const [kind, k] of [
      ['direct (agent endpoint)', r.direct],
      ['proxied (/v1/workspaces/:id/a2a)', r.proxied],
    ] as const) {
      const s = stats(k);
      lines.push(
        row([r.backend, kind, String(s.n), String(k.errors), fmt(s.p50), fmt(s.p99), fmt(s.rps, 0)]),
      );
    }
  }
  lines.push(
    '',
    '| backend | proxied/direct p50 | proxied/direct p99 | direct/proxied throughput | added p50 ms |',
    '|---|---:|---:|---:|---:|',
  );
  for (const r of opts.results) {
    const d = stats(r.direct);
    const p = stats(r.proxied);
    lines.push(
      row([r.backend, times(p.p50, d.p50), times(p.p99, d.p99), times(d.rps, p.rps), fmt(p.p50 - d.p50)]),
    );
  }
  lines.push('', '## Notes', '');
  for (const r of opts.results) {
    lines.push(
      `- ${r.backend}: workspace \`${r.workspace.id}\`, agent endpoint \`${r.workspace.endpoint}\`; ` +
        `load average ${r.load[0]} before its warm-up, ${r.load[1]} after its timed blocks.`,
    );
    const errs = [r.direct, r.proxied].map((k) => k.firstError).filter(Boolean);
    if (errs.length > 0) lines.push(`  First error: ${errs[0]}`);
    lines.push(
      `  The proxy wrote ${r.activityRows} \`activity\` rows for this workspace during the timed blocks ` +
        '(one inbound row per proxied call: an INSERT into PostgreSQL before the response ends); ' +
        'direct calls write none.',
    );
  }
  lines.push(
    '- What the proxy adds per call: API-key auth, a workspace lookup (PostgreSQL), the secrets of the',
    '  workspace for redaction, a fresh TCP connection to the agent (`agent: false`, no keep-alive',
    '  upstream), streaming the answer through, and the activity INSERT; the client → API connection is',
    '  keep-alive like the direct one.',
    '- Everything is loopback / docker-bridge traffic on this one machine; client, API, PostgreSQL,',
    '  Temporal and the agent share the CPUs, so the ratios are for this machine only.',
    '- Latency is per request from write to the last byte of the answer; percentiles are nearest-rank.',
    '  req/s = successful requests / summed wall time of that kind’s blocks.',
    '',
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '16' },
      warmup: { type: 'string', default: '200' },
      backends: { type: 'string', default: 'docker' },
    },
    strict: true,
  });
  const requests = parseInt('requests', values.requests, 1, 100_000);
  const concurrency = parseInt('concurrency', values.concurrency, 1, 256);
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
        results.push(await benchBackend(env, backend, run, requests, concurrency, warmup));
      }
      return results;
    },
    report: (results, meta) => report({ ...meta, results, requests, concurrency, warmup }),
  });
}

runMain(main);
