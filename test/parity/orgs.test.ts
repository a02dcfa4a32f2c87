/**
 * The org cascade on the real stack, the same test for each backend: DELETE /v1/orgs/:id deletes
 * every workspace through its entity, the org's key fails at once, and the final sweep by the org's
 * label/tag leaves nothing of the org in Docker or moto (a leak planted beforehand included).
 */
import { randomBytes } from 'node:crypto';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import type Dockerode from 'dockerode';
import { describe, expect, test } from 'vitest';
import { orgDeleteWorkflowId } from '../../src/domain/org-delete-start.js';
import type { OrgDeleteResult } from '../../src/workflows/sweeps.js';
import { waitFor } from '../setup/wait-for.js';
import { createOrg, waitForStatus } from '../support/stack.js';
import { motoClient, CONCURRENT_BLOCK, PARITY_BACKENDS, useParityStack } from './backends.js';
import { plantLeak, schedulesOf } from './leaks.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

describe.each(PARITY_BACKENDS)('%s org delete', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  it('deletes the workspaces, revokes the key at once and leaves nothing of the org', async () => {
    const org = await createOrg(t.stack, 'doomed');
    expect(
      (
        await t.stack.api.call('PUT', `/v1/orgs/${org.id}/secrets/ORG_DEFAULT`, {
          token: t.stack.adminToken,
          body: { value: 'doomed-org-default' },
        })
      ).status,
    ).toBe(204);
    const ids = await Promise.all(
      ['one', 'two', 'three'].map(async (name) => {
        const res = await t.stack.api.call('POST', '/v1/workspaces', {
          token: org.apiKey,
          body: { name, backend },
        });
        expect(res.status).toBe(202);
        return res.body.id as string;
      }),
    );
    await Promise.all(ids.map((id) => waitForStatus(t.stack, org.apiKey, id, 'online')));
    // A schedule of the org (paused: it must go with its workspace, not by firing into a gone one).
    const schedule = await t.stack.api.call('POST', `/v1/workspaces/${ids[0]}/schedules`, {
      token: org.apiKey,
      body: { cron: '0 3 * * *', prompt: 'nightly', enabled: false },
    });
    expect(schedule.status).toBe(201);
    expect(await schedulesOf(t.stack.service.temporal, ids[0]!)).toHaveLength(1);
    // A leak of the org no workspace row knows of: only the final sweep by label/tag finds it.
    const leaked = randomBytes(8).toString('hex');
    await plantLeak(t, leaked, org.id, 1);

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
    expect([...result.workspaces].sort()).toEqual([...ids].sort());
    expect(result.stillDeleting).toEqual([]);
    for (const id of ids) {
      const w = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.stack.adminToken });
      expect(w.body.status).toBe('deleted');
    }
    expect(result.swept[backend]!.length).toBeGreaterThanOrEqual(1);
    // The org's sealed defaults went with its last workspace.
    expect(
      (await t.stack.service.db.pool.query('SELECT 1 FROM org_secrets WHERE org_id = $1', [org.id])).rowCount,
    ).toBe(0);
    expect(await schedulesOf(t.stack.service.temporal, ids[0]!)).toEqual([]);
    // The simulator drops a terminated instance's container on its own schedule: wait for it.
    await waitFor(async () => (await orgLeftovers(t.stack.docker, backend, org.id)).length === 0, {
      timeoutMs: 60_000,
      intervalMs: 500,
      describe: `nothing of org ${org.id} left on ${backend}`,
    });

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
