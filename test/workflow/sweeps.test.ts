/**
 * The sweep workflows' own logic on a time-skipping Temporal server with fake activities: one
 * failing removal does not stop the others, the orphan sweep's best-effort steps (lost creates,
 * plugin requests, org cascades) fail nothing, and the org cascade asks again a workspace whose
 * entity was not there yet, then runs its final sweep, retried until it succeeds.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activities } from '../../src/activities/index.js';
import type { OrphanNetwork, OrphanRemoval } from '../../src/domain/orphans.js';
import type { SweepRun } from '../../src/db/sweeps.js';
import type {
  OrgDeleteResult,
  budgetSweepWorkflow,
  healthSweepWorkflow,
  orgDeleteWorkflow,
  orphanSweepWorkflow,
} from '../../src/workflows/sweeps.js';
import { workflowBundle } from '../support/workflow-bundle.js';
import { createEnv } from './harness.js';
import { told } from './user-metadata.js';

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await createEnv();
});
afterAll(async () => {
  await env?.teardown();
});

const removal = (workspaceId: string, generation: number | null): OrphanRemoval => ({
  backend: 'docker',
  workspaceId,
  orgId: 'o',
  generation,
  instanceIds: [`c-${workspaceId}`],
  reason: generation === null ? 'unknown' : 'superseded',
});

async function run<T>(activities: Partial<Activities>, body: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `sweeps-${Math.random().toString(36).slice(2)}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities,
  });
  return worker.runUntil(body(taskQueue));
}

/** One orphan sweep on the task queue, as its Schedule starts one (grace 1 s). */
const sweepOn = (taskQueue: string) =>
  env.client.workflow.execute<typeof orphanSweepWorkflow>('orphanSweepWorkflow', {
    taskQueue,
    workflowId: `sweep-${taskQueue}`,
    args: [{ graceMs: 1000 }],
  });

