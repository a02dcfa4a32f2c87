/**
 * A schedule DELETE racing another write of the same schedule, on the real database and Temporal,
 * the two requests served by two API servers (as two API processes: nothing shared but PostgreSQL
 * and Temporal). Each race is made deterministic by holding one side at a Temporal call until the
 * other side has answered or is seen waiting on a PostgreSQL lock (never a sleep). After both
 * answer, the schedule's row exists iff its Temporal Schedule does (with the row's settings): a
 * deleted schedule is not left firing.
 *
 * The interleaving the old code lost: the DELETE removes the Temporal Schedule; a PATCH (or a
 * list's repair, or a create) puts it back and reads the row, still there; then the DELETE deletes
 * the row. The Temporal Schedule outlived its row.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { ScheduleNotFoundError, type Client } from '@temporalio/client';
import { afterAll, describe, expect, it } from 'vitest';
import { createScheduleActivities } from '../../src/activities/schedules.js';
import { getSchedule, type ScheduleRow } from '../../src/db/schedules.js';
import {
  API_TEMPORAL_BUDGET_MS,
  ScheduleMirror,
  fingerprint,
  workspaceScheduleId,
} from '../../src/schedules/mirror.js';
import { SecretBox } from '../../src/security/secrets.js';
import { waitFor } from '../setup/wait-for.js';
import { scheduleFixtures } from '../support/schedules.js';
import { serveApiWith, useStack, type ApiResponse } from '../support/stack.js';

type Answer = ApiResponse<unknown>;

/** A request the test starts once the race is set up, and whether it has answered yet. */
class Later {
  answer?: Promise<Answer>;
  settled = false;
  /** Milliseconds from its start to its answer. */
  tookMs = 0;

  start(answer: Promise<Answer>): Promise<Answer> {
    this.answer = answer;
    const started = Date.now();
    const done = () => {
      this.settled = true;
      this.tookMs = Date.now() - started;
    };
    answer.then(done, done);
    return answer;
  }
}

