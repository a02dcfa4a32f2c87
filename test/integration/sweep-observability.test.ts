/**
 * What an operator sees of the sweeps (docs/operations.md), on the real stack: after a health
 * sweep, /metrics counts its run and its signals; the Temporal visibility queries of the doc find
 * an automatically restarted workspace (WorkspaceRestarts) and a workspace by how long it has been
 * in its status (WorkspaceStatusSince). The entity upserts both; ./dev and the test setup register
 * them. Docker only: the attributes and counters are the entity's and the sweep's, not a backend's.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../setup/wait-for.js';
import { useStack, waitForStatus } from '../support/stack.js';
import { workspaceWorkflowId } from '../../src/workflows/messages.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- API bodies

/** Sample values of one metric family from a /metrics text, keyed by their label set. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (m) out.set(m[1] ?? '', Number(m[2]));
  }
  return out;
}

describe('sweep observability', () => {
  const t = useStack({
    env: {
      AUTO_RESTART_POLICY: 'always',
      AUTO_RESTART_BACKOFF_MS: '200',
      HEARTBEAT_STALE_MS: '4000',
    },
  });

  const metrics = async (): Promise<string> => {
    const res = await fetch(`${t.stack.url}/metrics`);
    expect(res.status).toBe(200);
    return res.text();
  };

  /** The workflow ids a visibility query finds (visibility is eventually consistent: waited for). */
  const listUntil = async (query: string, want: string): Promise<string[]> =>
    waitFor(
      async () => {
        const ids: string[] = [];
        for await (const w of t.stack.service.temporal.workflow.list({ query })) ids.push(w.workflowId);
        return ids.includes(want) ? ids : null;
      },
      { timeoutMs: 30_000, intervalMs: 250, describe: `visibility query ${query} to list ${want}` },
    );

  it('a stopped workspace is signalled, counted in /metrics and found as auto-restarted by a visibility query', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'watched', backend: 'docker' },
    });
    expect(created.status).toBe(202);
    const id = String(created.body.id);
    await waitForStatus(t.stack, t.key, id, 'online');
    const before = await metrics();
    const runsBefore = [...samples(before, 'wo_sweep_runs_total')]
      .filter(([labels]) => labels.includes('sweep="health"'))
      .reduce((sum, [, v]) => sum + v, 0);
    const signalledBefore =
      samples(before, 'wo_sweep_actions_total').get('{sweep="health",action="signalled"}') ?? 0;

    await t.stack.service.backends.docker.stop(id, 1);
    let sweeps = 0;
    const w: Json = await waitFor(
      async () => {
        const sweep = await t.stack.api.callRetrying503('POST', '/v1/admin/sweeps/health/run', {
          token: t.stack.adminToken,
        });
        expect(sweep.status).toBe(200);
        sweeps++;
        const res = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key });
        return res.body.status === 'online' && res.body.generation === 2 ? res.body : null;
      },
      {
        timeoutMs: 120_000,
        intervalMs: 500,
        describe: 'the sweep to find it offline and the restart to bring it back',
      },
    );
    expect(w.restartCount).toBe(1);

    // /metrics: every run of this file counted (other files may add runs of their own meanwhile).
    const after = await metrics();
    const runsAfter = [...samples(after, 'wo_sweep_runs_total')]
      .filter(([labels]) => labels.includes('sweep="health"'))
      .reduce((sum, [, v]) => sum + v, 0);
    expect(runsAfter - runsBefore).toBeGreaterThanOrEqual(sweeps);
    const signalledAfter = samples(after, 'wo_sweep_actions_total').get(
      '{sweep="health",action="signalled"}',
    );
    expect(signalledAfter! - signalledBefore).toBeGreaterThanOrEqual(1);
    expect(samples(after, 'wo_sweep_duration_seconds').get('{sweep="health"}')).toBeGreaterThan(0);
    expect(after).toContain('# TYPE wo_sweep_runs_total counter');

    // docs/operations.md, "auto-restarted": the entity's restart count is a search attribute.
    const workflowId = workspaceWorkflowId(id);
    const restarted = await listUntil(
      `WorkflowType = 'workspaceWorkflow' AND WorkspaceRestarts > 0 AND OrgId = '${t.orgId}'`,
      workflowId,
    );
    expect(restarted).toEqual([workflowId]);

    // docs/operations.md, "stuck": in a status since before a given time.
    const since = new Date(Date.now() + 1000).toISOString();
    const settled = await listUntil(
      `WorkspaceStatus = 'online' AND WorkspaceStatusSince < '${since}' AND WorkspaceId = '${id}'`,
      workflowId,
    );
    expect(settled).toEqual([workflowId]);
    const none: string[] = [];
    for await (const x of t.stack.service.temporal.workflow.list({
      query: `WorkspaceId = '${id}' AND WorkspaceStatusSince < '2000-01-01T00:00:00Z'`,
    }))
      none.push(x.workflowId);
    expect(none).toEqual([]);

    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });
});
