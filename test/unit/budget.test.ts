/**
 * Budgets' pure parts: the over-budget rule, the spend total (per generation, never lowered by a
 * replay), the memories page cursor, the reference agent's spend, and the budget sweep's activity
 * with fakes (one query per run, a stop Update per over-budget entity under policy `stop` only).
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createSweepActivities, HEALTH_RESULT_LIST_MAX } from '../../src/activities/sweeps.js';
import { agentHooks } from '../../src/agent/bundle.js';
import { loadSpent, spendSaver } from '../../src/agent/spend.js';
import { AgentStats } from '../../src/agent/stats.js';
import { decodeMemoryCursor, encodeMemoryCursor } from '../../src/api/memory-cursor.js';
import { HttpError } from '../../src/api/errors.js';
import type { WorkspaceBackend } from '../../src/backends/backend.js';
import { UnconfiguredBackend } from '../../src/backends/unconfigured.js';
import type { Queryable } from '../../src/db/queryable.js';
import { isOverBudget, totalSpent } from '../../src/domain/budget.js';
import { tempDir } from '../support/temp-dirs.js';

describe('isOverBudget', () => {
  it('is over once spent reaches the limit; no limit is never over', () => {
    expect(isOverBudget({ limitCents: 100, spentCents: 99 })).toBe(false);
    expect(isOverBudget({ limitCents: 100, spentCents: 100 })).toBe(true);
    expect(isOverBudget({ limitCents: 100, spentCents: 250 })).toBe(true);
    expect(isOverBudget({ limitCents: 0, spentCents: 0 })).toBe(true);
    expect(isOverBudget({ limitCents: null, spentCents: 1_000_000 })).toBe(false);
  });
});

describe('totalSpent', () => {
  it('sums the highest report of each generation', () => {
    expect(
      totalSpent([
        { generation: 1, spentCents: 30 },
        { generation: 1, spentCents: 50 },
        { generation: 2, spentCents: 7 },
      ]),
    ).toBe(57);
    expect(totalSpent([])).toBe(0);
  });

  it('no replayed, reordered or repeated report lowers the total', () => {
    const report = fc.record({ generation: fc.integer({ min: 1, max: 4 }), spentCents: fc.nat(10_000) });
    fc.assert(
      fc.property(
        fc.array(report, { maxLength: 30 }),
        fc.array(report, { maxLength: 10 }),
        (seen, replayed) => {
          const before = totalSpent(seen);
          // Replays of earlier reports, in any order, and anything after them: never lower.
          expect(totalSpent([...seen, ...seen.slice().reverse()])).toBe(before);
          expect(totalSpent([...seen, ...replayed])).toBeGreaterThanOrEqual(before);
        },
      ),
    );
  });
});

describe('memory cursor', () => {
  it('round-trips a position', () => {
    const p = { createdAt: '2026-11-29T07:01:02.123456Z', id: '0123456789abcdef' };
    expect(decodeMemoryCursor(encodeMemoryCursor(p))).toEqual(p);
  });

  it('refuses a tampered cursor with a 400 naming the field', () => {
    const bad = [
      'garbage',
      Buffer.from('mem:yesterday|0123456789abcdef').toString('base64url'),
      Buffer.from("mem:2026-11-29T07:01:02Z|x' OR 1=1").toString('base64url'),
      Buffer.from('ws:0123456789abcdef').toString('base64url'),
    ];
    for (const c of bad) {
      let err: unknown;
      try {
        decodeMemoryCursor(c);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(HttpError);
      expect((err as HttpError).status).toBe(400);
      expect((err as HttpError).extra.field).toBe('cursor');
    }
  });
});

describe('the reference agent spend', () => {
  it('charges config.agent.centsPerTask per task and only grows, capped at int4', () => {
    expect(agentHooks({}).centsPerTask).toBe(0);
    expect(agentHooks({ agent: { centsPerTask: 25 } }).centsPerTask).toBe(25);
    expect(agentHooks({ agent: { centsPerTask: -3 } }).centsPerTask).toBe(0);
    const stats = new AgentStats();
    stats.charge(25);
    stats.charge(25);
    expect(stats.spentCents).toBe(50);
    stats.charge(2_147_483_647);
    expect(stats.spentCents).toBe(2_147_483_647);
  });
});

describe('the agent spend ledger (state dir)', () => {
  it('a reboot of the same generation resumes the count; another generation starts at 0', async () => {
    const dir = path.join(tempDir('wo-spend-'), 'state');
    expect(await loadSpent(dir, 3)).toBe(0);
    const saved: number[] = [];
    const save = spendSaver(dir, 3);
    const stats = new AgentStats(0, (total) => {
      saved.push(total);
      void save(total);
    });
    stats.charge(15);
    stats.charge(0);
    stats.charge(15);
    await save(stats.spentCents);
    expect(saved).toEqual([15, 30]);
    expect(await loadSpent(dir, 3)).toBe(30);
    expect(await loadSpent(dir, 4)).toBe(0);
    writeFileSync(path.join(dir, 'spend.json'), '{not json');
    expect(await loadSpent(dir, 3)).toBe(0);
  });
});

/** A DB that answers the budget query with `rows` and records what it was sent. */
function fakeDb(rows: unknown[]) {
  const calls: Array<{ sql: string; params: unknown[] }> = [];
  const db = {
    query: async (sql: string, params: unknown[] = []) => {
      calls.push({ sql, params });
      return { rows, rowCount: rows.length };
    },
  };
  return { calls, db: db as unknown as Queryable };
}

