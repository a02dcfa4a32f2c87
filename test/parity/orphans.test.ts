/**
 * The orphan sweep on the real stack, the same test for each backend: a superseded generation, a
 * deleted workspace's resource and an unknown workspace id are removed by one sweep once past the
 * grace period; anything without the managed-by mark, the live generation and young orphans stay.
 * Volumes left without a resource go too: docker's per-workspace volumes, EC2 root volumes left
 * `available` by instances terminated without DeleteOnTermination (the live generation's stays).
 * The operator entry points (run now, list the Schedules) are checked once, on docker.
 */
import { randomBytes } from 'node:crypto';
import {
  DescribeInstancesCommand,
  RunInstancesCommand,
  DescribeVolumesCommand,
  TerminateInstancesCommand,
  type RunInstancesCommandOutput,
} from '@aws-sdk/client-ec2';
import { afterAll, describe, expect, test } from 'vitest';
import type { BackendKind } from '../../src/backends/backend.js';
import type { OrphanSweepResult } from '../../src/domain/orphans.js';
import { ensureSweepSchedules, sweepScheduleId } from '../../src/worker/schedules.js';
import { waitFor } from '../setup/wait-for.js';
import { createOrg, insertWorkspaceRow, useStack, waitForStatus } from '../support/stack.js';
import { ensureOrgNetwork, orgNetworkName } from '../../src/backends/docker/network.js';
import {
  CONCURRENT_BLOCK,
  leftovers,
  motoClient,
  PARITY_BACKENDS,
  resourcesOf,
  useParityStack,
  type ParityFixture,
} from './backends.js';
import { leakRootVolume, plantLeak } from './leaks.js';

// The docker and ec2 orphan-sweep blocks run at the same time (CONCURRENT_BLOCK); the tests of one
// block share its stack and run one after another.
const it = test.sequential;

const GRACE_MS = 15_000;
const fakeId = () => randomBytes(8).toString('hex');

/** A leak of this stack's org. */
const plant = (t: ParityFixture, workspaceId: string, generation: number) =>
  plantLeak(t, workspaceId, t.orgId, generation);

/** Something of ours in all but the managed-by mark: a container or an instance carrying the identity. */
async function plantForeign(
  t: ParityFixture,
  workspaceId: string,
): Promise<{ id: string; remove(): Promise<void> }> {
  if (t.backend === 'docker') {
    const c = await t.stack.docker.createContainer({
      name: `foreign-${workspaceId}`,
      Image: t.stack.config.runtimeImages['claude-code'],
      Entrypoint: ['sleep', 'infinity'],
      Labels: {
        'wo.workspace-id': workspaceId,
        'wo.org-id': t.orgId,
        'wo.generation': '1',
        'wo.test': 'foreign',
      },
    });
    return { id: c.id, remove: () => c.remove({ force: true }) };
  }
  const out: RunInstancesCommandOutput = await motoClient().send(
    new RunInstancesCommand({
      ImageId: t.stack.config.EC2_AMI_ID,
      InstanceType: 't3.micro',
      SubnetId: t.stack.config.EC2_SUBNET_ID,
      MinCount: 1,
      MaxCount: 1,
      TagSpecifications: [
        {
          ResourceType: 'instance',
          Tags: [
            { Key: 'WorkspaceId', Value: workspaceId },
            { Key: 'OrgId', Value: t.orgId },
            { Key: 'Generation', Value: '1' },
          ],
        },
      ],
    }),
  );
  const id = out.Instances![0]!.InstanceId!;
  return {
    id,
    remove: async () => {
      await motoClient().send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    },
  };
}

async function sweep(t: { stack: ParityFixture['stack'] }): Promise<OrphanSweepResult> {
  // A 503 ("nothing ran, retry after") is a fair answer on a loaded machine: repeat it as a client would.
  const res = await t.stack.api.callRetrying503('POST', '/v1/admin/sweeps/orphans/run', {
    token: t.stack.adminToken,
  });
  expect(res.status).toBe(200);
  return res.body as OrphanSweepResult;
}

const ids = (backend: BackendKind, all: Array<{ backend: string; workspaceId: string }>) =>
  all.filter((r) => r.backend === backend).map((r) => r.workspaceId);

