/**
 * What the Temporal server's own task dispatch costs a workflow per hop, on the dev server as the
 * project runs it (TEMPORAL_DYNAMIC_CONFIG) against the server's defaults, in the same run.
 *
 *   npx tsx bench/temporal-hops.ts [--rounds 40]
 *
 * Two dev servers (in memory), each with a worker and a client sharing one connection (eager
 * start, as `./dev up` runs API and worker). Per round, on each server in turn, one workflow
 * (bench/temporal-hops-workflows.ts) times three hops, each ending in an activity that notes when
 * it ran: the start (client call → first activity), an activity's completion (→ the next activity:
 * a workflow task in between) and a signal (the client's call → the activity after it); then an
 * Update answered after a 1 ms timer, as the entity answers each one (the client's call → its
 * answer), and the workflow's end as the client sees it. Five untimed rounds first.
 *
 * No service, database or docker: only the Temporal CLI (./dev setup). Report (Markdown) to stdout
 * and .data/bench-temporal-hops.md, ending with one JSON line: `{"bench":"temporal-hops","rounds":…,
 * "projectP50Ms":…,"defaultP50Ms":…,"ratioP50":…,"startP50Ms":[project, default],
 * "completionP50Ms":[…],"signalP50Ms":[…],"updateP50Ms":[…]}` (whole workflow, p50, and its ratio
 * project/default).
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { TEMPORAL_DYNAMIC_CONFIG, startTemporal } from '../test/setup/services.js';
import { loadAvg, parseInt, writeReport } from './bench-env.js';
import { fmt, guard, ms, progress, row, runMain, summarize } from './provision-util.js';
import { goSignal, stepUpdate, type HopActivities } from './temporal-hops-workflows.js';

const TASK_QUEUE = 'bench-hops';
/** The project's values but the server's own defaults for the ones it tunes (Updates stay on). */
const DEFAULTS: Record<string, string | number | boolean> = {
  ...TEMPORAL_DYNAMIC_CONFIG,
  'history.transferProcessorMaxPollRPS': 20,
  'history.timerProcessorMaxTimeShift': '1s',
};
const SIDES = [
  ['project', TEMPORAL_DYNAMIC_CONFIG],
  ['default', DEFAULTS],
] as const;
type Side = (typeof SIDES)[number][0];
const HOPS = ['start', 'completion', 'signal', 'update', 'end', 'whole'] as const;
type Hop = (typeof HOPS)[number];

interface Server {
  client: Client;
  /** Marks by workflow id: the moments its activities ran. */
  waitMark(workflowId: string, step: number): Promise<number>;
  close(): Promise<void>;
}

async function startServer(
  dynamicConfig: Readonly<Record<string, string | number | boolean>>,
): Promise<Server> {
  const temporal = await startTemporal({ log: progress, dynamicConfig });
  const connection = await NativeConnection.connect({ address: temporal.address });
  const waiters = new Map<string, (at: number) => void>();
  const seen = new Map<string, number>();
  const activities: HopActivities = {
    mark(workflowId, step) {
      const at = performance.now();
      const key = `${workflowId}/${step}`;
      const waiter = waiters.get(key);
      if (waiter) waiter(at);
      else seen.set(key, at);
      return Promise.resolve();
    },
  };
  const worker = await Worker.create({
    connection,
    taskQueue: TASK_QUEUE,
    workflowsPath: fileURLToPath(new URL('./temporal-hops-workflows.ts', import.meta.url)),
    activities,
  });
  const running = worker.run();
  return {
    client: new Client({ connection, namespace: temporal.namespace }),
    waitMark(workflowId, step) {
      const key = `${workflowId}/${step}`;
      const at = seen.get(key);
      if (at !== undefined) return Promise.resolve(at);
      return new Promise((resolve) => waiters.set(key, resolve));
    },
    async close() {
      worker.shutdown();
      await running;
      await connection.close();
      await temporal.stop();
    },
  };
}

