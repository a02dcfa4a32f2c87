/**
 * Fault injection on the real stack, the same tests for each backend. One workspace is driven
 * through provision → restart → delete, and a fault hits in the middle of each operation:
 *
 * - the worker process is SIGKILLed (a new worker process takes over), or
 * - the Temporal server is stopped (SIGTERM, or SIGKILL as a crash) and started again on the same
 *   port and SQLite file; this file runs its own server, so the run's shared one is untouched.
 *
 * After every fault the workspace must converge to what was asked (online at the new generation;
 * deleted) with 0 orphans (nothing of another generation left; after delete nothing at all) and
 * 0 duplicates (a sampler watches the whole time: never two resources for one generation). While
 * Temporal is down, API calls answer (success or 503), never hang. Each fault is printed as a
 * `[fault]` line (docs/reliability.md collects them); times are information, never asserted.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendKind } from '../../src/backends/backend.js';
import { startTemporal, type RunningTemporal } from '../setup/services.js';
import { waitFor } from '../setup/wait-for.js';
import { duplicates, holdings, orphans, report, watchHoldings, type Watch } from '../support/faults.js';
import { waitForStatus, type ApiResponse } from '../support/stack.js';
import { spawnWorker, type WorkerProcess } from '../support/worker-process.js';
import {
  CONCURRENT_BLOCK,
  workerProcessEnv,
  PARITY_BACKENDS,
  leftovers,
  useParityStack,
  type ParityFixture,
} from './backends.js';

type Phase = 'provision' | 'restart' | 'delete';

/** Three boots/removals, each slowed by a fault and the timeouts that recover from it: minutes. */
const LIFECYCLE_MS = 600_000;

/** GET the workspace (org key). */
async function get(t: ParityFixture, id: string) {
  const res = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key });
  if (res.status !== 200) throw new Error(`GET ${id}: ${res.status}`);
  return res.body as { status: string; phase?: string; generation: number };
}

/**
 * Waits until the operation is under way at a point worth hitting, and says which:
 * provision/restart — the new generation's resource exists (created, not yet proven online);
 * delete — the entity is `deleting` (the backend removal is in flight or just done).
 */
async function midOperation(t: ParityFixture, id: string, phase: Phase, generation: number): Promise<string> {
  return waitFor(
    async () => {
      // A docker delete takes a few hundred ms: only the status is polled, then looked at, and from
      // its row: polled every 10 ms through the API, a delete the entity takes up late (a worker
      // still reconnecting after a Temporal restart) passed the key's request rate and read 429.
      if (phase === 'delete') {
        const { rows } = await t.stack.service.db.pool.query<{ status: string }>(
          'SELECT status FROM workspaces WHERE id = $1',
          [id],
        );
        return rows[0]?.status === 'deleting' && 'status deleting';
      }
      const w = await get(t, id);
      const held = await holdings(t.backend, t.stack.docker, id);
      const mine = held.filter(
        (h) => (h.kind === 'container' || h.kind === 'instance') && h.generation === generation,
      );
      if (mine.length === 0 || w.status === 'online') return false;
      return `${w.status}/${w.phase ?? '-'} g${generation}, resource ${mine[0]!.state}`;
    },
    {
      timeoutMs: 90_000,
      intervalMs: phase === 'delete' ? 10 : 50,
      describe: `workspace ${id} to be mid-${phase}`,
    },
  );
}

/**
 * A lifecycle call as a well-behaved client makes it: 202, or 503 + Retry-After ("nothing was
 * changed", e.g. while the worker re-polls after a Temporal restart), then the same call again
 * after that many seconds. A 503 that took effect anyway would show as one generation too many.
 */
async function userCall(t: ParityFixture, method: 'POST' | 'DELETE', url: string): Promise<void> {
  const res = await t.stack.api.callRetrying503(method, url, {
    token: t.key,
    onRetry: (r) =>
      console.log(
        `[fault] ${t.backend} | ${method} ${url} → 503 ${JSON.stringify(r.body)}; Retry-After ${r.headers.get('retry-after')} s`,
      ),
  });
  if (res.status !== 202) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
}