describe.each(PARITY_BACKENDS)('%s orphan sweep', CONCURRENT_BLOCK, (backend) => {
  // Each block's stack has only its own backend enabled: the two blocks run at the same time on
  // one database, and a sweep of the other's backend would take that block's planted orphans.
  // Docker places per org here, so that a live workspace's org holds a network the sweep must keep.
  const t = useParityStack(backend, {
    env: {
      ORPHAN_GRACE_MS: String(GRACE_MS),
      ENABLED_BACKENDS: backend,
      DOCKER_WORKSPACE_NETWORK: 'per-org',
    },
  });

  it('removes superseded, deleted and unknown ones past the grace period; keeps live, young and foreign ones', async () => {
    const create = async (name: string) => {
      const res = await t.stack.api.call('POST', '/v1/workspaces', { token: t.key, body: { name, backend } });
      expect(res.status).toBe(202);
      return res.body.id as string;
    };
    const [live, gone] = await Promise.all([create('live'), create('gone')]);
    await Promise.all([
      waitForStatus(t.stack, t.key, live, 'online'),
      waitForStatus(t.stack, t.key, gone, 'online'),
    ]);
    expect((await t.stack.api.call('POST', `/v1/workspaces/${live}/restart`, { token: t.key })).status).toBe(
      202,
    );
    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${gone}`, { token: t.key })).status).toBe(202);
    await Promise.all([
      waitForStatus(t.stack, t.key, live, (w) => w.status === 'online' && w.generation === 2),
      waitForStatus(t.stack, t.key, gone, 'deleted'),
    ]);

    const unknown = fakeId();
    const foreign = await plantForeign(t, fakeId());
    // Docker: an org network that outlived its org's last workspace (a removal whose network step
    // failed), and a labelled one of an org this deployment does not know. EC2 makes no networks.
    const idleOrg = backend === 'docker' ? (await createOrg(t.stack, 'idle')).id : null;
    const strangerNet = backend === 'docker' ? `wo-org-${fakeId()}` : null;
    if (idleOrg && strangerNet) {
      const pool = { cidr: t.stack.config.DOCKER_ORG_NETWORK_POOL, prefix: 24 };
      await ensureOrgNetwork(t.stack.docker, idleOrg, pool);
      await ensureOrgNetwork(t.stack.docker, strangerNet.slice('wo-org-'.length), pool);
    }
    try {
      // The leaks: generation 1 of a workspace now at 2, a resource of a deleted one, an unknown id.
      await plant(t, live, 1);
      await plant(t, gone, 1);
      await plant(t, unknown, 1);
      // A workspace's volumes left without any container (docker), a root volume left without its
      // instance (EC2).
      const volumesOnly = fakeId();
      if (backend === 'docker') {
        await plant(t, volumesOnly, 1);
        await t.stack.service.backends.docker.remove(volumesOnly, { generation: 1 });
      }
      // EC2: root volumes left `available` by terminated instances: of the superseded generation,
      // of the deleted workspace, of a workspace with nothing else left, and of the live generation
      // (its root detached by hand, say), which must stay.
      const leaked =
        backend === 'ec2'
          ? {
              superseded: await leakRootVolume(t, live, t.orgId, 1),
              deleted: await leakRootVolume(t, gone, t.orgId, 1),
              only: await leakRootVolume(t, volumesOnly, t.orgId, 1),
              liveGeneration: await leakRootVolume(t, live, t.orgId, 2),
            }
          : null;
      // A fresh orphan right before a sweep: inside the grace period, so it stays.
      const young = fakeId();
      await plant(t, young, 1);
      const first = await sweep(t);
      expect(first.graceMs).toBe(GRACE_MS);
      expect(ids(backend, first.removed)).not.toContain(young);
      expect(first.counts.young).toBeGreaterThanOrEqual(1);
      expect(await resourcesOf(backend, t.stack.docker, young)).toHaveLength(1);
      if (idleOrg) {
        // Inside the grace period too.
        expect(first.networks?.removed.map((n) => n.orgId)).not.toContain(idleOrg);
        expect(await networkIds(t, idleOrg)).toHaveLength(1);
      }

      // Once every planted one is past the grace period, one sweep removes them all.
      const planted = [live, gone, unknown, young, volumesOnly];
      const b = t.stack.service.backends[backend];
      const managed = [...(await b.listManaged()), ...(await b.listManagedVolumes())].filter(
        (r) => planted.includes(r.workspaceId) && !(r.workspaceId === live),
      );
      const newest = Math.max(...managed.map((r) => r.createdAt.getTime()));
      await waitFor(() => Date.now() > newest + GRACE_MS + 1000, {
        timeoutMs: GRACE_MS + 60_000,
        describe: 'the planted orphans to be older than the grace period',
      });
      const second = await sweep(t);
      const removed = second.removed.filter((r) => r.backend === backend && planted.includes(r.workspaceId));
      expect(
        removed
          .map((r) => [r.workspaceId, r.generation, r.reason])
          .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      ).toEqual(
        (
          [
            [live, 1, 'superseded'],
            [gone, null, 'deleted'],
            [unknown, null, 'unknown'],
            [young, null, 'unknown'],
            [volumesOnly, null, 'unknown'],
          ] as const
        )
          .map((r) => [...r])
          .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      );
      expect(second.counts.removed).toBeGreaterThanOrEqual(5);
      // The volumes-only workspace's removal names its volumes as volumes, no instance.
      const onlyVolumes = removed.find((r) => r.workspaceId === volumesOnly);
      expect(onlyVolumes?.instanceIds).toEqual([]);
      expect(onlyVolumes?.volumeIds?.length).toBeGreaterThan(0);
      if (leaked) {
        // Each leaked volume went with its generation or workspace; the live generation's stayed.
        // Named as volumes, not as instances.
        const removedIds = removed.flatMap((r) => r.volumeIds ?? []);
        expect(removedIds).toEqual(expect.arrayContaining([leaked.superseded, leaked.deleted, leaked.only]));
        expect(removedIds).not.toContain(leaked.liveGeneration);
        expect(removed.flatMap((r) => r.instanceIds)).not.toContain(leaked.superseded);
        expect(removed.find((r) => r.workspaceId === live)?.volumeIds).toContain(leaked.superseded);
        expect(await volumeState(leaked.superseded)).toBe('gone');
        expect(await volumeState(leaked.deleted)).toBe('gone');
        expect(await volumeState(leaked.only)).toBe('gone');
        expect(await volumeState(leaked.liveGeneration)).toBe('available');
      }
      if (idleOrg && strangerNet) {
        expect(second.networks?.removed).toContainEqual({
          backend: 'docker',
          orgId: idleOrg,
          name: `wo-org-${idleOrg}`,
        });
        expect(await networkIds(t, idleOrg)).toEqual([]);
        // The org with a live workspace keeps its network; a stranger's is never touched.
        expect(await networkIds(t, t.orgId)).toHaveLength(1);
        expect(await networkIds(t, strangerNet.slice('wo-org-'.length))).toHaveLength(1);
      } else {
        expect(second.networks?.counts.listed).toBe(0);
      }
      // Nothing of them is left (the simulator drops a terminated instance's container on its own time).
      for (const id of [gone, unknown, young, volumesOnly]) {
        await waitFor(async () => (await leftovers(backend, t.stack.docker, id)).length === 0, {
          timeoutMs: 60_000,
          intervalMs: 500,
          describe: `nothing of ${id} left on ${backend}`,
        });
      }
      // The live generation and its workspace are untouched.
      expect((await resourcesOf(backend, t.stack.docker, live)).map((r) => r.name)).toEqual([
        `ws-${live}-g2`,
      ]);
      expect((await waitForStatus(t.stack, t.key, live, 'online')).generation).toBe(2);
      if (leaked) {
        // The live workspace's delete takes its left volume with it: nothing of it remains.
        expect((await t.stack.api.call('DELETE', `/v1/workspaces/${live}`, { token: t.key })).status).toBe(
          202,
        );
        await waitForStatus(t.stack, t.key, live, 'deleted');
        expect(await volumeState(leaked.liveGeneration)).toBe('gone');
        expect(await leftovers(backend, t.stack.docker, live)).toEqual([]);
      }
      // No managed-by mark: never listed, never touched.
      if (backend === 'docker') {
        expect((await t.stack.docker.getContainer(foreign.id).inspect()).Id).toBe(foreign.id);
      } else {
        const out = await motoClient().send(new DescribeInstancesCommand({ InstanceIds: [foreign.id] }));
        expect(out.Reservations?.[0]?.Instances?.[0]?.State?.Name).not.toMatch(/terminated|shutting-down/);
      }
    } finally {
      await foreign.remove();
      if (strangerNet) await t.stack.docker.getNetwork(strangerNet).remove();
    }
  });
});

/** An EBS volume's state in moto, or `gone`. */
async function volumeState(volumeId: string): Promise<string> {
  try {
    const out = await motoClient().send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
    return out.Volumes?.[0]?.State ?? 'gone';
  } catch (err) {
    if ((err as { name?: string }).name === 'InvalidVolume.NotFound') return 'gone';
    throw err;
  }
}

/** The ids of the org's `wo-org-<org>` networks on the stack's dockerd. */
async function networkIds(t: ParityFixture, orgId: string): Promise<string[]> {
  const name = orgNetworkName(orgId);
  return (await t.stack.docker.listNetworks({ filters: { name: [name] } }))
    .filter((n) => n.Name === name)
    .map((n) => n.Id);
}

describe('sweep entry points', () => {
  const prefix = `test-${randomBytes(4).toString('hex')}:`;
  // A long interval: the Schedule exists but never fires by itself during the test.
  const s = useStack({
    env: {
      SWEEP_SCHEDULES: 'on',
      SWEEP_SCHEDULE_PREFIX: prefix,
      ORPHAN_SWEEP_INTERVAL_MS: '3600000',
      HEALTH_SWEEP_INTERVAL_MS: '3600000',
      BUDGET_SWEEP_INTERVAL_MS: '3600000',
      ACTIVITY_RETENTION_DAYS: '1',
      HISTORY_RETENTION_DAYS: '1',
    },
  });
  afterAll(async () => {
    for (const name of ['health', 'orphans', 'budget'] as const) {
      await s.stack?.service.temporal.schedule
        .getHandle(sweepScheduleId(prefix, name))
        .delete()
        .catch(() => undefined);
    }
  });

  it('lists the sweep Schedules with their interval, and the last result once one ran', async () => {
    const listed = await s.stack.api.call('GET', '/v1/admin/sweeps', { token: s.stack.adminToken });
    expect(listed.status).toBe(200);
    expect(listed.body.items).toEqual([
      expect.objectContaining({
        name: 'health',
        scheduleId: `${prefix}sweep:health`,
        intervalMs: 3_600_000,
        paused: false,
        lastRun: null,
      }),
      expect.objectContaining({
        name: 'orphans',
        scheduleId: `${prefix}sweep:orphans`,
        intervalMs: 3_600_000,
        paused: false,
        lastRun: null,
      }),
      expect.objectContaining({
        name: 'budget',
        scheduleId: `${prefix}sweep:budget`,
        intervalMs: 3_600_000,
        paused: false,
        lastRun: null,
      }),
    ]);
    // Activity past the retention (1 day here): a deleted workspace's rows of 2 and 3 days ago go,
    // the row of an hour ago stays.
    const pool = s.stack.service.db.pool;
    const org = await createOrg(s.stack, 'retention');
    const ws = await insertWorkspaceRow(pool, org.id);
    await pool.query(`UPDATE workspaces SET status = 'deleted' WHERE id = $1`, [ws]);
    await pool.query(
      `INSERT INTO activity (workspace_id, type, status, summary, ts)
       SELECT $1, 'a2a', '200', d || ' days', now() - d * interval '1 day' FROM unnest(ARRAY[2, 3]) d
       UNION ALL SELECT $1, 'a2a', '200', 'an hour', now() - interval '1 hour'`,
      [ws],
    );
    // History past the retention: the deleted workspace's of 2 days ago goes (its newest transition,
    // of 3 days ago, stays); a live one at generation 2 keeps its running generation's boot events
    // of 2 days ago and loses generation 1's.
    await pool.query(
      `INSERT INTO boot_events (workspace_id, generation, phase, ts, received_at)
       VALUES ($1, 0, 'old', now(), now() - interval '2 days')`,
      [ws],
    );
    await pool.query(
      `INSERT INTO console_logs (workspace_id, generation, text, captured_at)
       VALUES ($1, 0, 'old', now() - interval '2 days')`,
      [ws],
    );
    await pool.query(
      `INSERT INTO workspace_transitions (workspace_id, status, generation, ts)
       VALUES ($1, 'deleting', 0, now() - interval '4 days'), ($1, 'deleted', 0, now() - interval '3 days')`,
      [ws],
    );
    const live = await insertWorkspaceRow(pool, org.id);
    await pool.query(`UPDATE workspaces SET status = 'online', generation = 2 WHERE id = $1`, [live]);
    await pool.query(
      `INSERT INTO boot_events (workspace_id, generation, phase, ts, received_at)
       SELECT $1, g, 'g' || g, now(), now() - interval '2 days' FROM unnest(ARRAY[1, 2]) g`,
      [live],
    );
    await s.stack.service.temporal.schedule.getHandle(sweepScheduleId(prefix, 'orphans')).trigger();
    const ran = await waitFor(
      async () => {
        const res = await s.stack.api.call('GET', '/v1/admin/sweeps', { token: s.stack.adminToken });
        const run = res.body.items.find((i: { name: string }) => i.name === 'orphans')?.lastRun;
        return run?.status === 'COMPLETED' ? run : null;
      },
      { timeoutMs: 60_000, intervalMs: 250, describe: 'the triggered sweep to complete' },
    );
    expect(ran.workflowId).toContain(`${prefix}sweep:orphans`);
    expect(ran.result.counts).toEqual(
      expect.objectContaining({ listed: expect.any(Number), removed: expect.any(Number), failed: 0 }),
    );
    const pruned = (ran.result as OrphanSweepResult).activity!;
    expect(pruned.more).toBe(false);
    expect(pruned.removed).toBeGreaterThanOrEqual(2);
    expect(Date.now() - Date.parse(pruned.before)).toBeGreaterThanOrEqual(86_400_000);
    const left = await pool.query(`SELECT summary FROM activity WHERE workspace_id = $1`, [ws]);
    expect(left.rows).toEqual([{ summary: 'an hour' }]);
    const history = (ran.result as OrphanSweepResult).history!;
    expect(history.more).toBe(false);
    expect(history.removed).toEqual({
      consoleLogs: expect.any(Number),
      bootEvents: expect.any(Number),
      transitions: expect.any(Number),
    });
    expect(Date.now() - Date.parse(history.before)).toBeGreaterThanOrEqual(86_400_000);
    const kept = async (sql: string, id: string) => (await pool.query(sql, [id])).rows;
    expect(await kept('SELECT phase FROM boot_events WHERE workspace_id = $1', ws)).toEqual([]);
    expect(await kept('SELECT text FROM console_logs WHERE workspace_id = $1', ws)).toEqual([]);
    expect(await kept('SELECT status FROM workspace_transitions WHERE workspace_id = $1', ws)).toEqual([
      { status: 'deleted' },
    ]);
    expect(await kept('SELECT phase FROM boot_events WHERE workspace_id = $1', live)).toEqual([
      { phase: 'g2' },
    ]);
  });

  it('creating the Schedules again updates them in place', async () => {
    const settings = {
      taskQueue: s.stack.config.TASK_QUEUE,
      schedulePrefix: prefix,
      orphanIntervalMs: 7_200_000,
      orphanGraceMs: s.stack.config.ORPHAN_GRACE_MS,
      healthIntervalMs: 5_400_000,
      heartbeatStaleMs: 3_000,
      budgetIntervalMs: 1_800_000,
      budgetPolicy: 'stop' as const,
    };
    await ensureSweepSchedules(s.stack.service.temporal, settings);
    const res = await s.stack.api.call('GET', '/v1/admin/sweeps', { token: s.stack.adminToken });
    expect(res.body.items.map((i: { intervalMs: number }) => i.intervalMs)).toEqual([
      5_400_000, 7_200_000, 1_800_000,
    ]);
  });

  it('answers 404 for an unknown sweep and 403 to a non-admin', async () => {
    const unknown = await s.stack.api.call('POST', '/v1/admin/sweeps/nope/run', {
      token: s.stack.adminToken,
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
    for (const [method, path] of [
      ['POST', '/v1/admin/sweeps/orphans/run'],
      ['GET', '/v1/admin/sweeps'],
    ] as const) {
      const res = await s.stack.api.call(method, path, { token: s.key });
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
    }
  });
});
