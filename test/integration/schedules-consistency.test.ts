/**
 * Schedules under concurrent writes, on the real database and Temporal: a burst of creates stays
 * within the per-workspace quota.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { SCHEDULES_PER_WORKSPACE } from '../../src/app/schedules.js';
import { insertSchedule, listSchedules } from '../../src/db/schedules.js';
import { ScheduleMirror } from '../../src/schedules/mirror.js';
import { newId } from '../../src/security/tokens.js';
import { insertWorkspaceRow, useStack } from '../support/stack.js';

describe('schedules under concurrent writes', () => {
  const t = useStack({ worker: false });
  const workspaces: string[] = [];

  async function workspace(): Promise<{ id: string; base: string }> {
    const id = await insertWorkspaceRow(t.stack.service.db.pool, t.orgId);
    workspaces.push(id);
    return { id, base: `/v1/workspaces/${id}/schedules` };
  }

  afterAll(async () => {
    // No worker and no entity here: the Temporal Schedules made are removed by hand.
    const mirror = new ScheduleMirror(t.stack.service.temporal, t.stack.config.TASK_QUEUE);
    for (const id of workspaces) {
      for (const s of await listSchedules(t.stack.service.db.pool, id)) await mirror.remove(id, s.id);
    }
  });

  it(`a burst of creates stays within ${SCHEDULES_PER_WORKSPACE} schedules per workspace`, async () => {
    const pool = t.stack.service.db.pool;
    const direct = await workspace();
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, () =>
        insertSchedule(
          pool,
          {
            id: newId(),
            workspaceId: direct.id,
            cron: '@daily',
            timezone: 'UTC',
            prompt: 'p',
            enabled: false,
          },
          SCHEDULES_PER_WORKSPACE,
        ),
      ),
    );
    expect(outcomes.filter((o) => 'row' in o)).toHaveLength(SCHEDULES_PER_WORKSPACE);
    expect(await listSchedules(pool, direct.id)).toHaveLength(SCHEDULES_PER_WORKSPACE);

    const { id, base } = await workspace();
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        t.stack.api.call('POST', base, {
          token: t.key,
          body: { cron: '@daily', prompt: `p${i}`, enabled: false },
        }),
      ),
    );
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(SCHEDULES_PER_WORKSPACE);
    expect(statuses.filter((s) => s === 403)).toHaveLength(40 - SCHEDULES_PER_WORKSPACE);
    for (const a of answers.filter((x) => x.status === 403)) expect(a.body.error.code).toBe('quota_exceeded');
    expect(await listSchedules(pool, id)).toHaveLength(SCHEDULES_PER_WORKSPACE);
  });
});
