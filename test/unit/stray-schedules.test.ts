/**
 * The orphan sweep's stray-mirror step looks at every mirror Temporal lists, not only the first
 * page: a stray listed after 500 live mirrors (Temporal lists them in the same order every time)
 * was never seen. At most one page of strays goes per sweep.
 */
import type { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createScheduleActivities, RECONCILE_MAX } from '../../src/activities/schedules.js';
import type { Transactable } from '../../src/db/queryable.js';
import { workspaceScheduleId } from '../../src/schedules/mirror.js';

const hex = (n: number, prefix: string) => `${prefix}${n.toString(16).padStart(16 - prefix.length, '0')}`;

/** `live` mirrors of live workspaces with their rows, then `stray` mirrors of a deleted workspace. */
function fixture(live: number, stray: number) {
  const deleted = hex(1, 'dd');
  const mirrors = [
    ...Array.from({ length: live }, (_, i) => ({ workspaceId: hex(i, 'aa'), scheduleId: hex(i, 'bb') })),
    ...Array.from({ length: stray }, (_, i) => ({ workspaceId: deleted, scheduleId: hex(i, 'cc') })),
  ];
  const removed: string[] = [];
  const temporal = {
    schedule: {
      async *list() {
        for (const m of mirrors) yield { scheduleId: workspaceScheduleId(m.workspaceId, m.scheduleId) };
      },
      getHandle: (id: string) => ({
        delete: async () => {
          removed.push(id);
        },
      }),
    },
  } as unknown as Client;
  const db = {
    async query(sql: string, params: unknown[]) {
      const ids = params[0] as string[];
      if (sql.includes('FROM workspaces'))
        return { rows: ids.map((id) => ({ id, status: id === deleted ? 'deleted' : 'online' })) };
      // Every live mirror has its row; the deleted workspace's rows are gone.
      return {
        rows: mirrors
          .filter((m) => m.workspaceId !== deleted && ids.includes(m.workspaceId))
          .map((m) => ({
            workspace_id: m.workspaceId,
            id: m.scheduleId,
          })),
      };
    },
  } as unknown as Transactable;
  const acts = createScheduleActivities({ db, backends: {} as never, secrets: {} as never, temporal });
  return { acts, removed, deleted };
}

type Acts = ReturnType<typeof createScheduleActivities>;
const sweep = (acts: Acts): ReturnType<Acts['removeStraySchedules']> =>
  new MockActivityEnvironment().run(acts.removeStraySchedules) as ReturnType<Acts['removeStraySchedules']>;

describe('removeStraySchedules', () => {
  it('finds strays listed after the first page of live mirrors', async () => {
    const { acts, removed, deleted } = fixture(RECONCILE_MAX + 20, 5);
    const out = await sweep(acts);
    expect(out.map((s) => s.workspaceId)).toEqual(Array(5).fill(deleted));
    expect(removed).toHaveLength(5);
    expect(removed.every((id) => id.startsWith(`workspace:${deleted}:`))).toBe(true);
  });

  it('removes at most one page of strays a sweep; the next sweep takes the rest', async () => {
    const { acts, removed } = fixture(3, RECONCILE_MAX + 7);
    const out = await sweep(acts);
    expect(out).toHaveLength(RECONCILE_MAX);
    expect(removed).toHaveLength(RECONCILE_MAX);
  });
});
