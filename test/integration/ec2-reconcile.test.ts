/**
 * Reconcile after the EC2 world restarts (issue 8, "reconcile after outages"). EC2-only by nature:
 * it restarts moto (in memory: every instance is lost) and ec2-sim (its VM containers die with
 * it), together and each alone, which have no Docker counterpart; the Docker daemon's restart is
 * test/parity/dockerd-restart.test.ts, a worker outage test/parity/faults.test.ts.
 *
 * The file runs a moto and a sim of its own, so restarting them disturbs no other file: moto on a
 * fixed port with a seed (the region's VPC and subnets keep their ids across the restart, as a real
 * region's would; only the instances are lost), the sim on a fixed proxy port (the service's
 * EC2_ENDPOINT) claiming the same subnet again. No user call touches the workspaces: health sweeps
 * run only through the operator route POST /v1/admin/sweeps/health/run (the stack runs
 * SWEEP_SCHEDULES=off; the route starts the workflow the `sweep:health` Schedule starts).
 *
 * Run it under the EC2 lock: flock /tmp/wo-ec2.lock npx vitest run test/integration/ec2-reconcile.test.ts
 */
import { DescribeInstancesCommand, EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABEL_SIM, startEc2Sim, type Ec2Sim } from '../ec2-sim/sim.js';
import { MOTO_CREDENTIALS, simServiceEnv } from '../ec2-sim/service-env.js';
import { ensureVmImage } from '../ec2-sim/vm-image.js';
import { startMoto, type RunningMoto } from '../setup/services.js';
import { waitFor } from '../setup/wait-for.js';
import { workspaceWorkflowId } from '../../src/workflows/messages.js';
import { holdings } from '../support/faults.js';
import {
  createOrg,
  deleteLeftoverWorkspaces,
  startStack,
  testEnv,
  waitForStatus,
  type Stack,
} from '../support/stack.js';
import { messageSend as send } from '../support/a2a-message.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- API bodies

const log = (line: string) => console.log(`[reconcile] ${line}`);
const MOTO_SEED = 20_261_129;

let moto: RunningMoto;
let sim: Ec2Sim;
let vmImage: string;
let stack: Stack;
let key: string;
let ec2: EC2Client;

/** moto again on its port and seed: a fresh, empty EC2 world with the same VPC and subnets. */
async function startOwnMoto(port?: number): Promise<RunningMoto> {
  return startMoto({ log, seed: MOTO_SEED, ...(port === undefined ? {} : { port }) });
}

/** The sim again where the service expects it: the same proxy port and the same subnet. */
async function startOwnSim(again?: Ec2Sim): Promise<Ec2Sim> {
  const started = await startEc2Sim({
    motoEndpoint: moto.endpoint,
    vmImage,
    log: (line) => log(`sim: ${line}`),
    ...(again ? { port: Number(new URL(again.endpoint).port), subnetId: again.subnetId } : {}),
  });
  if (again) {
    expect(started.endpoint).toBe(again.endpoint);
    expect(started.subnetId).toBe(again.subnetId);
  }
  return started;
}

