/**
 * Provision metrics on both backends: a provision to online is timed per phase under its backend
 * (wo_provision_duration_seconds, written by the worker, served by the API) and the workspace is
 * counted in wo_workspaces{status,backend}. Figures are compared before and after: the run's
 * database is shared with the other files.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../setup/wait-for.js';
import { sampleValue } from '../support/prometheus.js';
import { waitForStatus } from '../support/stack.js';
import { CONCURRENT_BLOCK, PARITY_BACKENDS, useParityStack } from './backends.js';

const PHASES = ['total', 'resource', 'boot', 'config-materialized', 'agent-started'];

describe.each(PARITY_BACKENDS)('%s: provision metrics', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  const scrape = async (): Promise<string> => {
    const res = await fetch(`${t.stack.url}/metrics`);
    expect(res.status).toBe(200);
    return res.text();
  };
  const count = (text: string, phase: string) =>
    sampleValue(text, 'wo_provision_duration_seconds_count', { backend, phase });

  it('times each phase of a provision under its backend and counts the workspace online', async () => {
    const before = await scrape();
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'timed', backend },
    });
    expect(created.status).toBe(202);
    const id = String(created.body.id);
    await waitForStatus(t.stack, t.key, id, 'online');
    const after = await waitFor(
      async () => {
        const text = await scrape();
        return count(text, 'total') > count(before, 'total') ? text : null;
      },
      { timeoutMs: 30_000, intervalMs: 250, describe: `the ${backend} provision to be timed` },
    );
    for (const phase of PHASES) expect(count(after, phase), phase).toBeGreaterThan(count(before, phase));
    expect(
      sampleValue(after, 'wo_provision_duration_seconds_sum', { backend, phase: 'total' }),
    ).toBeGreaterThan(sampleValue(before, 'wo_provision_duration_seconds_sum', { backend, phase: 'total' }));
    expect(sampleValue(after, 'wo_workspaces', { status: 'online', backend })).toBeGreaterThanOrEqual(1);

    const del = await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
    expect(del.status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });
});
