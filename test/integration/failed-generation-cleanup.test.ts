/**
 * A failed generation whose removal failed too (red-team finding O4), on the real stack: the
 * workspace's first start fails after its container was made, and the compensation's removal
 * fails once (a backend error). The container then belongs to the current generation of a
 * `failed` workspace, which nothing would ever use or remove: the orphan sweep must remove it
 * (the workspace's volumes stay, it is not deleted). Faults are injected into the stack's own
 * Docker backend, which the in-process worker uses.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { BackendError, type WorkspaceBackend } from '../../src/backends/backend.js';
import {
  containersOf,
  createOrg,
  orphanRemovalOf,
  useStack,
  volumesOf,
  waitForStatus,
} from '../support/stack.js';

describe('a failed generation whose removal failed', () => {
  const t = useStack({ env: { ORPHAN_GRACE_MS: '1000' } });
  let restore: () => void = () => undefined;
  afterAll(() => restore());

  /** Starts in `orgId` fail after the container exists; each such workspace's first removal fails. */
  function injectFaults(orgId: string): void {
    const docker: WorkspaceBackend = t.stack.service.backends.docker;
    const { start, remove } = docker;
    const faulty = new Set<string>();
    docker.start = async (spec) => {
      const info = await start.call(docker, spec);
      if (spec.orgId !== orgId) return info;
      faulty.add(spec.workspaceId);
      throw new BackendError('permanent', 'injected: the started resource is unusable');
    };
    docker.remove = async (workspaceId, opts) => {
      if (faulty.delete(workspaceId)) throw new BackendError('permanent', 'injected: remove refused');
      return remove.call(docker, workspaceId, opts);
    };
    restore = () => {
      docker.start = start;
      docker.remove = remove;
    };
  }

  it('is removed by the orphan sweep, the workspace stays failed with its volumes', async () => {
    const org = await createOrg(t.stack, 'o4');
    injectFaults(org.id);
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: org.apiKey,
      body: { name: 'doomed', backend: 'docker' },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    const failed = await waitForStatus(t.stack, org.apiKey, id, 'failed', 60_000);
    expect(failed.error).toMatch(/injected: the started resource is unusable; removing generation 1 failed/);
    expect(failed.generation).toBe(1);
    expect((await containersOf(t.stack.docker, id)).length).toBe(1);

    // Sweeps until one is past the grace period and removes it (the container is seconds old).
    const removal = await orphanRemovalOf(t.stack, id);
    expect(removal).toMatchObject({ generation: 1, reason: 'discarded' });
    expect(await containersOf(t.stack.docker, id)).toEqual([]);
    expect((await volumesOf(t.stack.docker, id)).length).toBeGreaterThan(0);
    const after = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: org.apiKey });
    expect(after.body.status).toBe('failed');

    restore();
    // A restart still works from there (the removal of generation 1 finds nothing), then delete.
    expect(
      (await t.stack.api.call('POST', `/v1/workspaces/${id}/restart`, { token: org.apiKey })).status,
    ).toBe(202);
    await waitForStatus(t.stack, org.apiKey, id, (w) => w.status === 'online' && w.generation === 2);
    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: org.apiKey })).status).toBe(
      202,
    );
    await waitForStatus(t.stack, org.apiKey, id, 'deleted');
  });
});
