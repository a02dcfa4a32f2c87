/**
 * Budgets on the real stack, the same test for each backend: the reference agent charges each A2A
 * task (`config.agent.centsPerTask`) and reports its spend in heartbeats; at the limit the proxy
 * answers 402, a replayed lower heartbeat does not lower the spend, and one budget sweep (through
 * the admin route: test stacks run no Schedules) stops the workspace through its entity.
 */
import { describe, expect, test } from 'vitest';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import type { BudgetSweepResult } from '../../src/workflows/sweeps.js';
import { waitFor } from '../setup/wait-for.js';
import { waitForStatus } from '../support/stack.js';
import { CONCURRENT_BLOCK, PARITY_BACKENDS, resourcesOf, useParityStack } from './backends.js';
import { messageSend as send } from '../support/a2a-message.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

const CENTS_PER_TASK = 15;

describe.each(PARITY_BACKENDS)('%s budget', CONCURRENT_BLOCK, (backend) => {
  // Only this block's backend: the other block's over-budget workspace is its own sweep's to stop.
  const t = useParityStack(backend, { env: { ENABLED_BACKENDS: backend } });

  it('over the limit: A2A answers 402, a replayed heartbeat does not lower the spend, the sweep stops it', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: {
        name: 'spender',
        backend,
        budgetLimitCents: 2 * CENTS_PER_TASK,
        config: { agent: { centsPerTask: CENTS_PER_TASK } },
      },
    });
    expect(created.status).toBe(202);
    const id = created.body.id as string;
    const w = await waitForStatus(t.stack, t.key, id, 'online');
    const budget = async () => {
      const res = await t.stack.api.call('GET', `/v1/workspaces/${id}/budget`, { token: t.key });
      expect(res.status).toBe(200);
      return res.body as { limitCents: number | null; spentCents: number };
    };
    const spent = (cents: number) =>
      waitFor(
        async () => {
          const b = await budget();
          if (b.spentCents !== cents) throw new Error(`spentCents is ${b.spentCents}`);
          return b;
        },
        { timeoutMs: 30_000, intervalMs: 200, describe: `spentCents to reach ${cents}` },
      );
    const a2a = () =>
      t.stack.api.call('POST', `/v1/workspaces/${id}/a2a`, { token: t.key, body: send('work') });

    expect(await budget()).toEqual({ limitCents: 30, spentCents: 0 });
    // Under the limit the agent works; each task's cost arrives with the next heartbeat.
    expect((await a2a()).status).toBe(200);
    await spent(15);
    expect((await a2a()).status).toBe(200);
    expect(await spent(30)).toEqual({ limitCents: 30, spentCents: 30 });

    const refused = await a2a();
    expect(refused.status).toBe(402);
    expect(refused.body.error.code).toBe('budget_exceeded');

    // A replayed (older, lower) heartbeat of the current generation is accepted but lowers nothing.
    const token = await mintWorkspaceToken(t.stack.service.db.pool, id, w.generation);
    const replay = await t.stack.api.call('POST', '/v1/registry/heartbeat', {
      token,
      body: {
        workspaceId: id,
        generation: w.generation,
        configHash: w.configHash,
        activeTasks: 0,
        errorRate: 0,
        uptimeSeconds: 1,
        spentCents: CENTS_PER_TASK,
      },
    });
    expect(replay.status).toBe(200);
    expect(await budget()).toEqual({ limitCents: 30, spentCents: 30 });

    const swept = await t.stack.api.callRetrying503('POST', '/v1/admin/sweeps/budget/run', {
      token: t.stack.adminToken,
    });
    expect(swept.status).toBe(200);
    const result = swept.body as BudgetSweepResult;
    expect(result.policy).toBe('stop');
    expect(result.stopped).toContain(id);
    expect(result.overBudget).toContainEqual({ workspaceId: id, backend, limitCents: 30, spentCents: 30 });

    // It says why it stopped: the phase, and the figures in its transitions' message.
    const stoppedView = await waitForStatus(t.stack, t.key, id, 'stopped');
    expect(stoppedView.phase).toBe('over-budget');
    const feed = await fetch(`${t.stack.url}/v1/workspaces/${id}/events`, {
      headers: { authorization: `Bearer ${t.key}` },
      signal: AbortSignal.timeout(10_000),
    });
    const reader = feed.body!.getReader();
    let text = '';
    while (!/"status":"stopped"/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    await reader.cancel();
    const stops = [...text.matchAll(/^data: (.*)$/gm)]
      .map((m) => JSON.parse(m[1]!) as { status: string; phase?: string; message?: string })
      .filter((e) => e.status === 'stopping' || e.status === 'stopped');
    expect(stops.map((e) => [e.status, e.phase, e.message])).toEqual(
      ['stopping', 'stopped'].map((status) => [
        status,
        'over-budget',
        'stopped by the budget sweep: spent 30 of its 30 cents',
      ]),
    );
    expect((await resourcesOf(backend, t.stack.docker, id)).filter((r) => r.running)).toEqual([]);
    // Stopped and still over: 402 says why (starting it would not help until the limit is raised).
    expect((await a2a()).status).toBe(402);
    // A stopped workspace spends nothing: the next sweep leaves it alone.
    const again = await t.stack.api.callRetrying503('POST', '/v1/admin/sweeps/budget/run', {
      token: t.stack.adminToken,
    });
    expect(again.body.stopped).not.toContain(id);
    // Starting or restarting it while still over answers 402 and boots nothing.
    for (const op of ['start', 'restart']) {
      const refused = await t.stack.api.call('POST', `/v1/workspaces/${id}/${op}`, { token: t.key });
      expect(refused.status, op).toBe(402);
      expect(refused.body.error.code, op).toBe('budget_exceeded');
    }
    // A config save that restarts boots a generation too: refused whole (nothing saved); a save
    // alone is kept.
    const before = (await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key })).body;
    const saveAndRestart = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
      token: t.key,
      body: { config: { over: 'budget' }, restart: true },
    });
    expect(saveAndRestart.status).toBe(402);
    expect(saveAndRestart.body.error.code).toBe('budget_exceeded');
    const after = (await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key })).body;
    expect(after).toMatchObject({
      status: 'stopped',
      generation: before.generation,
      configHash: before.configHash,
    });
    const saveOnly = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
      token: t.key,
      body: { config: { agent: { centsPerTask: CENTS_PER_TASK }, saved: 'while over' } },
    });
    expect(saveOnly.status).toBe(200);
    expect((await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key })).body.status).toBe(
      'stopped',
    );

    // A raised limit lets it work again. The config saved while stopped makes the start boot the
    // next generation (the one the save named, with that config); spend is counted per generation,
    // so the new task's cost adds to the 30 instead of hiding under it.
    const raised = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/budget`, {
      token: t.key,
      body: { limitCents: 100 },
    });
    expect(raised.body).toEqual({ limitCents: 100, spentCents: 30 });
    expect(
      (await t.stack.api.callRetrying503('POST', `/v1/workspaces/${id}/start`, { token: t.key })).status,
    ).toBe(202);
    await waitForStatus(
      t.stack,
      t.key,
      id,
      (x) => x.status === 'online' && x.generation === w.generation + 1,
    );
    expect((await a2a()).status).toBe(200);
    await spent(45);

    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });
});