function signal<T = void>(): { promise: Promise<T>; resolve(v: T): void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A ScheduleMirror whose next put / remove can be held at a hook (each hook fires once). */
class HookedMirror extends ScheduleMirror {
  beforePut?: (row: Parameters<ScheduleMirror['put']>[0]) => Promise<void>;
  afterRemove?: () => Promise<void>;

  override async put(row: Parameters<ScheduleMirror['put']>[0], deadline?: number): Promise<void> {
    const hook = this.beforePut;
    this.beforePut = undefined;
    await hook?.(row);
    return super.put(row, deadline);
  }

  override async remove(workspaceId: string, scheduleId: string, deadline?: number): Promise<void> {
    await super.remove(workspaceId, scheduleId, deadline);
    const hook = this.afterRemove;
    this.afterRemove = undefined;
    await hook?.();
  }
}

/**
 * The stack's client, but each schedule handle's `method` (`delete`, `update`) waits for `hold`:
 * after its call (`after`), or before it (`before`).
 */
function holdingHandles(
  client: Client,
  method: 'delete' | 'update',
  when: 'before' | 'after',
  hold: () => Promise<void>,
): Client {
  const schedule = new Proxy(client.schedule, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (prop !== 'getHandle') {
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      }
      return (id: string) => {
        const handle = target.getHandle(id);
        const real = (handle[method] as (...a: unknown[]) => Promise<unknown>).bind(handle);
        return Object.assign(Object.create(handle) as typeof handle, {
          [method]: async (...args: unknown[]) => {
            if (when === 'before') await hold();
            const done = await real(...args);
            if (when === 'after') await hold();
            return done;
          },
        });
      };
    },
  });
  return new Proxy(client, {
    get(target, prop) {
      if (prop === 'schedule') return schedule;
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe('a schedule DELETE racing another write of it', () => {
  const t = useStack({ worker: false });
  const { workspace, created } = scheduleFixtures(t);
  const closers: Array<() => Promise<void>> = [];

  afterAll(async () => {
    for (const close of closers) await close();
  });

  /** A second API server ("process") whose schedule writes go through `mirror`. */
  async function secondApi(mirror: ScheduleMirror) {
    const served = await serveApiWith(t.stack, t.stack.service.temporal as never, { schedules: mirror });
    closers.push(served.close);
    return served.api;
  }

  const hooked = () =>
    new HookedMirror(t.stack.service.temporal, t.stack.config.TASK_QUEUE, API_TEMPORAL_BUDGET_MS);

  /** Whether some session waits on a lock in a statement on schedules (a write held behind another). */
  async function waitingOnScheduleLock(): Promise<boolean> {
    const { rows } = await t.stack.service.db.pool.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE '%schedules%'`,
    );
    return (rows[0] as { n: number }).n > 0;
  }

  /** Holds until `other` (once started) has answered or waits on this side's row lock. */
  async function heldUntil(other: Later): Promise<void> {
    await waitFor(
      async () => other.settled || (other.answer !== undefined && (await waitingOnScheduleLock())),
      {
        timeoutMs: 15_000,
        intervalMs: 10,
        describe: 'the other request to answer or wait on the schedule row lock',
      },
    );
  }

  /** Holds until `other` has answered (whatever it waits on). */
  async function answered(other: Later): Promise<void> {
    await waitFor(() => other.settled, {
      timeoutMs: 15_000,
      intervalMs: 10,
      describe: 'the other request to answer',
    });
  }

  /**
   * DELETE through a second API server whose removal of the Temporal Schedule (by `deleting`) is
   * followed by `other`'s start (and `onRemoved`), and held until `other` has answered or waits on
   * the row lock.
   */
  async function deleteThen(
    base: string,
    sid: string,
    other: () => Promise<Answer>,
    opts: { deleting?: HookedMirror; onRemoved?: () => void } = {},
  ): Promise<[Answer, Answer]> {
    const deleting = opts.deleting ?? hooked();
    const deleter = await secondApi(deleting);
    const removed = signal();
    const later = new Later();
    deleting.afterRemove = async () => {
      removed.resolve();
      opts.onRemoved?.();
      await heldUntil(later);
    };
    const del = deleter.call('DELETE', `${base}/${sid}`, { token: t.key });
    await removed.promise;
    return Promise.all([del, later.start(other())]);
  }

  /**
   * A workspace delete's removal of its schedules (the activity), `other` started once the first
   * Temporal Schedule is removed, that removal held as `hold` says: its count and `other`'s answer.
   */
  async function workspaceDeleteThen(
    workspaceId: string,
    other: () => Promise<Answer>,
    hold: (other: Later) => Promise<void>,
  ): Promise<[number, Answer, Later]> {
    const removed = signal();
    const later = new Later();
    const acts = createScheduleActivities({
      db: t.stack.service.db.pool,
      backends: t.stack.service.backends,
      secrets: new SecretBox(t.stack.config.SECRETS_KEY),
      temporal: holdingHandles(t.stack.service.temporal, 'delete', 'after', async () => {
        removed.resolve();
        await hold(later);
      }),
    });
    // The request loaded its workspace before the delete began (the row is left live for that).
    const removal: Promise<number> = new MockActivityEnvironment().run(acts.removeWorkspaceSchedules, {
      workspaceId,
    });
    await removed.promise;
    const [count, answer] = await Promise.all([removal, later.start(other())]);
    return [count, answer, later];
  }

  const patchOf = (base: string, sid: string, body: object) => () =>
    t.stack.api.call('PATCH', `${base}/${sid}`, { token: t.key, body });

  /** The Temporal Schedule's state, or null when there is none. */
  async function mirrorOf(workspaceId: string, sid: string) {
    try {
      const d = await t.stack.service.temporal.schedule
        .getHandle(workspaceScheduleId(workspaceId, sid))
        .describe();
      return { note: d.state.note ?? '', paused: d.state.paused };
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return null;
      throw err;
    }
  }

  /** The row and its Temporal Schedule agree: both gone, or both there with the row's settings. */
  async function expectConsistent(workspaceId: string, sid: string): Promise<ScheduleRow | null> {
    const row = await getSchedule(t.stack.service.db.pool, workspaceId, sid);
    const mirror = await mirrorOf(workspaceId, sid);
    expect(mirror, 'a Temporal Schedule exists iff its row does').toEqual(
      row ? { note: fingerprint(row, t.stack.config.TASK_QUEUE), paused: !row.enabled } : null,
    );
    return row;
  }

  /**
   * A PATCH (disabling it) through `patcher`, held inside its write until `held`, then a DELETE run
   * to its answer as `del`: the row and its Temporal Schedule both gone, the DELETE 204; the PATCH's
   * answer.
   */
  async function patchHeldThenDelete(
    id: string,
    base: string,
    sid: string,
    patcher: Awaited<ReturnType<typeof secondApi>>,
    held: Promise<void>,
    del: Later,
  ): Promise<Answer> {
    const patch = patcher.call('PATCH', `${base}/${sid}`, { token: t.key, body: { enabled: false } });
    await held;
    const [deleted, patched] = await Promise.all([
      del.start(t.stack.api.call('DELETE', `${base}/${sid}`, { token: t.key })),
      patch,
    ]);
    expect(await expectConsistent(id, sid)).toBeNull();
    expect(deleted.status).toBe(204);
    return patched;
  }

  const unavailable = (res: Answer) => {
    expect(res.status).toBe(503);
    expect((res.body as { error: { code: string } }).error.code).toBe('temporal_unavailable');
    expect(res.headers.get('retry-after')).toBe('5');
  };

  it('PATCH arriving after the DELETE removed the Temporal Schedule, before it deleted the row', async () => {
    const { id, base } = await workspace();
    const sid = await created(base);
    const [deleted, patched] = await deleteThen(base, sid, patchOf(base, sid, { cron: '@every 9m' }));
    expect(await expectConsistent(id, sid)).toBeNull();
    expect(deleted.status).toBe(204);
    // Behind the DELETE: the schedule is gone by the time the PATCH may change it.
    expect(patched.status).toBe(404);
  });

  it("a list's repair of the Temporal Schedule the DELETE just removed", async () => {
    const { id, base } = await workspace();
    const sid = await created(base);
    // The list reads the row, finds its Temporal Schedule missing and puts it back.
    const [deleted, listed] = await deleteThen(base, sid, () =>
      t.stack.api.call('GET', base, { token: t.key }),
    );
    expect(await expectConsistent(id, sid)).toBeNull();
    expect(deleted.status).toBe(204);
    expect(listed.status).toBe(200);
  });

  it("a create's put landing after the DELETE (by id, from a list) removed the Temporal Schedule", async () => {
    const { id, base } = await workspace();
    const creating = hooked();
    const creator = await secondApi(creating);
    const inserted = signal<string>();
    const deleteRemoved = signal();
    // The row is committed, its Temporal Schedule not yet put: the DELETE runs now.
    creating.beforePut = async (row) => {
      inserted.resolve(row.id);
      await deleteRemoved.promise;
    };
    const create = creator.call('POST', base, { token: t.key, body: { cron: '@every 5m', prompt: 'p' } });
    const sid = await inserted.promise;
    // The create's put goes on once the DELETE has removed the (not yet made) Temporal Schedule.
    const [deleted, made] = await deleteThen(base, sid, () => create, {
      onRemoved: () => deleteRemoved.resolve(),
    });
    expect(await expectConsistent(id, sid)).toBeNull();
    expect(deleted.status).toBe(204);
    // The create came first (its row was there to delete): it succeeded, then the DELETE did.
    expect(made.status).toBe(201);
  });

  it('a PATCH whose put lands after the DELETE answered', async () => {
    const { id, base } = await workspace();
    const sid = await created(base);
    const patching = hooked();
    const patcher = await secondApi(patching);
    const updated = signal();
    const del = new Later();
    // The row is changed, its Temporal Schedule not yet: the DELETE runs to its answer now.
    patching.beforePut = async () => {
      updated.resolve();
      await answered(del);
    };
    const patched = await patchHeldThenDelete(id, base, sid, patcher, updated.promise, del);
    // Its change came first (the row was changed before the DELETE took it).
    expect(patched.status).toBe(200);
  });

  it('a PATCH whose update of the Temporal Schedule finds it removed by a DELETE: 404, not 503', async () => {
    const { id, base } = await workspace();
    const sid = await created(base);
    const del = new Later();
    const updating = signal();
    // The row is changed and the Temporal Schedule found there (create: already running); its
    // update waits until the DELETE has removed it and answered.
    const client = holdingHandles(t.stack.service.temporal, 'update', 'before', async () => {
      updating.resolve();
      await answered(del);
    });
    const patcher = await secondApi(
      new ScheduleMirror(client, t.stack.config.TASK_QUEUE, API_TEMPORAL_BUDGET_MS),
    );
    const patched = await patchHeldThenDelete(id, base, sid, patcher, updating.promise, del);
    // Gone with the DELETE, as for a change that waited for it: not a Temporal outage.
    expect(patched.status).toBe(404);
  });

  it('a DELETE whose Temporal call fails while a PATCH waits: 503, and the PATCH then applies', async () => {
    const { id, base } = await workspace();
    const sid = await created(base);
    class FailingRemove extends HookedMirror {
      override async remove(): Promise<void> {
        await this.afterRemove?.();
        throw new Error('14 UNAVAILABLE: connection refused');
      }
    }
    const deleting = new FailingRemove(
      t.stack.service.temporal,
      t.stack.config.TASK_QUEUE,
      API_TEMPORAL_BUDGET_MS,
    );
    const [refused, patched] = await deleteThen(base, sid, patchOf(base, sid, { cron: '@every 11m' }), {
      deleting,
    });
    unavailable(refused);
    expect(patched.status).toBe(200);
    // The refused DELETE brings the Temporal Schedule back to the row in the background (its
    // remove may have landed after all): the two agree once that has run.
    await waitFor(
      async () => {
        const row = await getSchedule(t.stack.service.db.pool, id, sid);
        const mirror = await mirrorOf(id, sid);
        return row !== null && mirror?.note === fingerprint(row, t.stack.config.TASK_QUEUE);
      },
      { timeoutMs: 15_000, describe: 'the Temporal Schedule to match its row' },
    );
    expect(await expectConsistent(id, sid)).toMatchObject({ cron: '@every 11m' });
  });

  it("a workspace delete's removal of its schedules racing a PATCH", async () => {
    const { id, base } = await workspace();
    const sid = await created(base);
    const [count, patched] = await workspaceDeleteThen(id, patchOf(base, sid, { prompt: 'q' }), heldUntil);
    expect(await expectConsistent(id, sid)).toBeNull();
    expect(count).toBe(1);
    expect(patched.status).toBe(404);
  });

  it('a PATCH behind a delete stuck on Temporal answers 503 within 5 s, and changes nothing', async () => {
    const { id, base } = await workspace();
    const sid = await created(base);
    // Its removal done, the delete holds the row until the PATCH has its answer.
    const [count, refused, patch] = await workspaceDeleteThen(
      id,
      patchOf(base, sid, { cron: '@every 13m' }),
      answered,
    );
    unavailable(refused);
    expect(patch.tookMs).toBeLessThan(5000);
    expect(count).toBe(1);
    expect(await expectConsistent(id, sid)).toBeNull();
  });
});
