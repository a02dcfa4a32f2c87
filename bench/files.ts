/**
 * Files API overhead: a 1 MiB write + read round trip through the API vs the backend's own path.
 *
 *   npx tsx bench/files.ts [--rounds 30] [--backends docker[,ec2]]
 *
 * One run starts its own PostgreSQL, Temporal dev server and the real service in-process
 * (bench/bench-env.ts), provisions one workspace per backend and waits for `online`. Each round
 * writes fresh random bytes (1 MiB) and reads them back, verifying them byte for byte, once per kind:
 *
 * - API: PUT then GET /v1/workspaces/:id/files/content?root=/workspace&path=… (org API key);
 * - raw: the same backend object the API uses (service.backends[backend]), called directly:
 *   writeFile then readFile — docker: a tar through putArchive / getArchive on the container;
 *   ec2: SFTP over SSH to the instance.
 *
 * Rounds alternate which kind goes first; three untimed warm-up rounds of each kind come first.
 * Report (Markdown) to stdout and .data/bench-files.md, ending with one JSON line per backend
 * (`{"bench":"files","backend":…,"rounds":…,"ratioP50":…,"ratioP95":…,"apiP50Ms":…,"rawP50Ms":…}`);
 * progress on stderr. Workspaces deleted and
 * services stopped in `finally`.
 */
import { randomBytes } from 'node:crypto';
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

const FILE_BYTES = 1024 * 1024;
const WARMUP_ROUNDS = 3;
const ROOT = '/workspace';
/** Per-request cap of the API calls. */
const REQUEST_TIMEOUT_MS = 30_000;

interface Sample {
  totalMs: number;
  writeMs: number;
  readMs: number;
}

type Kind = 'api' | 'raw';