describe('orphanSweepWorkflow', () => {
  it('removes every orphan it can and reports the one that failed', async () => {
    const removed: string[] = [];
    const runs: SweepRun[] = [];
    let queue = '';
    const result = await run(
      {
        recordSweepRun: async (r: SweepRun) => {
          runs.push(r);
        },
        findOrphans: async () => ({
          removals: [removal('a', null), removal('b', 2), removal('c', null)],
          counts: { listed: 5, live: 1, young: 1, foreign: 0 },
          listErrors: [{ backend: 'ec2', error: 'throttled' }],
        }),
        removeOrphan: async (r: OrphanRemoval) => {
          if (r.workspaceId === 'b') throw new Error('daemon says no');
          removed.push(r.workspaceId);
        },
        removeStraySchedules: async () => [{ workspaceId: 'd', scheduleId: 's' }],
        resumeLostCreates: async () => ({ resumed: [{ workspaceId: 'f', orgId: 'o' }], failed: [] }),
        resumeLostPluginRequests: async () => ({
          resumed: [{ workspaceId: 'e', name: 'p', action: 'install' as const, requestId: 'r' }],
          failed: [],
        }),
        // Org o2's cascade never started (its API was killed after the commit); o3's start failed.
        resumeOrgDeletes: async () => ({
          resumed: [{ orgId: 'o2', workspaces: 2 }],
          failed: [{ orgId: 'o3', workspaces: 1, error: 'temporal busy' }],
        }),
        pruneOldActivity: async () => ({ before: '2026-09-01T00:00:00.000Z', removed: 100_000, more: true }),
        pruneOldHistory: async () => ({
          before: '2026-09-01T00:00:00.000Z',
          removed: { consoleLogs: 3, bootEvents: 40, transitions: 12 },
          more: false,
        }),
      },
      (taskQueue) => {
        queue = taskQueue;
        return sweepOn(taskQueue);
      },
    );
    expect(removed.sort()).toEqual(['a', 'c']);
    expect(result.removed.map((r) => r.workspaceId)).toEqual(['a', 'c']);
    expect(result.failed.map((r) => [r.workspaceId, r.error])).toEqual([['b', 'daemon says no']]);
    expect(result.counts).toEqual({
      listed: 5,
      live: 1,
      young: 1,
      foreign: 0,
      orphans: 3,
      removed: 2,
      failed: 1,
    });
    expect(result.listErrors).toEqual([{ backend: 'ec2', error: 'throttled' }]);
    expect(result.schedulesRemoved).toEqual([{ workspaceId: 'd', scheduleId: 's' }]);
    expect(result.lostCreates).toEqual({ resumed: [{ workspaceId: 'f', orgId: 'o' }], failed: [] });
    expect(result.pluginRequests).toEqual({
      resumed: [{ workspaceId: 'e', name: 'p', action: 'install', requestId: 'r' }],
      failed: [],
    });
    expect(result.orgDeletes).toEqual({
      resumed: [{ orgId: 'o2', workspaces: 2 }],
      failed: [{ orgId: 'o3', workspaces: 1, error: 'temporal busy' }],
    });
    expect(result.activity).toEqual({ before: '2026-09-01T00:00:00.000Z', removed: 100_000, more: true });
    expect(result.history).toEqual({
      before: '2026-09-01T00:00:00.000Z',
      removed: { consoleLogs: 3, bootEvents: 40, transitions: 12 },
      more: false,
    });
    expect(runs).toEqual([
      {
        sweep: 'orphans',
        outcome: 'partial',
        durationMs: expect.any(Number),
        actions: { removed: 2, terminated: 0, resumed: 3 },
      },
    ]);
    // The Temporal UI's story: each step says what it did to which resource.
    const story = await told(env.client.workflow.getHandle(`sweep-${queue}`));
    expect(story.activities.map((a) => a.summary)).toEqual([
      'find orphans (older than 1 s) on every backend',
      ...['a', 'b', 'c'].map((w) =>
        expect.stringMatching(new RegExp(`^remove orphan ws-${w}(-g2)? \\(docker; (unknown|superseded)\\)$`)),
      ),
      'remove schedule mirrors of workspaces that are gone',
      'start the entities of creates whose own start never landed',
      'start the runs of plugin requests left in flight with none',
      'start the cascades of deleted orgs whose own start never landed',
      'delete activity rows past the retention (ACTIVITY_RETENTION_DAYS)',
      'delete workspace history past the retention (HISTORY_RETENTION_DAYS)',
      'count this orphans sweep run (partial)',
    ]);
  });

  it('removes the org networks no workspace needs after the removals, and reports a failed one', async () => {
    const order: string[] = [];
    const runs: SweepRun[] = [];
    let queue = '';
    const net = (orgId: string): OrphanNetwork => ({ backend: 'docker', orgId, name: `wo-org-${orgId}` });
    const result = await run(
      {
        recordSweepRun: async (r: SweepRun) => {
          runs.push(r);
        },
        findOrphans: async () => ({
          removals: [removal('a', null)],
          counts: { listed: 1, live: 0, young: 0, foreign: 0 },
          listErrors: [],
          networks: {
            removals: [net('o1'), net('o2'), net('o3')],
            counts: { listed: 4, live: 1, young: 0, foreign: 0 },
          },
        }),
        removeOrphan: async (r: OrphanRemoval) => {
          order.push(`ws ${r.workspaceId}`);
        },
        removeOrphanNetwork: async (n: OrphanNetwork) => {
          order.push(`net ${n.orgId}`);
          // o2: a container of the org came meanwhile (kept); o3: the daemon fails.
          if (n.orgId === 'o3') throw new Error('daemon busy');
          return n.orgId === 'o1';
        },
        removeStraySchedules: async () => [],
        resumeLostCreates: async () => ({ resumed: [], failed: [] }),
        resumeLostPluginRequests: async () => ({ resumed: [], failed: [] }),
        // Retention off on this worker: no activity or history entry in the result.
        pruneOldActivity: async () => null,
        pruneOldHistory: async () => null,
      },
      (taskQueue) => {
        queue = taskQueue;
        return sweepOn(taskQueue);
      },
    );
    expect(result.activity).toBeUndefined();
    expect(result.history).toBeUndefined();
    expect(order[0]).toBe('ws a');
    // o3 is tried as often as the activity's retry policy allows, then reported.
    expect([...new Set(order.slice(1))].sort()).toEqual(['net o1', 'net o2', 'net o3']);
    expect(result.networks).toEqual({
      counts: { listed: 4, live: 1, young: 0, foreign: 0 },
      removed: [net('o1')],
      failed: [{ ...net('o3'), error: 'daemon busy' }],
    });
    expect(runs).toEqual([
      expect.objectContaining({ outcome: 'partial', actions: { removed: 2, terminated: 0 } }),
    ]);
    const story = await told(env.client.workflow.getHandle(`sweep-${queue}`));
    expect(story.activities.map((a) => a.summary)).toContain(
      'remove network wo-org-o1 (docker): no workspace of org o1 left',
    );
  });

  it('reports every orphan found when the run removes only one page of them', async () => {
    const result = await run(
      {
        recordSweepRun: async () => undefined,
        findOrphans: async () => ({
          removals: [removal('a', null)],
          orphans: 5000,
          counts: { listed: 5000, live: 0, young: 0, foreign: 0 },
          listErrors: [],
        }),
        removeOrphan: async () => undefined,
        removeStraySchedules: async () => {
          throw new Error('temporal list failed');
        },
        resumeLostCreates: async () => {
          throw new Error('temporal away');
        },
        resumeLostPluginRequests: async () => {
          throw new Error('database away');
        },
        resumeOrgDeletes: async () => {
          throw new Error('database away');
        },
        pruneOldActivity: async () => {
          throw new Error('database away');
        },
        pruneOldHistory: async () => {
          throw new Error('database away');
        },
      },
      sweepOn,
    );
    expect(result.counts).toEqual(expect.objectContaining({ orphans: 5000, removed: 1, failed: 0 }));
    // A failed schedule listing, lost-create, plugin request or org cascade look does not fail the sweep.
    expect(result.schedulesRemoved).toEqual([]);
    expect(result.lostCreates).toEqual({ resumed: [], failed: [] });
    expect(result.pluginRequests).toEqual({ resumed: [], failed: [] });
    expect(result.orgDeletes).toEqual({ resumed: [], failed: [] });
    expect(result.activity).toBeUndefined();
    expect(result.history).toBeUndefined();
  });
});