/** Entities whose platformStop Updates are recorded; `gone` ones are not found, `deleting` refuse, `broken` fail. */
function fakeTemporal(opts: { gone?: Set<string>; deleting?: Set<string>; broken?: Set<string> } = {}) {
  const stopped: string[] = [];
  const client = {
    workflow: {
      getHandle: (workflowId: string) => ({
        executeUpdate: async (def: { name: string }, update: { args: unknown[] }) => {
          const id = workflowId.replace(/^workspace:/, '');
          if (opts.gone?.has(id)) throw new WorkflowNotFoundError('gone', workflowId, undefined);
          if (opts.deleting?.has(id)) throw new WorkflowUpdateFailedError('deleting', undefined);
          if (opts.broken?.has(id)) throw new Error('temporal says no');
          // The platform's stop, with its cause (the figures of this workspace).
          expect(def.name).toBe('platformStop');
          expect(update.args).toEqual([
            { phase: 'over-budget', message: 'stopped by the budget sweep: spent 150 of its 100 cents' },
          ]);
          stopped.push(id);
          return { accepted: true, status: 'stopping' };
        },
      }),
    },
  };
  return { stopped, client: client as unknown as Client };
}

const id = (i: number) => `ws-${String(i).padStart(5, '0')}`;
const over = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    id: id(i),
    backend: 'docker',
    status: 'online',
    limit_cents: 100,
    spent_cents: '150',
  }));
const backends = (): Record<'docker' | 'ec2', WorkspaceBackend> => ({
  docker: { ...new UnconfiguredBackend('docker') },
  ec2: new UnconfiguredBackend('ec2'),
});

describe('sweepBudget', () => {
  it('policy stop: one query over the enabled backends, a stop Update to each over-budget entity', async () => {
    const { db, calls } = fakeDb(over(150));
    const temporal = fakeTemporal({
      gone: new Set([id(3)]),
      deleting: new Set([id(4)]),
      broken: new Set([id(5)]),
    });
    const activities = createSweepActivities({ db, backends: backends(), temporal: temporal.client });

    const out = await activities.sweepBudget({ policy: 'stop' });

    expect(calls).toHaveLength(1);
    expect(calls[0]!.params[0]).toEqual(['docker']);
    expect(temporal.stopped).toHaveLength(147);
    expect(out.counts).toEqual({ overBudget: 150, stopped: 147, failed: 1 });
    expect(out.stopped).toHaveLength(HEALTH_RESULT_LIST_MAX);
    expect(out.stopped).not.toContain(id(3));
    expect(out.failed).toEqual([{ workspaceId: id(5), error: 'temporal says no' }]);
    expect(out.overBudget[0]).toEqual({
      workspaceId: id(0),
      backend: 'docker',
      limitCents: 100,
      spentCents: 150,
    });
    expect(out.truncated).toBe(true);
  });

  it('policies notify and none only report: no entity is asked to stop', async () => {
    for (const policy of ['notify', 'none'] as const) {
      const temporal = fakeTemporal();
      const activities = createSweepActivities({
        db: fakeDb(over(2)).db,
        backends: backends(),
        temporal: temporal.client,
      });
      const out = await activities.sweepBudget({ policy });
      expect(temporal.stopped).toEqual([]);
      expect(out.counts).toEqual({ overBudget: 2, stopped: 0, failed: 0 });
      expect(out.overBudget.map((w) => w.workspaceId)).toEqual([id(0), id(1)]);
    }
  });
});
