/**
 * The sweeps' Temporal Schedules, created or brought up to date when a worker starts (idempotent:
 * every worker of a deployment does it; the last one wins with the same definition).
 */
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { orphanSweepWorkflow } from '../workflows/sweeps.js';

export interface SweepSettings {
  taskQueue: string;
  /** Prepended to every schedule id (one Temporal namespace shared by several deployments, tests). */
  schedulePrefix: string;
  orphanIntervalMs: number;
  orphanGraceMs: number;
}

/** The sweeps that exist (health and budget are not built yet). */
export const SWEEP_NAMES = ['orphans'] as const;
export type SweepName = (typeof SWEEP_NAMES)[number];

export const sweepScheduleId = (prefix: string, name: SweepName): string => `${prefix}sweep:${name}`;

/** A run gets at most this long (and at least a minute) before Temporal times it out. */
export const sweepRunTimeoutMs = (intervalMs: number): number => Math.max(60_000, 2 * intervalMs);

export async function ensureSweepSchedules(client: Client, s: SweepSettings): Promise<void> {
  const scheduleId = sweepScheduleId(s.schedulePrefix, 'orphans');
  const definition = {
    spec: { intervals: [{ every: s.orphanIntervalMs }] },
    action: {
      type: 'startWorkflow' as const,
      workflowType: 'orphanSweepWorkflow',
      workflowId: scheduleId,
      taskQueue: s.taskQueue,
      args: [{ graceMs: s.orphanGraceMs }] as Parameters<typeof orphanSweepWorkflow>,
      workflowRunTimeout: sweepRunTimeoutMs(s.orphanIntervalMs),
    },
    // A slow sweep is never joined by a second one; a missed tick is not made up later.
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: Math.max(10_000, s.orphanIntervalMs) },
  };
  try {
    await client.schedule.create({ scheduleId, ...definition });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, ...definition }));
  }
}