async function apiRoundTrip(env: BenchEnv, w: Workspace, file: string, data: Buffer): Promise<Sample> {
  const url = `${env.url}/v1/workspaces/${w.id}/files/content?root=${encodeURIComponent(ROOT)}&path=${encodeURIComponent(file)}`;
  const auth = { authorization: `Bearer ${env.token}` };
  const t0 = performance.now();
  const put = await fetch(url, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/octet-stream' },
    body: data,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  await put.arrayBuffer();
  if (put.status !== 204) throw new Error(`PUT ${file}: HTTP ${put.status}`);
  const t1 = performance.now();
  const get = await fetch(url, { headers: auth, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const back = Buffer.from(await get.arrayBuffer());
  const t2 = performance.now();
  if (get.status !== 200) throw new Error(`GET ${file}: HTTP ${get.status}`);
  if (!back.equals(data)) throw new Error(`API read of ${file} differs (${back.length} bytes)`);
  return { totalMs: t2 - t0, writeMs: t1 - t0, readMs: t2 - t1 };
}

async function rawRoundTrip(env: BenchEnv, w: Workspace, file: string, data: Buffer): Promise<Sample> {
  // runBench below asks for placement `in-process`: the raw calls use the API's own backend objects.
  if (!env.service) throw new Error('the files bench needs the in-process service');
  const backend = env.service.backends[w.backend];
  const t0 = performance.now();
  await backend.writeFile(w.id, w.generation, ROOT, file, data);
  const t1 = performance.now();
  const back = await backend.readFile(w.id, w.generation, ROOT, file);
  const t2 = performance.now();
  if (!back.equals(data)) throw new Error(`raw read of ${file} differs (${back.length} bytes)`);
  return { totalMs: t2 - t0, writeMs: t1 - t0, readMs: t2 - t1 };
}

interface BackendResult {
  backend: BackendKind;
  workspace: Workspace;
  samples: Record<Kind, Sample[]>;
  load: [string, string];
}

async function benchBackend(
  env: BenchEnv,
  backend: BackendKind,
  run: string,
  rounds: number,
): Promise<BackendResult> {
  progress(`${backend}: provisioning one workspace`);
  const w = await env.provision(backend, `${run}-${backend}-files`);
  progress(`${backend}: workspace ${w.id} online`);
  const loadBefore = loadAvg();
  const one = (kind: Kind, i: number): Promise<Sample> => {
    const data = randomBytes(FILE_BYTES);
    const file = `bench/${kind}-${i}.bin`;
    return guard(kind === 'api' ? apiRoundTrip(env, w, file, data) : rawRoundTrip(env, w, file, data));
  };
  progress(`${backend}: ${WARMUP_ROUNDS} warm-up rounds (untimed)`);
  for (let i = 0; i < WARMUP_ROUNDS; i++) {
    await one('api', -1 - i);
    await one('raw', -1 - i);
  }
  const samples: Record<Kind, Sample[]> = { api: [], raw: [] };
  progress(`${backend}: ${rounds} timed rounds`);
  for (let i = 0; i < rounds; i++) {
    const order: Kind[] = i % 2 === 0 ? ['api', 'raw'] : ['raw', 'api'];
    for (const kind of order) samples[kind].push(await one(kind, i));
  }
  return { backend, workspace: w, samples, load: [loadBefore, loadAvg()] };
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

function report(
  opts: BenchMeta & {
    results: BackendResult[];
    rounds: number;
  },
): string {
  const lines: string[] = [
    ...reportHead('Files API overhead (1 MiB write + read round trip)', opts),
    `- Per backend: ${opts.rounds} timed rounds after ${WARMUP_ROUNDS} untimed warm-up rounds; each round does`,
    '  one round trip of each kind (alternating which goes first) with fresh random 1 MiB content,',
    '  verified byte for byte; sequential, one request in flight.',
    '',
    '| backend | kind | n | round trip p50 ms | round trip p95 ms | write p50 ms | read p50 ms |',
    '|---|---|---:|---:|---:|---:|---:|',
  ];
  const kindLabel = (backend: BackendKind, kind: Kind) =>
    kind === 'api'
      ? 'API (PUT + GET /files/content)'
      : backend === 'docker'
        ? 'raw (DockerBackend: putArchive + getArchive)'
        : 'raw (Ec2Backend: SFTP)';
  for (const r of opts.results) {
    for (const kind of ['api', 'raw'] as const) {
      const s = r.samples[kind];
      const total = sorted(s.map((x) => x.totalMs));
      lines.push(
        row([
          r.backend,
          kindLabel(r.backend, kind),
          String(s.length),
          fmt(pct(total, 50), 1),
          fmt(pct(total, 95), 1),
          fmt(pct(sorted(s.map((x) => x.writeMs)), 50), 1),
          fmt(pct(sorted(s.map((x) => x.readMs)), 50), 1),
        ]),
      );
    }
  }
  lines.push('', '| backend | API/raw p50 | API/raw p95 | added p50 ms |', '|---|---:|---:|---:|');
  for (const r of opts.results) {
    const api = sorted(r.samples.api.map((x) => x.totalMs));
    const raw = sorted(r.samples.raw.map((x) => x.totalMs));
    lines.push(
      row([
        r.backend,
        times(pct(api, 50), pct(raw, 50)),
        times(pct(api, 95), pct(raw, 95)),
        fmt(pct(api, 50) - pct(raw, 50), 1),
      ]),
    );
  }
  lines.push('', '## Notes', '');
  for (const r of opts.results) {
    lines.push(
      `- ${r.backend}: workspace \`${r.workspace.id}\`; load average ${r.load[0]} before its rounds, ${r.load[1]} after.`,
    );
  }
  lines.push(
    '- The raw kind calls the very backend object the API route uses, so the difference is the API’s',
    '  own work: HTTP on loopback (client fetch, keep-alive), auth, the workspace lookup in PostgreSQL,',
    '  `express.raw` buffering the 1 MiB body on PUT and sending it on GET.',
    ...(opts.results.some((r) => r.backend === 'ec2')
      ? [
          '- ec2 (moto behind ec2-sim): every Ec2Backend file operation, raw or via the API, looks the',
          '  instance up (DescribeInstances through the sim to moto) and the SSH key up (PostgreSQL), then',
          '  opens a new SSH connection + SFTP session to the VM container; the raw column includes that.',
        ]
      : []),
    '- Round trip = write start → read’s last byte; percentiles are nearest-rank over the rounds.',
    '',
    // Machine-readable, one line per backend, last on stdout (fields: docs/benchmarks.md).
    ...opts.results.map((r) => resultLine(r)),
  );
  return lines.join('\n');
}

function resultLine(r: BackendResult): string {
  const api = sorted(r.samples.api.map((x) => x.totalMs));
  const raw = sorted(r.samples.raw.map((x) => x.totalMs));
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return JSON.stringify({
    bench: 'files',
    backend: r.backend,
    rounds: api.length,
    ratioP50: round(pct(api, 50) / pct(raw, 50)),
    ratioP95: round(pct(api, 95) / pct(raw, 95)),
    apiP50Ms: round(pct(api, 50)),
    rawP50Ms: round(pct(raw, 50)),
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '30' },
      backends: { type: 'string', default: 'docker' },
    },
    strict: true,
  });
  const rounds = parseInt('rounds', values.rounds, 1, 1000);
  const backends = parseBackends(values.backends);
  await runBench({
    script: 'bench/files.ts',
    runPrefix: 'bf',
    reportName: 'bench-files.md',
    backends,
    placement: 'in-process',
    measure: async (env, run) => {
      const results: BackendResult[] = [];
      for (const backend of backends) results.push(await benchBackend(env, backend, run, rounds));
      return results;
    },
    report: (results, meta) => report({ ...meta, results, rounds }),
  });
}

runMain(main);