async function oneRound(server: Server, tag: string): Promise<Record<Hop, number>> {
  const workflowId = `hops-${tag}`;
  const t0 = performance.now();
  const handle = await server.client.workflow.start('hopsWorkflow', {
    taskQueue: TASK_QUEUE,
    workflowId,
    args: [workflowId],
    requestEagerStart: true,
  });
  const m1 = await server.waitMark(workflowId, 1);
  const m2 = await server.waitMark(workflowId, 2);
  const signalled = performance.now();
  await handle.signal(goSignal);
  const m3 = await server.waitMark(workflowId, 3);
  const asked = performance.now();
  await handle.executeUpdate(stepUpdate);
  const answered = performance.now();
  await handle.result();
  const done = performance.now();
  return {
    start: m1 - t0,
    completion: m2 - m1,
    signal: m3 - signalled,
    update: answered - asked,
    end: done - answered,
    whole: done - t0,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '40' } } });
  const rounds = parseInt('--rounds', values.rounds, 2, 10_000);
  const command = ['npx tsx bench/temporal-hops.ts', ...process.argv.slice(2)].join(' ');
  const date = new Date();
  const loadBefore = loadAvg();
  const samples = Object.fromEntries(
    SIDES.map(([side]) => [side, Object.fromEntries(HOPS.map((h) => [h, [] as number[]]))]),
  ) as Record<Side, Record<Hop, number[]>>;
  const servers: Array<[Side, Server]> = [];
  try {
    for (const [side, config] of SIDES) servers.push([side, await guard(startServer(config))]);
    const tag = randomBytes(3).toString('hex');
    const warmup = 5;
    for (let round = 0; round < warmup + rounds; round++) {
      if (round % 10 === 0)
        progress(round < warmup ? 'warm-up rounds' : `round ${round - warmup + 1} of ${rounds}`);
      // Alternated, so that neither side always runs first.
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const [side, server] of order) {
        const r = await guard(oneRound(server, `${tag}-${side}-${round}`));
        if (round >= warmup) for (const h of HOPS) samples[side][h].push(r[h]);
      }
    }
  } finally {
    for (const [, server] of servers) await server.close();
  }

  const p50 = (side: Side, hop: Hop) => summarize(samples[side][hop]).p50;
  const p95 = (side: Side, hop: Hop) => summarize(samples[side][hop]).p95;
  const lines = [
    '# Temporal dispatch per hop: the project’s dynamic config against the server’s defaults',
    '',
    `- Command: \`${command}\``,
    `- Date: ${date.toISOString()}`,
    `- Load average (1 / 5 / 15 min): ${loadBefore} at start, ${loadAvg()} at the end`,
    `- project: ${JSON.stringify(TEMPORAL_DYNAMIC_CONFIG)}; default: the same but the server's own transfer-queue poll rate (20/s a shard) and timer time shift (1 s)`,
    '',
    row(['hop (ms, p50 / p95)', 'project', 'default', 'project / default p50']),
    row(['---', '---:', '---:', '---:']),
    ...HOPS.map((h) =>
      row([
        h,
        `${fmt(p50('project', h), 1)} / ${fmt(p95('project', h), 1)}`,
        `${fmt(p50('default', h), 1)} / ${fmt(p95('default', h), 1)}`,
        fmt(p50('project', h) / p50('default', h)),
      ]),
    ),
    '',
  ];
  await writeReport('bench-temporal-hops.md', lines.join('\n'));
  const pair = (h: Hop) => [Number(ms(p50('project', h))), Number(ms(p50('default', h)))];
  console.log(
    JSON.stringify({
      bench: 'temporal-hops',
      rounds,
      projectP50Ms: Number(fmt(p50('project', 'whole'), 1)),
      defaultP50Ms: Number(fmt(p50('default', 'whole'), 1)),
      ratioP50: Number(fmt(p50('project', 'whole') / p50('default', 'whole'), 3)),
      startP50Ms: pair('start'),
      completionP50Ms: pair('completion'),
      signalP50Ms: pair('signal'),
      updateP50Ms: pair('update'),
    }),
  );
}

runMain(main);
