/**
 * Schedule writes on the real database and Temporal: two PATCHes of one schedule at once leave its
 * row and its Temporal Schedule alike; a PATCH whose Temporal write fails does not undo one that
 * succeeded meanwhile; a time zone Temporal refuses is a 400 naming `timezone` with nothing stored
 * (never a 503 a client would retry for ever); a burst of creates stays within the per-workspace
 * quota.
 */
import { Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { SCHEDULES_PER_WORKSPACE } from '../../src/app/schedules.js';
import { getSchedule, insertSchedule, listSchedules } from '../../src/db/schedules.js';
import {
  API_TEMPORAL_BUDGET_MS,
  ScheduleMirror,
  fingerprint,
  workspaceScheduleId,
} from '../../src/schedules/mirror.js';
import { newId } from '../../src/security/tokens.js';
import { scheduleFixtures } from '../support/schedules.js';
import { serveApiWith, useStack } from '../support/stack.js';

/**
 * The stack's Temporal client, but its server answers as one whose tz database lacks `zone`:
 * INVALID_ARGUMENT "Invalid schedule spec: unknown time zone …" to a create or update using it.
 */
function refusingZone(client: Client, zone: string): Client {
  const real = client.connection;
  const service = new Proxy(real.workflowService, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (prop !== 'createSchedule' && prop !== 'updateSchedule') return value;
      const call = value as (req: { schedule?: { spec?: { timezoneName?: string } } }) => Promise<unknown>;
      return async (req: { schedule?: { spec?: { timezoneName?: string } } }) => {
        if (req.schedule?.spec?.timezoneName !== zone) return call.call(target, req);
        const details = `Invalid schedule spec: unknown time zone ${zone}`;
        throw Object.assign(new Error(`3 INVALID_ARGUMENT: ${details}`), {
          code: 3,
          details,
          metadata: { get: () => [] },
        });
      };
    },
  });
  const connection = new Proxy(real, {
    get(target, prop) {
      if (prop === 'workflowService') return service;
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return new Client({ connection, namespace: client.options.namespace });
}

describe('schedules under concurrent writes', () => {
  const t = useStack({ worker: false });
  const { workspace, created } = scheduleFixtures(t);

  /** The schedule's Temporal description against its row: the note is the row's fingerprint. */
  async function alike(workspaceId: string, sid: string): Promise<{ row: string; note: string }> {
    const row = await getSchedule(t.stack.service.db.pool, workspaceId, sid);
    const d = await t.stack.service.temporal.schedule
      .getHandle(workspaceScheduleId(workspaceId, sid))
      .describe();
    return {
      row: `${fingerprint(row!, t.stack.config.TASK_QUEUE)} paused=${!row!.enabled}`,
      note: `${d.state.note ?? ''} paused=${d.state.paused}`,
    };
  }

  it('two PATCHes at once leave the row and its Temporal Schedule alike (25 rounds)', async () => {
    const { id, base } = await workspace();
    const sid = await created(base);
    const patch = (body: unknown) => t.stack.api.call('PATCH', `${base}/${sid}`, { token: t.key, body });
    const apart: Array<{ round: number; row: string; note: string }> = [];
    for (let i = 0; i < 25; i++) {
      const answers = await Promise.all([
        patch({ enabled: i % 2 === 0 }),
        patch({ cron: `@every ${5 + i}m` }),
      ]);
      expect(answers.map((a) => a.status)).toEqual([200, 200]);
      const seen = await alike(id, sid);
      if (seen.row !== seen.note) apart.push({ round: i, ...seen });
    }
    expect(apart).toEqual([]);
  });

  it('a PATCH whose Temporal write fails does not undo one that succeeded meanwhile', async () => {
    const { id, base } = await workspace();
    const sid = await created(base);

    // The first write of cron "@every 7m" waits until told, then fails as an unreachable Temporal.
    let entered!: () => void;
    const reached = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let armed = true;
    class FailingOnce extends ScheduleMirror {
      override async put(row: Parameters<ScheduleMirror['put']>[0], deadline?: number): Promise<void> {
        if (armed && row.cron === '@every 7m') {
          armed = false;
          entered();
          await released;
          throw new Error('14 UNAVAILABLE: connection refused');
        }
        return super.put(row, deadline);
      }
    }
    const api = await serveApiWith(t.stack, t.stack.service.temporal as never, {
      schedules: new FailingOnce(t.stack.service.temporal, t.stack.config.TASK_QUEUE, API_TEMPORAL_BUDGET_MS),
    });
    try {
      const failing = api.api.call('PATCH', `${base}/${sid}`, { token: t.key, body: { cron: '@every 7m' } });
      await reached;
      const paused = await api.api.call('PATCH', `${base}/${sid}`, {
        token: t.key,
        body: { enabled: false },
      });
      expect(paused.status).toBe(200);
      expect(paused.body).toMatchObject({ enabled: false });
      release();
      expect((await failing).status).toBe(503);
    } finally {
      release();
      await api.close();
    }
    // The pause answered 200: it stays, in the row and in Temporal.
    const row = await getSchedule(t.stack.service.db.pool, id, sid);
    expect(row).toMatchObject({ enabled: false });
    const seen = await alike(id, sid);
    expect(seen.note).toBe(seen.row);
  });

  it('time zones Node knows but Temporal does not are a 400 naming timezone; nothing is stored', async () => {
    const { id, base } = await workspace();
    for (const timezone of ['US/Pacific-New', 'SystemV/AST4', 'Canada/East-Saskatchewan']) {
      const res = await t.stack.api.call('POST', base, {
        token: t.key,
        body: { cron: '0 9 * * *', timezone, prompt: 'p' },
      });
      expect(res.status, timezone).toBe(400);
      expect(res.body.error.field, timezone).toBe('timezone');
    }
    expect(await listSchedules(t.stack.service.db.pool, id)).toEqual([]);

    const made = await t.stack.api.call('POST', base, {
      token: t.key,
      body: { cron: '0 9 * * *', timezone: 'America/Regina', prompt: 'p' },
    });
    expect(made.status).toBe(201);
    const sid = made.body.id as string;
    const res = await t.stack.api.call('PATCH', `${base}/${sid}`, {
      token: t.key,
      body: { timezone: 'Canada/East-Saskatchewan', enabled: false },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe('timezone');
    expect(await getSchedule(t.stack.service.db.pool, id, sid)).toMatchObject({
      timezone: 'America/Regina',
      enabled: true,
      updatedAt: new Date(made.body.updatedAt as string),
    });
    const seen = await alike(id, sid);
    expect(seen.note).toBe(seen.row);
  });

  it('a time zone this Temporal refuses (older tz database) is a 400 naming timezone, not a 503', async () => {
    const { id, base } = await workspace();
    const api = await serveApiWith(t.stack, t.stack.service.temporal as never, {
      schedules: new ScheduleMirror(
        refusingZone(t.stack.service.temporal, 'Europe/Kyiv'),
        t.stack.config.TASK_QUEUE,
        API_TEMPORAL_BUDGET_MS,
      ),
    });
    try {
      const res = await api.api.call('POST', base, {
        token: t.key,
        body: { cron: '0 9 * * *', timezone: 'Europe/Kyiv', prompt: 'p' },
      });
      expect(res.status).toBe(400);
      expect(res.body.error.field).toBe('timezone');
      expect(await listSchedules(t.stack.service.db.pool, id)).toEqual([]);

      const made = await api.api.call('POST', base, {
        token: t.key,
        body: { cron: '0 9 * * *', prompt: 'p' },
      });
      expect(made.status).toBe(201);
      const sid = made.body.id as string;
      const patched = await api.api.call('PATCH', `${base}/${sid}`, {
        token: t.key,
        body: { timezone: 'Europe/Kyiv' },
      });
      expect(patched.status).toBe(400);
      expect(patched.body.error.field).toBe('timezone');
      expect(await getSchedule(t.stack.service.db.pool, id, sid)).toMatchObject({ timezone: 'UTC' });
      const seen = await alike(id, sid);
      expect(seen.note).toBe(seen.row);
    } finally {
      await api.close();
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