describe('healthSweepWorkflow', () => {
  it('runs the sweep as one activity, returns its outcome and counts the run', async () => {
    const runs: SweepRun[] = [];
    const result = await run(
      {
        sweepHealth: async ({ staleMs }: { staleMs: number }) => {
          expect(staleMs).toBe(3000);
          return {
            counts: { checked: 6, online: 2, degraded: 1, offline: 3, unchanged: 2, signalled: 2, failed: 1 },
            signalled: [
              {
                workspaceId: 'a',
                backend: 'docker' as const,
                from: 'online' as const,
                to: 'offline' as const,
                reason: 'r',
              },
              {
                workspaceId: 'b',
                backend: 'docker' as const,
                from: 'online' as const,
                to: 'degraded' as const,
                reason: 'r',
              },
            ],
            failed: [{ workspaceId: 'c', error: 'temporal says no' }],
            truncated: false,
            listErrors: [{ backend: 'ec2' as const, error: 'throttled' }],
          };
        },
        recordSweepRun: async (r: SweepRun) => {
          runs.push(r);
        },
      },
      (taskQueue) =>
        env.client.workflow.execute<typeof healthSweepWorkflow>('healthSweepWorkflow', {
          taskQueue,
          workflowId: `health-${taskQueue}`,
          args: [{ staleMs: 3000 }],
        }),
    );
    expect(result.signalled.map((r) => [r.workspaceId, r.to])).toEqual([
      ['a', 'offline'],
      ['b', 'degraded'],
    ]);
    expect(result.failed).toEqual([{ workspaceId: 'c', error: 'temporal says no' }]);
    expect(result.counts.signalled).toBe(2);
    expect(result.staleMs).toBe(3000);
    expect(runs).toEqual([
      { sweep: 'health', outcome: 'partial', durationMs: expect.any(Number), actions: { signalled: 2 } },
    ]);
  });

  it('a run that fails is counted failed', async () => {
    const runs: SweepRun[] = [];
    const failure = run(
      {
        sweepHealth: async () => {
          throw ApplicationFailure.nonRetryable('database down');
        },
        recordSweepRun: async (r: SweepRun) => {
          runs.push(r);
        },
      },
      (taskQueue) =>
        env.client.workflow.execute<typeof healthSweepWorkflow>('healthSweepWorkflow', {
          taskQueue,
          workflowId: `health-${taskQueue}`,
          args: [{ staleMs: 3000 }],
        }),
    );
    await expect(failure).rejects.toThrow(WorkflowFailedError);
    expect(runs.map((r) => [r.sweep, r.outcome])).toEqual([['health', 'failed']]);
  });
});

