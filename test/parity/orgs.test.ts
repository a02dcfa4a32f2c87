/**
 * The org cascade on the real stack, the same test for each backend: DELETE /v1/orgs/:id deletes
 * every workspace through its entity, the org's key fails at once, and the final sweep by the org's
 * label/tag leaves nothing of the org in Docker or moto (a leak planted beforehand included). An org
 * whose cascade never started (its API killed right after the delete's commit) gets it from the
 * orphan sweep, with the same end.
 */
import { randomBytes } from 'node:crypto';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { WorkflowNotFoundError } from '@temporalio/client';
import type Dockerode from 'dockerode';
import { describe, expect, test } from 'vitest';
import { markOrgDeleted } from '../../src/db/orgs.js';
import { inTransaction } from '../../src/db/queryable.js';
import { orgDeleteWorkflowId } from '../../src/domain/org-delete-start.js';
import type { OrgDeleteResult } from '../../src/workflows/sweeps.js';
import { waitFor } from '../setup/wait-for.js';
import { createOrg, waitForStatus } from '../support/stack.js';
import {
  motoClient,
  CONCURRENT_BLOCK,
  PARITY_BACKENDS,
  useParityStack,
  type ParityFixture,
} from './backends.js';
import { plantLeak, waitForSchedulesListed } from './leaks.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

describe.each(PARITY_BACKENDS)('%s org delete', CONCURRENT_BLOCK, (backend) => {
  // Docker places per org here, so that "nothing of the org left" includes its network (on the
  // shared default bridge an org has none).
  const t = useParityStack(backend, { env: { DOCKER_WORKSPACE_NETWORK: 'per-org' } });

  it('deletes the workspaces, revokes the key at once and leaves nothing of the org', async () => {
    const { org, ids } = await doomedOrg(t, ['one', 'two', 'three']);

    const other = await t.stack.api.call('DELETE', `/v1/orgs/${org.id}`, { token: t.key });
    expect(other.status).toBe(403);
    const del = await t.stack.api.call('DELETE', `/v1/orgs/${org.id}`, { token: t.stack.adminToken });
    expect(del.status).toBe(202);
    expect(del.body.workflowId).toBe(orgDeleteWorkflowId(org.id));

    // At once: the key is refused, the org is gone, nothing more can be created in it.
    const withKey = await t.stack.api.call('GET', '/v1/workspaces', { token: org.apiKey });
    expect(withKey.status).toBe(401);
    expect((await t.stack.api.call('GET', `/v1/orgs/${org.id}`, { token: t.stack.adminToken })).status).toBe(
      404,
    );
    const listed = await t.stack.api.call('GET', '/v1/orgs', { token: t.stack.adminToken });
    expect(listed.body.items.map((o: { id: string }) => o.id)).not.toContain(org.id);
    const create = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.stack.adminToken,
      body: { name: 'late', backend, orgId: org.id },
    });
    expect(create.status).toBe(400);
    expect(create.body.error.field).toBe('orgId');

    const result = (await t.stack.service.temporal.workflow
      .getHandle(orgDeleteWorkflowId(org.id))
      .result()) as OrgDeleteResult;
    expect(result.stillDeleting).toEqual([]);
    await expectNothingLeft(t, org.id, ids, result);

    // Deleting again is accepted (the cascade is idempotent); an org that never existed is 404.
    expect(
      (await t.stack.api.call('DELETE', `/v1/orgs/${org.id}`, { token: t.stack.adminToken })).status,
    ).toBe(202);
    const missing = await t.stack.api.call('DELETE', `/v1/orgs/${randomBytes(8).toString('hex')}`, {
      token: t.stack.adminToken,
    });
    expect(missing.status).toBe(404);
  });
});

// On a database of its own: a sweep starts the cascade of every deleted org it finds, so on a
// shared one the other backend's block's sweep could take this org (on a stack that may lack this
// backend). Apart, the blocks run at the same time.
describe.each(PARITY_BACKENDS)('%s org deleted without its cascade', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend, { ownDatabase: true });

  it('the orphan sweep starts the cascade, and nothing of the org is left', async () => {
    const { org, ids } = await doomedOrg(t, ['one', 'two']);

    // What DELETE /v1/orgs/:id leaves when its API is killed (or Temporal is down) right after the
    // commit: the org deleted and its keys dropped, no cascade. A minute ago: past the sweep's grace.
    const pool = t.stack.service.db.pool;
    expect(await inTransaction(pool, (tx) => markOrgDeleted(tx, org.id))).toBe('deleted');
    await pool.query(`UPDATE orgs SET deleted_at = now() - interval '2 minutes' WHERE id = $1`, [org.id]);
    expect((await t.stack.api.call('GET', '/v1/workspaces', { token: org.apiKey })).status).toBe(401);
    const cascade = t.stack.service.temporal.workflow.getHandle(orgDeleteWorkflowId(org.id));
    await expect(cascade.describe()).rejects.toThrow(WorkflowNotFoundError);

    const sweep = await t.stack.api.callRetrying503('POST', '/v1/admin/sweeps/orphans/run', {
      token: t.stack.adminToken,
    });
    expect(sweep.status).toBe(200);
    expect(sweep.body.orgDeletes.resumed).toContainEqual({ orgId: org.id, workspaces: 2 });
    expect(sweep.body.orgDeletes.failed).toEqual([]);

    await expectNothingLeft(t, org.id, ids, (await cascade.result()) as OrgDeleteResult);

    // Its cascade done, the org has nothing left to delete: the next sweep starts none for it.
    const again = await t.stack.api.callRetrying503('POST', '/v1/admin/sweeps/orphans/run', {
      token: t.stack.adminToken,
    });
    expect(again.body.orgDeletes.resumed.map((o: { orgId: string }) => o.orgId)).not.toContain(org.id);
  });
});

