/**
 * A2A proxy overhead: `message/send` straight to the agent vs through the orchestrator's proxy.
 *
 *   npx tsx bench/a2a.ts [--requests 2000] [--concurrency 1,16] [--backends docker[,ec2]]
 *
 * One run starts its own PostgreSQL, Temporal dev server and the real service (bench/bench-env.ts,
 * placement `processes`: the API and the worker each in a process of its own, as production runs
 * them), provisions one workspace per backend and waits for `online`. Then, per backend, a load
 * generator in its own process (bench/a2a-client.ts: a bounded closed loop, node:http, keep-alive
 * agent per kind, `concurrency` requests in flight) sends the same JSON-RPC `message/send`:
 *
 * - direct: POST / to the workspace's recorded `endpoint` (the agent's A2A server);
 * - bare: POST / to a bare keep-alive reverse proxy in its own process (bench/a2a-bare-proxy.ts:
 *   node:http server + undici Pool to the same endpoint, no auth, no log): what a user would put
 *   in front instead;
 * - proxied: POST /v1/workspaces/:id/a2a on the API process with the org API key.
 *
 * So no two parties share an event loop (before, all of them ran in this one process, which was
 * saturated at concurrency 16: the figures were the CPU per call of a process that also ran the
 * client and the other proxy). This process only orchestrates; between blocks it reads each
 * party's CPU time (/proc, the agent container's cgroup) for the report.
 *
 * After an untimed warm-up of each kind, the timed requests run per concurrency in ABCABC blocks
 * (direct, bare, proxied, twice; requests/2 each), so all kinds see the same machine state. Every
 * answer must be 200 with a JSON-RPC `result`. Report (Markdown) to stdout and .data/bench-a2a.md;
 * progress on stderr; the last lines of stdout are one JSON line per backend and concurrency (fields
 * in docs/benchmarks.md). The workspaces are deleted and every service and child process stopped in
 * `finally` (also on Ctrl-C: the children ignore SIGINT and leave when told or when this process
 * is gone).
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { BackendKind } from '../src/backends/backend.js';
import { AGENT_CREDENTIAL_HEADER } from '../src/security/agent-credential.js';
import type { LoadCall, LoadResult } from './a2a-client.js';
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
import { forkChild, type Child } from './child.js';
import {
  containerProbe,
  findContainer,
  findProcess,
  processProbe,
  treeProbe,
  type CpuProbe,
} from './cpu-probes.js';
import { errorText, guard, progress, runMain } from './provision-util.js';

const BLOCKS = 2;

interface Target {
  url: URL;
  headers: Record<string, string>;
}

/** The parties whose CPU the report shows, in its column order. */
const PARTIES = [
  'load generator',
  'bare proxy',
  'API',
  'worker',
  'PostgreSQL',
  'agent container',
  'docker-proxy',
  'bench main',
] as const;
type Party = (typeof PARTIES)[number];

/** CPU ms each party spent during a kind's blocks (null: not measured on this backend). */
type CpuSpent = Record<Party, number | null>;

interface KindResult {
  latencies: number[];
  errors: number;
  firstError: string | null;
  wallMs: number;
  cpu: CpuSpent;
}