/** Online at `generation` with exactly one resource of it, running, and nothing else held. */
async function expectOnlineAlone(t: ParityFixture, id: string, generation: number): Promise<void> {
  const w = await waitForStatus(t.stack, t.key, id, 'online', 180_000);
  expect(w.generation).toBe(generation);
  // The sim (ec2) mirrors a terminated instance's container away asynchronously: wait for it.
  const held = await waitFor(
    async () => {
      const now = await holdings(t.backend, t.stack.docker, id);
      return orphans(now, generation).length === 0 ? now : false;
    },
    { timeoutMs: 30_000, describe: `no orphan of ${id} besides g${generation}` },
  ).catch(async () => holdings(t.backend, t.stack.docker, id));
  expect(orphans(held, generation)).toEqual([]);
  expect(duplicates(held)).toEqual([]);
  const compute = held.filter((h) => h.kind === 'container' || h.kind === 'instance');
  expect(compute).toHaveLength(1);
  expect(compute[0]!.state).toBe('running');
  const managed = (await t.stack.service.backends[t.backend].listManaged()).filter(
    (r) => r.workspaceId === id,
  );
  expect(managed.map((r) => r.generation)).toEqual([generation]);
}

async function expectDeletedClean(t: ParityFixture, id: string): Promise<void> {
  await waitForStatus(t.stack, t.key, id, 'deleted', 180_000);
  const left = await waitFor(
    async () => {
      const now = await leftovers(t.backend, t.stack.docker, id);
      return now.length === 0 ? now : false;
    },
    { timeoutMs: 30_000, describe: `nothing of ${id} left` },
  ).catch(async () => leftovers(t.backend, t.stack.docker, id));
  expect(left).toEqual([]);
}

/**
 * Drives one workspace through provision → restart → delete, calling `fault` in the middle of
 * each, and checks convergence after each. `fault` returns what it did, for the record.
 */
async function lifecycleUnderFaults(
  t: ParityFixture,
  name: string,
  faultName: string,
  fault: (phase: Phase, id: string) => Promise<void>,
): Promise<void> {
  let id = '';
  const watch: Watch = watchHoldings(t.backend, t.stack.docker, () => (id ? [id] : []));
  let watched: Awaited<ReturnType<Watch['stop']>> | undefined;
  try {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name, backend: t.backend },
    });
    expect(created.status).toBe(202);
    id = created.body.id as string;

    const step = async (phase: Phase, generation: number, converge: () => Promise<void>) => {
      const at = await midOperation(t, id, phase, generation);
      const injected = Date.now();
      await fault(phase, id);
      let where = at;
      if (phase === 'delete') {
        const held = await holdings(t.backend, t.stack.docker, id);
        const left = held.filter((h) => h.kind === 'container' || h.kind === 'instance').length;
        where += `, ${left} resource(s) left after the fault`;
      }
      await converge();
      report({
        fault: faultName,
        backend: t.backend,
        phase,
        at: where,
        outcome:
          phase === 'delete' ? 'deleted, nothing left' : `online g${generation}, 1 resource, 0 orphans`,
        convergedMs: Date.now() - injected,
      });
    };

    await step('provision', 1, () => expectOnlineAlone(t, id, 1));

    await userCall(t, 'POST', `/v1/workspaces/${id}/restart`);
    await step('restart', 2, () => expectOnlineAlone(t, id, 2));

    await userCall(t, 'DELETE', `/v1/workspaces/${id}`);
    await step('delete', 2, () => expectDeletedClean(t, id));
  } finally {
    watched = await watch.stop();
  }
  console.log(
    `[fault] ${faultName} | ${t.backend} | sampler: ${watched.samples} samples, max live generations ${watched.maxLiveGenerations}, duplicates ${watched.duplicates.length}`,
  );
  expect(watched.samples).toBeGreaterThan(0);
  expect(watched.duplicates).toEqual([]);
}