describe('budgetSweepWorkflow', () => {
  it('runs the sweep as one activity with its policy, returns the ids and counts the stops', async () => {
    const runs: SweepRun[] = [];
    const result = await run(
      {
        sweepBudget: async ({ policy }: { policy: string }) => {
          expect(policy).toBe('stop');
          return {
            counts: { overBudget: 2, stopped: 2, failed: 0 },
            overBudget: [
              { workspaceId: 'a', backend: 'docker' as const, limitCents: 10, spentCents: 12 },
              { workspaceId: 'b', backend: 'ec2' as const, limitCents: 0, spentCents: 0 },
            ],
            stopped: ['a', 'b'],
            failed: [],
            truncated: false,
          };
        },
        recordSweepRun: async (r: SweepRun) => {
          runs.push(r);
        },
      },
      (taskQueue) =>
        env.client.workflow.execute<typeof budgetSweepWorkflow>('budgetSweepWorkflow', {
          taskQueue,
          workflowId: `budget-${taskQueue}`,
          args: [{ policy: 'stop' }],
        }),
    );
    expect(result.policy).toBe('stop');
    expect(result.stopped).toEqual(['a', 'b']);
    expect(result.overBudget.map((w) => w.workspaceId)).toEqual(['a', 'b']);
    expect(runs).toEqual([
      { sweep: 'budget', outcome: 'ok', durationMs: expect.any(Number), actions: { stopped: 2 } },
    ]);
  });
});

describe('orgDeleteWorkflow', () => {
  it('asks every workspace it finds (one that appears later too), waits for all, then sweeps by org', async () => {
    const asks: string[] = [];
    let listings = 0;
    let queue = '';
    const result = await run(
      {
        // w1 is deleted after the first look; w2 appears (a create that raced the delete, its
        // entity started by the cascade itself) and is deleted after its ask.
        orgWorkspaces: async () => {
          listings++;
          if (listings === 1) return ['w1'];
          if (listings === 2) return ['w1', 'w2'];
          return listings === 3 ? ['w2'] : [];
        },
        requestWorkspaceDelete: async ({ workspaceId }: { workspaceId: string }) => {
          asks.push(workspaceId);
          return workspaceId === 'w2' ? 'started' : 'accepted';
        },
        removeOrgResources: async () => ({ docker: ['leaked'] }),
      },
      (taskQueue) => {
        queue = taskQueue;
        return env.client.workflow.execute<typeof orgDeleteWorkflow>('orgDeleteWorkflow', {
          taskQueue,
          workflowId: `org-${taskQueue}`,
          args: [{ orgId: 'o', waitMs: 600_000, pollMs: 1000 }],
        });
      },
    );
    expect(asks).toEqual(['w1', 'w2']);
    const story = await told(env.client.workflow.getHandle(`org-${queue}`));
    expect(story.activities.map((a) => a.summary)).toContain(
      'delete workspace w2 of org o through its entity',
    );
    expect(story.activities.map((a) => a.summary)).toContain(
      'remove every resource labelled with org o (all backends)',
    );
    expect(story.timers).toContain('wait for the deletes of org o (1 left)');
    expect(result).toEqual({
      orgId: 'o',
      workspaces: ['w1', 'w2'],
      stillDeleting: [],
      swept: { docker: ['leaked'] },
    });
  });

  it('sweeps when the wait runs out, waits on until every workspace is deleted, then sweeps again', async () => {
    // "stuck" stays until long after the deadline (a delete retrying against a failing backend);
    // "late" shows up only after the deadline. The last sweep must follow the last delete.
    const events: string[] = [];
    let listings = 0;
    const result: OrgDeleteResult = await run(
      {
        orgWorkspaces: async () => {
          listings++;
          const left = listings < 30 ? ['stuck'] : [];
          if (listings >= 20 && listings < 30) left.push('late');
          events.push(`list:${left.join(',')}`);
          return left;
        },
        requestWorkspaceDelete: async ({ workspaceId }: { workspaceId: string }) => {
          events.push(`ask:${workspaceId}`);
          return 'accepted' as const;
        },
        removeOrgResources: async (): Promise<Record<string, string[]>> => {
          events.push('sweep');
          return events.filter((e) => e === 'sweep').length === 1
            ? { docker: [], ec2: ['i-1'] }
            : { ec2: ['i-2'] };
        },
      },
      (taskQueue) =>
        env.client.workflow.execute<typeof orgDeleteWorkflow>('orgDeleteWorkflow', {
          taskQueue,
          workflowId: `org-${taskQueue}`,
          args: [{ orgId: 'o', waitMs: 60_000, pollMs: 5000 }],
        }),
    );
    expect(result.stillDeleting).toEqual(['stuck']);
    expect(result.workspaces).toEqual(['stuck', 'late']);
    expect(result.swept).toEqual({ docker: [], ec2: ['i-1', 'i-2'] });
    // One sweep at the deadline, and the last one only after a look found nothing left.
    expect(events.filter((e) => e === 'sweep')).toHaveLength(2);
    expect(events.slice(-2)).toEqual(['list:', 'sweep']);
    expect(events.filter((e) => e === 'ask:late')).toHaveLength(1);
  });
});