function merge(parts: Array<{ load: LoadResult; cpu: CpuSpent }>): KindResult {
  const cpu = Object.fromEntries(
    PARTIES.map((party) => {
      const values = parts.map((p) => p.cpu[party]);
      return [party, values.some((v) => v === null) ? null : values.reduce((x, y) => x! + y!, 0)];
    }),
  ) as CpuSpent;
  return {
    latencies: parts.flatMap((p) => p.load.latencies).sort((a, b) => a - b),
    errors: parts.reduce((s, p) => s + p.load.errors, 0),
    firstError: parts.find((p) => p.load.firstError)?.load.firstError ?? null,
    wallMs: parts.reduce((s, p) => s + p.load.wallMs, 0),
    cpu,
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
  /** Parties whose CPU could not be found on this backend, with why. */
  unmeasured: string[];
}

/** This process's own CPU (it hosts ec2-sim's API front, and orchestrates). */
const selfProbe: CpuProbe = {
  name: 'bench main',
  read: () => {
    const u = process.cpuUsage();
    return Promise.resolve((u.user + u.system) / 1000);
  },
};

/** One CPU probe per party; a party that cannot be found is left out (and named in the report). */
async function probesFor(
  env: BenchEnv,
  workspace: Workspace,
  client: Child,
  bare: Child,
  unmeasured: string[],
): Promise<Partial<Record<Party, CpuProbe>>> {
  const probes: Partial<Record<Party, CpuProbe>> = {
    'load generator': processProbe('load generator', client.pid),
    'bare proxy': processProbe('bare proxy', bare.pid),
    'bench main': selfProbe,
  };
  for (const p of env.processes) probes[p.role === 'api' ? 'API' : 'worker'] = processProbe(p.role, p.pid);
  const port = String(env.postgresPort);
  const postmaster = await findProcess(
    (argv) => (argv[0] ?? '').endsWith('/postgres') && argv.join(' ').includes(`-p ${port} `),
  );
  if (postmaster) probes.PostgreSQL = treeProbe('PostgreSQL', postmaster);
  else unmeasured.push(`PostgreSQL: no postmaster listening on port ${port} found in /proc`);
  const container = await findContainer(env.docker, workspace.endpoint).catch(() => null);
  const agentProbe = container
    ? await containerProbe('agent container', env.docker, container).catch((err: unknown) => {
        unmeasured.push(`agent container: ${errorText(err)}`);
        return null;
      })
    : null;
  if (agentProbe) probes['agent container'] = agentProbe;
  else if (!container) unmeasured.push(`agent container: none serves ${workspace.endpoint}`);
  if (workspace.backend === 'docker') {
    const hostPort = new URL(workspace.endpoint).port;
    const proxy = await findProcess(
      (argv) => (argv[0] ?? '').endsWith('docker-proxy') && argv.join(' ').includes(`-host-port ${hostPort}`),
    );
    if (proxy) probes['docker-proxy'] = processProbe('docker-proxy', proxy);
    else unmeasured.push(`docker-proxy: none for port ${hostPort} (dockerd without the userland proxy?)`);
  }
  return probes;
}

async function readAll(probes: Partial<Record<Party, CpuProbe>>): Promise<CpuSpent> {
  const values = await Promise.all(PARTIES.map(async (party) => (await probes[party]?.read()) ?? null));
  return Object.fromEntries(PARTIES.map((party, i) => [party, values[i]])) as CpuSpent;
}

function spent(before: CpuSpent, after: CpuSpent): CpuSpent {
  return Object.fromEntries(
    PARTIES.map((party) => {
      const [b, a] = [before[party], after[party]];
      return [party, a === null || b === null ? null : a - b];
    }),
  ) as CpuSpent;
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
  const children: Child[] = [];
  try {
    const bare = forkChild('bare proxy', 'bench/a2a-bare-proxy.ts');
    children.push(bare);
    const client = forkChild('load generator', 'bench/a2a-client.ts');
    children.push(client);
    const { url: bareUrl } = await guard(
      bare.call<{ url: string }>('start', {
        endpoint: workspace.endpoint,
        credential,
        connections: maxConcurrency,
      }),
    );
    await guard(client.call('init', { maxSockets: maxConcurrency, kinds: KINDS }));
    const targets: Record<Kind, Target> = {
      // The agent refuses calls without the proxy's per-generation credential: present it directly.
      direct: { url: new URL('/', workspace.endpoint), headers: { [AGENT_CREDENTIAL_HEADER]: credential } },
      bare: { url: new URL(bareUrl), headers: {} },
      proxied: {
        url: new URL(`/v1/workspaces/${workspace.id}/a2a`, env.url),
        headers: { authorization: `Bearer ${env.token}` },
      },
    };
    const load = (kind: Kind, n: number, concurrency: number) =>
      guard(
        client.call<LoadResult>('load', {
          kind,
          url: targets[kind].url.href,
          headers: targets[kind].headers,
          requests: n,
          concurrency,
        } satisfies LoadCall),
      );
    const unmeasured: string[] = [];
    const probes = await probesFor(env, workspace, client, bare, unmeasured);
    progress(
      `${backend}: pids: load generator ${client.pid}, bare proxy ${bare.pid}, ` +
        env.processes.map((p) => `${p.role} ${p.pid}`).join(', ') +
        (unmeasured.length > 0 ? `; CPU not measured: ${unmeasured.join('; ')}` : ''),
    );
    progress(`${backend}: warm-up, ${warmup} requests of each kind (untimed)`);
    for (const kind of KINDS) {
      const w = await load(kind, warmup, maxConcurrency);
      if (w.errors > 0) throw new Error(`warm-up to ${targets[kind].url.href} failed: ${w.firstError}`);
    }
    const runs: ConcurrencyResult[] = [];
    for (const concurrency of concurrencies) {
      const loadBefore = loadAvg();
      const activityBefore = await activityCount(env, workspace.id);
      const parts: Record<Kind, Array<{ load: LoadResult; cpu: CpuSpent }>> = {
        direct: [],
        bare: [],
        proxied: [],
      };
      const perBlock = Math.ceil(requests / BLOCKS);
      for (let b = 0; b < BLOCKS; b++) {
        progress(
          `${backend}: concurrency ${concurrency}, block ${b + 1}/${BLOCKS}: ${perBlock} each of ${KINDS.join(', ')}`,
        );
        for (const kind of KINDS) {
          const cpuBefore = await readAll(probes);
          const result = await load(kind, perBlock, concurrency);
          parts[kind].push({ load: result, cpu: spent(cpuBefore, await readAll(probes)) });
        }
      }
      runs.push({
        concurrency,
        kinds: { direct: merge(parts.direct), bare: merge(parts.bare), proxied: merge(parts.proxied) },
        activityRows: (await activityCount(env, workspace.id)) - activityBefore,
        load: [loadBefore, loadAvg()],
      });
    }
    return { backend, workspace, runs, unmeasured };
  } finally {
    for (const child of children.reverse()) {
      await child.stop().catch((err: unknown) => progress(`stopping ${child.name}: ${errorText(err)}`));
    }
  }
}

async function activityCount(env: BenchEnv, workspaceId: string): Promise<number> {
  const client = new pg.Client({ connectionString: env.databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>(
      'SELECT count(*) AS n FROM activity WHERE workspace_id = $1',
      [workspaceId],
    );
    return Number(rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
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
  lines.push(
    '',
    '## CPU per call',
    '',
    'CPU time (user + system, all threads) each party spent during a kind’s blocks, divided by that',
    'kind’s calls (µs per call; – = not measured). Each party is its own process (the agent: its',
    'container’s cgroup), read from /proc before and after every block; /proc counts in 10 ms ticks.',
    'A party that works on a timer (the worker’s heartbeats, PostgreSQL’s background writers) shows',
    'CPU per call in proportion to the blocks’ wall time, not to the calls. bench main is this',
    'orchestrating process (between blocks it reads the probes; on ec2 it hosts the simulator).',
    '',
    `| backend | concurrency | kind | blocks' wall s | ${PARTIES.join(' | ')} | total |`,
    `|---|---:|---|---:|${PARTIES.map(() => '---:').join('|')}|---:|`,
  );
  for (const r of opts.results) {
    for (const c of r.runs) {
      for (const kind of KINDS) {
        const k = c.kinds[kind];
        const calls = k.latencies.length + k.errors;
        const perCall = (ms: number | null) =>
          ms === null || calls === 0 ? '–' : fmt((ms * 1000) / calls, 0);
        const total = PARTIES.reduce((sum, party) => sum + (k.cpu[party] ?? 0), 0);
        lines.push(
          row([
            r.backend,
            String(c.concurrency),
            kind,
            fmt(k.wallMs / 1000),
            ...PARTIES.map((party) => perCall(k.cpu[party])),
            perCall(total),
          ]),
        );
      }
    }
  }
  lines.push('', '## Notes', '');
  for (const r of opts.results) {
    lines.push(
      `- ${r.backend}: workspace \`${r.workspace.id}\`, agent endpoint \`${r.workspace.endpoint}\`.`,
    );
    if (r.unmeasured.length > 0) lines.push(`  CPU not measured: ${r.unmeasured.join('; ')}.`);
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
    '- Placement: the load generator, the bare proxy, the API and the worker each run in a Node process',
    '  of their own (this bench process only orchestrates and, on ec2, hosts the simulator), so no two',
    '  share an event loop. They, PostgreSQL, Temporal and the agent still share this machine’s CPUs:',
    '  the ratios are for this machine only.',
    '- Everything is loopback / docker-bridge traffic on this one machine.',
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
      // PostgreSQL flushing every commit, as in production (the suite's settings skip the flush).
      'durable-pg': { type: 'boolean', default: false },
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
    placement: 'processes',
    durablePg: values['durable-pg'],
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