beforeAll(async () => {
  vmImage = await ensureVmImage();
  moto = await startOwnMoto();
  sim = await startOwnSim();
  ec2 = new EC2Client({ region: 'us-east-1', endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
  stack = await startStack({
    env: testEnv({
      ...simServiceEnv(sim),
      AUTO_RESTART_POLICY: 'always',
      AUTO_RESTART_MAX: '5',
      AUTO_RESTART_BACKOFF_MS: '200',
      // Short, so the outage outlasts it: a restart comes due while the backend cannot be read.
      AUTO_RESTART_DEGRADED_MS: '3000',
      HEARTBEAT_STALE_MS: '4000',
      ORPHAN_GRACE_MS: '1000',
    }),
  });
  key = (await createOrg(stack, 'reconcile')).apiKey;
}, 600_000);

afterAll(async () => {
  if (stack) await deleteLeftoverWorkspaces(stack).catch((err: unknown) => log(`cleanup: ${String(err)}`));
  await stack?.close();
  await sim?.stop();
  await moto?.stop();
  ec2?.destroy();
}, 300_000);

async function get(id: string): Promise<Json> {
  const res = await stack.api.call('GET', `/v1/workspaces/${id}`, { token: key });
  expect(res.status).toBe(200);
  return res.body as Json;
}

async function sweep(name: 'health' | 'orphans'): Promise<Json> {
  const res = await stack.api.callRetrying503('POST', `/v1/admin/sweeps/${name}/run`, {
    token: stack.adminToken,
  });
  expect(res.status).toBe(200);
  return res.body as Json;
}

/**
 * Health sweeps (nothing else) until every workspace of `ids` satisfies `ok`; answers them and the
 * sweeps' results.
 */
async function sweepUntil(ids: string[], ok: (w: Json) => boolean, what: string) {
  const results: Json[] = [];
  const found = await waitFor(
    async () => {
      results.push(await sweep('health'));
      const now = await Promise.all(ids.map(get));
      const behind = now.filter((w) => !ok(w));
      if (behind.length > 0) {
        throw new Error(behind.map((w) => `${w.id} ${w.status} g${w.generation}`).join(', '));
      }
      return now;
    },
    { timeoutMs: 240_000, intervalMs: 1_000, describe: what },
  );
  return { workspaces: found, results };
}

/**
 * How many times the entity looked at the backend before an automatic restart (the activity
 * `resourceStatus`, completed): each look that found the backend unreadable held the restart.
 */
async function restartLooks(id: string): Promise<number> {
  const history = await stack.service.temporal.workflow.getHandle(workspaceWorkflowId(id)).fetchHistory();
  const events = history.events ?? [];
  const looks = new Set(
    events
      .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'resourceStatus')
      .map((e) => String(e.eventId)),
  );
  return events.filter(
    (e) =>
      e.activityTaskCompletedEventAttributes &&
      looks.has(String(e.activityTaskCompletedEventAttributes.scheduledEventId)),
  ).length;
}

async function createOnline(name: string): Promise<Json> {
  const created = await stack.api.call('POST', '/v1/workspaces', {
    token: key,
    body: { name, backend: 'ec2' },
  });
  expect(created.status).toBe(202);
  return waitForStatus(stack, key, created.body.id as string, 'online', 180_000);
}

async function a2aStatus(id: string): Promise<number> {
  return (await stack.api.call('POST', `/v1/workspaces/${id}/a2a`, { token: key, body: send('hi') })).status;
}

async function instancesOf(workspaceId: string): Promise<Instance[]> {
  const out = await ec2.send(
    new DescribeInstancesCommand({ Filters: [{ Name: 'tag:WorkspaceId', Values: [workspaceId] }] }),
  );
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
}

/**
 * Nothing leaked: an online workspace holds exactly one instance (its generation's, running) and
 * the one sim container playing it; a stopped one holds no running instance and no VM beyond its
 * own generation's.
 */
async function expectNoLeaks(online: Json[], stopped?: Json): Promise<void> {
  for (const w of online) {
    const held = await holdings('ec2', stack.docker, w.id as string, ec2);
    expect(
      held.map((h) => [h.kind, h.generation, h.state]).sort(),
      `what ${w.id} holds at generation ${w.generation}`,
    ).toEqual([
      ['instance', w.generation, 'running'],
      ['sim-container', w.generation, 'running'],
    ]);
  }
  if (!stopped) return;
  const held = await holdings('ec2', stack.docker, stopped.id as string, ec2);
  expect(held.filter((h) => h.state === 'running' || h.state === 'pending')).toEqual([]);
  expect(held.filter((h) => h.generation !== stopped.generation)).toEqual([]);
}

describe('ec2: the EC2 world restarts under online workspaces', () => {
  let online: Json[] = [];
  let stopped: Json;

  beforeAll(async () => {
    const made = await Promise.all([createOnline('alpha'), createOnline('beta'), createOnline('gamma')]);
    online = made.slice(0, 2);
    stopped = made[2]!;
    const res = await stack.api.call('POST', `/v1/workspaces/${stopped.id}/stop`, { token: key });
    expect(res.status).toBe(202);
    stopped = await waitForStatus(stack, key, stopped.id as string, 'stopped');
    for (const w of online) expect(await a2aStatus(w.id as string)).toBe(200);
  }, 600_000);

  it(
    'moto and ec2-sim restart (every instance lost): online ones come back at a new generation, the stopped one stays stopped',
    { timeout: 480_000 },
    async () => {
      const ids = online.map((w) => w.id as string);
      const motoPort = moto.port;
      const before = await instancesOf(ids[0]!);
      expect(before.map((i) => i.State?.Name)).toEqual(['running']);

      await sim.stop(); // the VMs go with it
      await moto.stop(); // in memory: the instances are gone

      // While the endpoint is down, the sweep's one listing fails: `unknown`. Stale heartbeats read
      // as degraded, never offline, and nothing restarts on that guess.
      const outage = await sweepUntil(
        ids,
        (w) => w.status === 'degraded',
        'the sweep to see stale heartbeats with the EC2 endpoint down',
      );
      for (const w of outage.workspaces) {
        expect(w.generation).toBe(online.find((o) => o.id === w.id)!.generation);
      }
      for (const r of outage.results) {
        expect(r.listErrors.map((e: Json) => e.backend)).toEqual(['ec2']);
        for (const s of r.signalled) expect(s.to).not.toBe('offline');
      }
      // The restart came due during the outage (degraded past AUTO_RESTART_DEGRADED_MS): the entity
      // looked, found the backend unreadable and held it, instead of booting into the outage.
      await waitFor(
        async () => {
          await sweep('health');
          const looks = await Promise.all(ids.map(restartLooks));
          return looks.every((n) => n >= 1) ? looks : null;
        },
        { timeoutMs: 60_000, intervalMs: 1_000, describe: 'each entity to hold its restart' },
      );
      for (const id of ids) {
        const w = await get(id);
        expect([w.status, w.generation, w.restartCount]).toEqual([
          'degraded',
          online.find((o) => o.id === id)!.generation,
          0,
        ]);
      }
      const blindOrphans = await sweep('orphans');
      expect(blindOrphans.listErrors.map((e: Json) => e.backend)).toEqual(['ec2']);
      expect(blindOrphans.removed).toEqual([]);

      moto = await startOwnMoto(motoPort);
      sim = await startOwnSim(sim);
      expect(await instancesOf(ids[0]!)).toEqual([]); // a new world: the instances are gone

      const { workspaces: back, results } = await sweepUntil(
        ids,
        (w) => w.status === 'online' && w.generation > online.find((o) => o.id === w.id)!.generation,
        'every online workspace to come back at a new generation',
      );
      for (const w of back) {
        expect(w.restartCount).toBe(1);
        expect(w.lastRestartReason).toBe('offline');
        expect(await a2aStatus(w.id as string)).toBe(200);
      }
      const signalled = results.flatMap((r) => r.signalled as Json[]);
      expect(signalled.filter((s) => s.workspaceId === stopped.id)).toEqual([]);
      expect((await get(stopped.id as string)).status).toBe('stopped');
      await expectNoLeaks(back, stopped);

      const orphans = await sweep('orphans');
      expect(orphans.listErrors).toEqual([]);
      expect(orphans.failed).toEqual([]);
      expect(orphans.removed).toEqual([]);
      online = back;
    },
  );

  it(
    'moto alone restarts (the sim keeps running): the VMs of instances moto forgot are removed and the workspaces come back',
    { timeout: 480_000 },
    async () => {
      const ids = online.map((w) => w.id as string);
      const motoPort = moto.port;
      await moto.stop();
      moto = await startOwnMoto(motoPort);
      // The sim removes the containers of instances its moto no longer knows: the VMs go too.
      await waitFor(
        async () =>
          (
            await stack.docker.listContainers({
              all: true,
              filters: { label: [`${LABEL_SIM}=1`, `wo.ec2-sim.moto=${moto.endpoint}`] },
            })
          ).length === 0,
        { timeoutMs: 60_000, intervalMs: 200, describe: 'the sim to remove the VMs of forgotten instances' },
      );
      const { workspaces: back, results } = await sweepUntil(
        ids,
        (w) => w.status === 'online' && w.generation > online.find((o) => o.id === w.id)!.generation,
        'every online workspace to come back after the moto restart',
      );
      for (const w of back) {
        expect(w.restartCount).toBe(2);
        expect(await a2aStatus(w.id as string)).toBe(200);
      }
      const signalled = results.flatMap((r) => r.signalled as Json[]);
      expect(signalled.filter((s) => s.workspaceId === stopped.id)).toEqual([]);
      expect((await get(stopped.id as string)).status).toBe('stopped');
      await expectNoLeaks(back, stopped);
      online = back;
    },
  );

  it(
    'ec2-sim alone restarts (moto keeps its instances, the VMs die): the instances are retired and the workspaces come back',
    { timeout: 480_000 },
    async () => {
      const ids = online.map((w) => w.id as string);
      await sim.stop();
      sim = await startOwnSim(sim);
      // The new sim finds running instances whose VM is gone: retired, as EC2 does after a host
      // failure, instead of `running` for ever with nothing behind them.
      for (const w of online) {
        const states = (await instancesOf(w.id as string))
          .filter((i) => i.Tags?.find((t) => t.Key === 'Generation')?.Value === String(w.generation))
          .map((i) => i.State?.Name);
        expect(states).toEqual(['terminated']);
      }

      const { workspaces: back, results } = await sweepUntil(
        ids,
        (w) => w.status === 'online' && w.generation > online.find((o) => o.id === w.id)!.generation,
        'every online workspace to come back after the sim restart',
      );
      for (const w of back) {
        expect(w.restartCount).toBe(3);
        expect(await a2aStatus(w.id as string)).toBe(200);
      }
      const signalled = results.flatMap((r) => r.signalled as Json[]);
      expect(signalled.filter((s) => s.workspaceId === stopped.id)).toEqual([]);
      expect((await get(stopped.id as string)).status).toBe('stopped');
      await expectNoLeaks(back, stopped);
      const simContainers = await stack.docker.listContainers({
        all: true,
        filters: { label: [`${LABEL_SIM}=1`, `wo.ec2-sim.moto=${moto.endpoint}`] },
      });
      expect(simContainers).toHaveLength(online.length);
      online = back;
    },
  );

  it('the stopped workspace, whose instance was lost, starts again when the user asks', async () => {
    const res = await stack.api.call('POST', `/v1/workspaces/${stopped.id}/start`, { token: key });
    expect(res.status).toBe(202);
    const w = await waitForStatus(stack, key, stopped.id as string, 'online', 180_000);
    expect(await a2aStatus(w.id as string)).toBe(200);
    await expectNoLeaks([...online, w]);
  });
});