describe.each(PARITY_BACKENDS)(
  '%s: worker SIGKILL mid provision, restart and delete',
  CONCURRENT_BLOCK,
  (backend) => {
    // The API runs in this process; the worker is a separate process sharing its task queue and DB.
    const t = useParityStack(backend, { worker: false });
    let worker: WorkerProcess | undefined;
    afterAll(async () => {
      await worker?.kill('SIGTERM');
    });

    it.sequential(
      'a new worker converges each operation: online g1, online g2, deleted; 0 orphans, 0 duplicates',
      { timeout: LIFECYCLE_MS },
      async () => {
        worker = await spawnWorker(workerProcessEnv(t));
        // deleteLeftoverWorkspaces needs a worker if the test fails half way: it keeps the last one.
        await lifecycleUnderFaults(t, 'killed-worker', 'worker SIGKILL', async () => {
          await worker!.kill('SIGKILL');
          worker = await spawnWorker(workerProcessEnv(t));
        });
      },
    );
  },
);

describe.each(PARITY_BACKENDS)(
  '%s: Temporal restart mid provision, restart and delete',
  CONCURRENT_BLOCK,
  (backend: BackendKind) => {
    // This file's own Temporal server, persisted in SQLite so a restart keeps every workflow. The
    // hooks are registered before the stack's, so the server outlives the stack's cleanup.
    const temporalEnv: Record<string, string> = {};
    let temporal: RunningTemporal | undefined;
    let dbDir = '';
    beforeAll(async () => {
      dbDir = await mkdtemp(path.join(os.tmpdir(), 'wo-faults-temporal-'));
      temporal = await startTemporal({ dbFilename: path.join(dbDir, 'temporal.db') });
      temporalEnv.TEMPORAL_ADDRESS = temporal.address;
    });
    afterAll(async () => {
      await temporal?.stop();
      if (dbDir) await rm(dbDir, { recursive: true, force: true });
    });
    const t = useParityStack(backend, { env: temporalEnv });

    /** Calls the API makes while Temporal is down: each must answer (success or 503), not hang. */
    async function probeWhileDown(phase: Phase, id: string): Promise<string[]> {
      const calls: Array<[string, string]> = [
        ['GET', `/v1/workspaces/${id}`],
        ['GET', '/readyz'],
        phase === 'delete' ? ['DELETE', `/v1/workspaces/${id}`] : ['POST', `/v1/workspaces/${id}/start`],
      ];
      // All at once: each answers on its own (no call waits for another), and the outage is no
      // longer than the slowest of them.
      return Promise.all(
        calls.map(async ([method, url]) => {
          // ApiClient aborts after 30 s: a hang fails the test there. The time is information only.
          const began = Date.now();
          const res: ApiResponse = await t.stack.api.call(method, url, {
            token: url === '/readyz' ? undefined : t.key,
          });
          if (url === '/readyz') expect(res.status).toBe(503);
          else if (method === 'GET') expect(res.status).toBe(200);
          else expect([202, 503]).toContain(res.status);
          return `${method} ${url.replace(id, ':id')} → ${res.status} (${Date.now() - began} ms)`;
        }),
      );
    }

    // One server per block: its two faults run one after the other.
    it.sequential.each(['SIGTERM', 'SIGKILL'] as const)(
      'Temporal %s mid-operation, restarted on the same store: each operation converges; 0 orphans, 0 duplicates',
      { timeout: LIFECYCLE_MS },
      async (signal) => {
        await lifecycleUnderFaults(
          t,
          `temporal-${signal.toLowerCase()}`,
          `Temporal ${signal}`,
          async (phase, id) => {
            const running = temporal!;
            await running.kill(signal);
            const answers = await probeWhileDown(phase, id);
            console.log(
              `[fault] Temporal ${signal} | ${backend} | ${phase} | while down: ${answers.join('; ')}`,
            );
            temporal = await startTemporal({
              port: running.port,
              dbFilename: path.join(dbDir, 'temporal.db'),
            });
          },
        );
      },
    );
  },
);