/**
 * A new org with the named workspaces online, a paused schedule on the first (it must go with its
 * workspace, not by firing into a gone one), and a leak of the org no workspace row knows of (only
 * the final sweep by label/tag finds it).
 */
async function doomedOrg(
  t: ParityFixture,
  names: string[],
): Promise<{ org: { id: string; apiKey: string }; ids: string[] }> {
  const org = await createOrg(t.stack, 'doomed');
  // A default secret of the org: sealed, it must go with the org's last workspace.
  const secret = await t.stack.api.call('PUT', `/v1/orgs/${org.id}/secrets/ORG_DEFAULT`, {
    token: t.stack.adminToken,
    body: { value: 'doomed-org-default' },
  });
  expect(secret.status).toBe(204);
  const ids = await Promise.all(
    names.map(async (name) => {
      const res = await t.stack.api.call('POST', '/v1/workspaces', {
        token: org.apiKey,
        body: { name, backend: t.backend },
      });
      expect(res.status).toBe(202);
      return res.body.id as string;
    }),
  );
  await Promise.all(ids.map((id) => waitForStatus(t.stack, org.apiKey, id, 'online')));
  const schedule = await t.stack.api.call('POST', `/v1/workspaces/${ids[0]}/schedules`, {
    token: org.apiKey,
    body: { cron: '0 3 * * *', prompt: 'nightly', enabled: false },
  });
  expect(schedule.status).toBe(201);
  await waitForSchedulesListed(t.stack.service.temporal, ids[0]!, 1);
  await plantLeak(t, randomBytes(8).toString('hex'), org.id, 1);
  return { org, ids };
}

/** The cascade's end: every workspace `deleted`, the leak swept, no schedule and nothing of the org left. */
async function expectNothingLeft(
  t: ParityFixture,
  orgId: string,
  ids: string[],
  result: OrgDeleteResult,
): Promise<void> {
  expect([...result.workspaces].sort()).toEqual([...ids].sort());
  for (const id of ids) {
    const w = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.stack.adminToken });
    expect(w.body.status).toBe('deleted');
  }
  expect(result.swept[t.backend]!.length).toBeGreaterThanOrEqual(1);
  // The org's sealed defaults went with its last workspace.
  expect(
    (await t.stack.service.db.pool.query('SELECT 1 FROM org_secrets WHERE org_id = $1', [orgId])).rowCount,
  ).toBe(0);
  await waitForSchedulesListed(t.stack.service.temporal, ids[0]!, 0);
  // The simulator drops a terminated instance's container on its own schedule: wait for it.
  await waitFor(async () => (await orgLeftovers(t.stack.docker, t.backend, orgId)).length === 0, {
    timeoutMs: 60_000,
    intervalMs: 500,
    describe: `nothing of org ${orgId} left on ${t.backend}`,
  });
}

/** Everything of the org still on the backend: containers, volumes and its network; or live instances. */
async function orgLeftovers(docker: Dockerode, backend: string, orgId: string): Promise<string[]> {
  const label = { label: [`wo.org-id=${orgId}`] };
  if (backend === 'docker') {
    const containers = await docker.listContainers({ all: true, filters: label });
    const { Volumes } = await docker.listVolumes({ filters: label });
    const networks = (await docker.listNetworks({ filters: { name: [`wo-org-${orgId}`] } })).filter(
      (n) => n.Name === `wo-org-${orgId}`,
    );
    return [
      ...containers.map((c) => `container ${c.Names[0]}`),
      ...(Volumes ?? []).map((v) => `volume ${v.Name}`),
      ...networks.map((n) => `network ${n.Name}`),
    ];
  }
  const out = await motoClient().send(
    new DescribeInstancesCommand({ Filters: [{ Name: 'tag:OrgId', Values: [orgId] }] }),
  );
  const instances = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
  const sim = await docker.listContainers({ all: true, filters: { label: ['wo.ec2-sim=1'] } });
  const simOfOrg = sim.filter((c) => instances.some((i) => c.Names[0] === `/ec2-${i.InstanceId}`));
  return [
    ...instances
      .filter((i) => i.State?.Name !== 'terminated')
      .map((i) => `instance ${i.InstanceId} (${i.State?.Name})`),
    ...simOfOrg.map((c) => `sim container ${c.Names[0]}`),
  ];
}
