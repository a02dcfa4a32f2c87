/**
 * Workspaces and schedules for suites that test schedules on a stack without a worker or entity:
 * bare workspace rows, schedules made through the stack's API, and the Temporal Schedules left
 * removed by hand after the block.
 */
import { afterAll, expect } from 'vitest';
import { listSchedules } from '../../src/db/schedules.js';
import { ScheduleMirror } from '../../src/schedules/mirror.js';
import { insertWorkspaceRow, type StackFixture } from './stack.js';

export function scheduleFixtures(t: StackFixture) {
  const workspaces: string[] = [];

  afterAll(async () => {
    // No worker and no entity here: the Temporal Schedules left are removed by hand.
    const mirror = new ScheduleMirror(t.stack.service.temporal, t.stack.config.TASK_QUEUE);
    for (const id of workspaces) {
      for (const s of await listSchedules(t.stack.service.db.pool, id)) await mirror.remove(id, s.id);
    }
  });

  return {
    /** A bare workspace row: its id and its schedules' path. */
    async workspace(): Promise<{ id: string; base: string }> {
      const id = await insertWorkspaceRow(t.stack.service.db.pool, t.orgId);
      workspaces.push(id);
      return { id, base: `/v1/workspaces/${id}/schedules` };
    },

    /** A schedule made through the stack's API, firing every five minutes: its id. */
    async created(base: string): Promise<string> {
      const made = await t.stack.api.call('POST', base, {
        token: t.key,
        body: { cron: '@every 5m', prompt: 'p' },
      });
      expect(made.status).toBe(201);
      return (made.body as { id: string }).id;
    },
  };
}
