/**
 * The sweeps' Temporal Schedules, created or brought up to date when a worker starts (idempotent:
 * every worker of a deployment does it; the last one wins with the same definition).
 */
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { BudgetPolicy } from '../domain/budget.js';
import type { budgetSweepWorkflow, healthSweepWorkflow, orphanSweepWorkflow } from '../workflows/sweeps.js';
import { sweepMetadata } from '../domain/workflow-metadata.js';

export interface SweepSettings {
  taskQueue: string;
  /** Prepended to every schedule id (one Temporal namespace shared by several deployments, tests). */
  schedulePrefix: string;
  orphanIntervalMs: number;
  orphanGraceMs: number;
  healthIntervalMs: number;
  /** A heartbeat older than this is stale (HEARTBEAT_STALE_MS, default 3 heartbeat intervals). */
  heartbeatStaleMs: number;
  budgetIntervalMs: number;
  budgetPolicy: BudgetPolicy;
}

/** The sweeps that exist. */
export const SWEEP_NAMES = ['health', 'orphans', 'budget'] as const;
export type SweepName = (typeof SWEEP_NAMES)[number];

export const sweepScheduleId = (prefix: string, name: SweepName): string => `${prefix}sweep:${name}`;

/** A run gets at most this long (and at least a minute) before Temporal times it out. */
export const sweepRunTimeoutMs = (intervalMs: number): number => Math.max(60_000, 2 * intervalMs);

/** The Schedule definition of each sweep: its interval, workflow and arguments. */
export function sweepDefinition(s: SweepSettings, name: SweepName) {
  const scheduleId = sweepScheduleId(s.schedulePrefix, name);
  const intervalMs = { health: s.healthIntervalMs, orphans: s.orphanIntervalMs, budget: s.budgetIntervalMs }[
    name
  ];
  const workflow =
    name === 'health'
      ? {
          workflowType: 'healthSweepWorkflow',
          args: [{ staleMs: s.heartbeatStaleMs }] as Parameters<typeof healthSweepWorkflow>,
        }
      : name === 'orphans'
        ? {
            workflowType: 'orphanSweepWorkflow',
            args: [{ graceMs: s.orphanGraceMs }] as Parameters<typeof orphanSweepWorkflow>,
          }
        : {
            workflowType: 'budgetSweepWorkflow',
            args: [{ policy: s.budgetPolicy }] as Parameters<typeof budgetSweepWorkflow>,
          };
  return {
    scheduleId,
    spec: { intervals: [{ every: intervalMs }] },
    action: {
      type: 'startWorkflow' as const,
      ...workflow,
      workflowId: scheduleId,
      taskQueue: s.taskQueue,
      workflowRunTimeout: sweepRunTimeoutMs(intervalMs),
      ...sweepMetadata(name, workflow.args[0], intervalMs),
    },
    // A slow sweep is never joined by a second one; a missed tick is not made up later.
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: Math.max(10_000, intervalMs) },
  };
}

export async function ensureSweepSchedules(client: Client, s: SweepSettings): Promise<void> {
  for (const name of SWEEP_NAMES) {
    const { scheduleId, ...definition } = sweepDefinition(s, name);
    try {
      await client.schedule.create({ scheduleId, ...definition });
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, ...definition }));
    }
  }
}