describe('orgDeleteWorkflow when its sweep by org fails', () => {
  /** Scripted cascade: `left(n)` is what the n-th look finds; the first `failing` sweep attempts throw. */
  const script = (left: (n: number) => string[], failing: number) => {
    const events: string[] = [];
    let listings = 0;
    let attempts = 0;
    const activities: Partial<Activities> = {
      orgWorkspaces: async () => {
        const ids = left(++listings);
        events.push(`list:${ids.join(',')}`);
        return ids;
      },
      requestWorkspaceDelete: async () => 'accepted' as const,
      removeOrgResources: async (): Promise<Record<string, string[]>> => {
        if (++attempts <= failing) {
          events.push('sweep failed');
          // An EC2 instance stuck shutting-down: every attempt of the activity gives up on it.
          throw new Error(`instance i-1 still shutting-down (attempt ${attempts})`);
        }
        events.push('sweep');
        return { ec2: ['i-1'] };
      },
    };
    return { events, activities };
  };

  it('goes on waiting when the sweep at the deadline fails, and retries the last one until it succeeds', async () => {
    // "stuck" stays deleting long past the deadline; the sweep fails its first 7 attempts: the
    // deadline's activity (3 attempts), the first last sweep (3), and one attempt of the next.
    const { events, activities } = script((n) => (n < 12 ? ['stuck'] : []), 7);
    const result: OrgDeleteResult = await run(activities, (taskQueue) =>
      env.client.workflow.execute<typeof orgDeleteWorkflow>('orgDeleteWorkflow', {
        taskQueue,
        workflowId: `org-${taskQueue}`,
        args: [{ orgId: 'o', waitMs: 10_000, pollMs: 2000 }],
      }),
    );
    expect(result.stillDeleting).toEqual(['stuck']);
    expect(result.swept).toEqual({ ec2: ['i-1'] });
    expect(result.sweepFailures).toEqual({
      count: 2,
      lastError: 'instance i-1 still shutting-down (attempt 6)',
    });
    // No sweep ran while the workspace was left but the one at the deadline; the last one came after
    // the look that found none left, and was tried again (after another look) until it succeeded.
    const firstEmpty = events.indexOf('list:');
    expect(events.slice(0, firstEmpty).filter((e) => e.startsWith('sweep'))).toEqual([
      'sweep failed',
      'sweep failed',
      'sweep failed',
    ]);
    expect(events.slice(firstEmpty)).toEqual([
      'list:',
      'sweep failed',
      'sweep failed',
      'sweep failed',
      'list:',
      'sweep failed',
      'sweep',
    ]);
  });

  it('retries the last sweep when every workspace was deleted in time, carrying its failures through continue-as-new', async () => {
    // w1 is deleted before the deadline; the sweep fails its first 12 attempts (4 activities).
    const { events, activities } = script((n) => (n < 2 ? ['w1'] : []), 12);
    const { handle, result } = await run(activities, async (taskQueue) => {
      const h = await env.client.workflow.start<typeof orgDeleteWorkflow>('orgDeleteWorkflow', {
        taskQueue,
        workflowId: `org-${taskQueue}`,
        // A small history limit: the retries continue as new on the way.
        args: [{ orgId: 'o', waitMs: 60_000, pollMs: 1000, continueAsNewAfterEvents: 30 }],
      });
      return { handle: h, result: await h.result() };
    });
    expect(result).toEqual({
      orgId: 'o',
      workspaces: ['w1'],
      stillDeleting: [],
      swept: { ec2: ['i-1'] },
      sweepFailures: { count: 4, lastError: 'instance i-1 still shutting-down (attempt 12)' },
    });
    expect(events.filter((e) => e === 'sweep')).toHaveLength(1);
    expect(events.slice(-2)).toEqual(['list:', 'sweep']);
    // It continued as new: the run that ended is not the first.
    expect((await handle.describe()).runId).not.toBe(handle.firstExecutionRunId);
    const first = await told(env.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId));
    expect(first.timers).toContainEqual(
      expect.stringMatching(/^the sweep by org o failed \(2 so far\): try again in \d+ s$/),
    );
  });
});
