/**
 * The org cascade against a create that raced it (red-team finding O2), on the real stack: the
 * create's row committed before the org was deleted, but its entity start comes only after the
 * cascade looked (a slow API process). The cascade must still delete that workspace, and the late
 * start must not boot anything in the deleted org. The racing API is the stack's own, served again
 * with an entity client whose start waits for the test.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EntityClient } from '../../src/api/entity.js';
import { orgDeleteWorkflowId } from '../../src/domain/org-delete-start.js';
import type { WorkspaceWorkflowInput } from '../../src/workflows/messages.js';
import { workspaceWorkflowId } from '../../src/workflows/messages.js';
import type { OrgDeleteResult } from '../../src/workflows/sweeps.js';
import { waitFor } from '../setup/wait-for.js';
import { createOrg, serveApiWith, useStack, type ApiClient } from '../support/stack.js';

describe('org cascade against a create whose entity starts late', () => {
  // A short wait: on the code before the fix the cascade gave up on the workspace after it.
  const t = useStack({ env: { ORG_DELETE_WAIT_MS: '3000' } });
  let served: Awaited<ReturnType<typeof serveApiWith>> | undefined;
  let api: ApiClient;
  let openGate: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (openGate = resolve));
  const lateStarts: Array<'started' | 'refused'> = [];

  beforeAll(async () => {
    const real = new EntityClient(t.stack.service.temporal, t.stack.config.TASK_QUEUE);
    served = await serveApiWith(t.stack, {
      start: async (input: WorkspaceWorkflowInput) => {
        await gate;
        try {
          const id = await real.start(input);
          lateStarts.push('started');
          return id;
        } catch (err) {
          if (err instanceof WorkflowExecutionAlreadyStartedError) lateStarts.push('refused');
          throw err;
        }
      },
      exists: (id: string) => real.exists(id),
      // A create asks first whether a worker polls (this stack runs one).
      requireWorker: (deadline?: number) => real.requireWorker(deadline),
    });
    api = served.api;
    // The racing create asks Temporal whether a worker polls (this client has no local worker to
    // ask): on a stack just started, wait until one shows, or the create answers 503 and commits
    // nothing for the test to wait on.
    await waitFor(() => real.requireWorker().then(() => true), {
      timeoutMs: 30_000,
      intervalMs: 200,
      describe: "the stack's worker to show as polling",
    });
  });
  afterAll(async () => {
    openGate();
    await served?.close();
  });

  it('deletes the workspace anyway, and its late entity start boots nothing', async () => {
    const org = await createOrg(t.stack, 'racing');
    const creating = api.call('POST', '/v1/workspaces', {
      token: org.apiKey,
      body: { name: 'late', backend: 'docker' },
    });
    // Answered before its row showed: a refusal, named in the wait's failure.
    let early = '';
    void creating.then((r) => (early = `; the create answered ${r.status} ${JSON.stringify(r.body)}`));
    // The create's row is committed; its entity start waits at the gate.
    const id = await waitFor(
      async () =>
        (
          await t.stack.service.db.pool.query<{ id: string }>('SELECT id FROM workspaces WHERE org_id = $1', [
            org.id,
          ])
        ).rows[0]?.id,
      { timeoutMs: 30_000, intervalMs: 100, describe: 'the racing create to commit its row' },
    ).catch((err: Error) => {
      throw new Error(`${err.message}${early}`);
    });

    const del = await t.stack.api.call('DELETE', `/v1/orgs/${org.id}`, { token: t.stack.adminToken });
    expect(del.status).toBe(202);
    const result = (await t.stack.service.temporal.workflow
      .getHandle(orgDeleteWorkflowId(org.id))
      .result()) as OrgDeleteResult;
    expect(result.workspaces).toEqual([id]);
    const afterCascade = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.stack.adminToken });
    expect(afterCascade.body.status).toBe('deleted');

    // Now the create's start arrives: refused (a workflow already ran under the id), and the create
    // still answers 202, since its workspace exists (deleted, with the org).
    openGate();
    const created = await creating;
    expect(created.status).toBe(202);
    expect(created.body.id).toBe(id);
    expect(lateStarts).toEqual(['refused']);
    const entity = await t.stack.service.temporal.workflow.getHandle(workspaceWorkflowId(id)).describe();
    expect(entity.status.name).toBe('COMPLETED');
    const w = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.stack.adminToken });
    expect(w.body.status).toBe('deleted');
    const containers = await t.stack.docker.listContainers({
      all: true,
      filters: { label: [`wo.org-id=${org.id}`] },
    });
    expect(containers.map((c) => c.Names[0])).toEqual([]);
  });
});
