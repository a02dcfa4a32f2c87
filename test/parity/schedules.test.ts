/**
 * Workspace schedules on the real stack, the same test for each backend: a schedule firing every
 * two seconds delivers its prompt as `message/send` through the proxy's path (activity rows of type
 * `schedule`, redacted), its last run shows in the API, run-now works, `enabled: false` pauses the
 * Temporal Schedule (no firing while paused), a stopped workspace's run is `skipped`, a missing
 * mirror is repaired, and deleting the workspace leaves no Temporal Schedule behind; the orphan sweep
 * removes a mirror that outlived its workspace.
 */
import { ScheduleNotFoundError, type Client } from '@temporalio/client';
import { describe, expect, test } from 'vitest';
import { ScheduleMirror, workspaceScheduleId } from '../../src/schedules/mirror.js';
import { newId } from '../../src/security/tokens.js';
import { waitFor } from '../setup/wait-for.js';
import { createOrg, waitForStatus } from '../support/stack.js';
import { CONCURRENT_BLOCK, PARITY_BACKENDS, useParityStack, type ParityFixture } from './backends.js';
import { schedulesOf, waitForSchedulesListed } from './leaks.js';

// The docker and ec2 blocks run at the same time; the tests of one block share its workspace.
const it = test.sequential;

const SECRET = 'sch3dule-s3cret-value';
const INTERVAL_MS = 2000;

interface Item {
  ts: string;
  type: string;
  method?: string;
  summary: string;
  status: number | string;
}

interface Schedule {
  id: string;
  enabled: boolean;
  prompt: string;
  nextRunAt?: string | null;
  lastRun: { at: string; status: string; error?: string } | null;
}

async function scheduleRows(t: ParityFixture, id: string): Promise<Item[]> {
  const res = await t.stack.api.call('GET', `/v1/workspaces/${id}/activity?type=schedule&limit=500`, {
    token: t.key,
  });
  expect(res.status).toBe(200);
  return res.body.items as Item[];
}

async function described(client: Client, workspaceId: string, sid: string) {
  return client.schedule.getHandle(workspaceScheduleId(workspaceId, sid)).describe();
}

describe.each(PARITY_BACKENDS)('%s schedules', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend, { env: { SCHEDULE_MIN_INTERVAL_MS: '1000' } });
  let ws: { id: string } | undefined;
  let every: { id: string } | undefined;
  let cron: { id: string } | undefined;
  const base = () => `/v1/workspaces/${ws!.id}/schedules`;

  it('fires every few seconds through the proxy path; last run shown; redacted; bad input named', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'scheduled', backend, secrets: { API_KEY: SECRET } },
    });
    expect(created.status).toBe(202);
    const w: { id: string } = await waitForStatus(t.stack, t.key, created.body.id as string, 'online');
    ws = w;

    const post = (body: unknown) => t.stack.api.call('POST', base(), { token: t.key, body });
    for (const [body, field] of [
      [{ cron: '61 * * * *', prompt: 'x' }, 'cron'],
      [{ cron: '@every 1s/2', prompt: 'x' }, 'cron'],
      // A date that never comes: refused, not saved to never run.
      [{ cron: '0 9 30 2 *', prompt: 'x' }, 'cron'],
      [{ cron: '@every 500s', prompt: 'x', timezone: 'Mars/Base' }, 'timezone'],
      [{ cron: '@daily', prompt: '  ' }, 'prompt'],
      [{ cron: '@daily' }, 'prompt'],
      [{ cron: '@daily', prompt: 'x', enabled: 'no' }, 'enabled'],
    ] as const) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.field).toBe(field);
    }
    expect((await t.stack.api.call('GET', base(), { token: t.key })).body.items).toEqual([]);

    const made = await post({ cron: '@every 2s', prompt: `scheduled hello ${SECRET}` });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({
      workspaceId: w.id,
      cron: '@every 2s',
      timezone: 'UTC',
      enabled: true,
      lastRun: null,
    });
    every = made.body;
    // A calendar cron in a time zone, paused from the start: Temporal takes it as given.
    const calendar = await post({
      cron: '0 9 * * mon-fri',
      timezone: 'europe/paris',
      prompt: 'weekday morning',
      enabled: false,
    });
    expect(calendar.status).toBe(201);
    expect(calendar.body).toMatchObject({ timezone: 'Europe/Paris', enabled: false });
    cron = calendar.body;
    const client = t.stack.service.temporal;
    expect((await described(client, w.id, cron!.id)).state.paused).toBe(true);
    expect((await described(client, w.id, every!.id)).state.paused).toBe(false);

    // At least two firings, each one activity row of the proxied call.
    const rows = await waitFor(
      async () => {
        const ok = (await scheduleRows(t, ws!.id)).filter((r) => r.status === 200);
        return ok.length >= 2 ? ok : null;
      },
      { timeoutMs: 60_000, intervalMs: 500, describe: 'two scheduled messages delivered' },
    );
    for (const r of rows) {
      expect(r).toMatchObject({ type: 'schedule', method: 'message/send' });
      expect(r.summary).toBe(`schedule ${every!.id}: scheduled hello [REDACTED]`);
    }
    const { rows: raw } = await t.stack.service.db.pool.query<{ text: string }>(
      `SELECT concat_ws(' ', summary, request_text, response_text) AS text FROM activity WHERE workspace_id = $1`,
      [w.id],
    );
    expect(raw.map((r) => r.text).join('\n')).not.toContain(SECRET);

    const listed = await t.stack.api.call('GET', base(), { token: t.key });
    expect(listed.status).toBe(200);
    const mine = (listed.body.items as Schedule[]).find((s) => s.id === every!.id)!;
    expect(mine.lastRun).toMatchObject({ status: 'ok' });
    expect(typeof mine.lastRun!.at).toBe('string');
    expect(mine.prompt).toBe(`scheduled hello ${SECRET}`);
    expect(typeof mine.nextRunAt).toBe('string');
    const paused = (listed.body.items as Schedule[]).find((s) => s.id === cron!.id)!;
    expect(paused).toMatchObject({ enabled: false, lastRun: null, nextRunAt: null });
  });

  it('pause stops firings; run-now still runs; resume fires again with the new prompt', async () => {
    const client = t.stack.service.temporal;
    const patch = (body: unknown) =>
      t.stack.api.call('PATCH', `${base()}/${every!.id}`, { token: t.key, body });
    expect((await patch({ enabled: false })).status).toBe(200);
    const pausedAt = Date.now();
    expect((await described(client, ws!.id, every!.id)).state.paused).toBe(true);
    // A run already started finishes; after that nothing more may come.
    const settled = await waitFor(
      async () => {
        const d = await described(client, ws!.id, every!.id);
        return d.info.runningActions.length === 0 ? d : null;
      },
      { timeoutMs: 30_000, intervalMs: 200, describe: 'no scheduled run in flight' },
    );
    const taken = settled.info.numActionsTaken;
    const before = (await scheduleRows(t, ws!.id)).length;

    const run = await t.stack.api.call('POST', `${base()}/${every!.id}/run`, { token: t.key });
    expect(run.status).toBe(202);
    await waitFor(
      async () => {
        const rows = await scheduleRows(t, ws!.id);
        // A paused two-second schedule has had three of its intervals to fire meanwhile.
        return rows.length > before && Date.now() - pausedAt > 3 * INTERVAL_MS ? rows : null;
      },
      { timeoutMs: 30_000, intervalMs: 250, describe: 'the run-now message' },
    );
    await waitFor(async () => (await described(client, ws!.id, every!.id)).info.runningActions.length === 0, {
      timeoutMs: 30_000,
      intervalMs: 200,
      describe: 'the run-now run to end',
    });
    expect(await scheduleRows(t, ws!.id)).toHaveLength(before + 1);
    expect((await described(client, ws!.id, every!.id)).info.numActionsTaken).toBe(taken + 1);

    const resumed = await patch({ enabled: true, prompt: 'resumed prompt' });
    expect(resumed.status).toBe(200);
    expect(resumed.body).toMatchObject({ enabled: true, prompt: 'resumed prompt' });
    await waitFor(
      async () =>
        (await scheduleRows(t, ws!.id)).some((r) => r.summary === `schedule ${every!.id}: resumed prompt`),
      { timeoutMs: 30_000, intervalMs: 250, describe: 'a firing with the new prompt' },
    );
    const bad = await patch({ timezone: 'Nowhere/Land' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('timezone');
  });

  it('over budget, a run is skipped and logged 402, as the A2A proxy would answer', async () => {
    const budget = (limitCents: number | null) =>
      t.stack.api.call('PATCH', `/v1/workspaces/${ws!.id}/budget`, { token: t.key, body: { limitCents } });
    expect((await budget(0)).status).toBe(200);
    const since = new Date().toISOString();
    expect((await t.stack.api.call('POST', `${base()}/${cron!.id}/run`, { token: t.key })).status).toBe(202);
    const last = await waitFor(
      async () => {
        const res = await t.stack.api.call('GET', `${base()}/${cron!.id}`, { token: t.key });
        const run = (res.body as Schedule).lastRun;
        return run && run.at > since ? run : null;
      },
      { timeoutMs: 30_000, intervalMs: 250, describe: 'the over-budget run' },
    );
    expect(last.status).toBe('skipped');
    expect(last.error).toMatch(/^skipped: over budget/);
    const rows = await scheduleRows(t, ws!.id);
    // The only refusal for budget this schedule has had.
    expect(
      rows.filter((r) => r.summary.startsWith(`schedule ${cron!.id}:`) && r.status === 402),
    ).toHaveLength(1);
    expect((await budget(null)).status).toBe(200);
  });

  it('a missing mirror is repaired; delete removes one; other orgs see nothing', async () => {
    const client = t.stack.service.temporal;
    // Out of band: the Temporal Schedule is gone, the row (source of truth) is not.
    await client.schedule.getHandle(workspaceScheduleId(ws!.id, cron!.id)).delete();
    const listed = await t.stack.api.call('GET', base(), { token: t.key });
    expect(listed.status).toBe(200);
    const repaired = await described(client, ws!.id, cron!.id);
    expect(repaired.state.paused).toBe(true);

    const other = await createOrg(t.stack, 'other');
    expect((await t.stack.api.call('GET', base(), { token: other.apiKey })).status).toBe(404);
    expect(
      (await t.stack.api.call('POST', `${base()}/${cron!.id}/run`, { token: other.apiKey })).status,
    ).toBe(404);

    expect((await t.stack.api.call('DELETE', `${base()}/${cron!.id}`, { token: t.key })).status).toBe(204);
    await expect(described(client, ws!.id, cron!.id)).rejects.toBeInstanceOf(ScheduleNotFoundError);
    expect((await t.stack.api.call('GET', `${base()}/${cron!.id}`, { token: t.key })).status).toBe(404);
    expect((await t.stack.api.call('DELETE', `${base()}/${cron!.id}`, { token: t.key })).status).toBe(404);
  });

  it('a stopped workspace skips its run; deleting the workspace leaves no Temporal Schedule', async () => {
    const client = t.stack.service.temporal;
    expect((await t.stack.api.call('POST', `/v1/workspaces/${ws!.id}/stop`, { token: t.key })).status).toBe(
      202,
    );
    await waitForStatus(t.stack, t.key, ws!.id, 'stopped');
    const stoppedAt = new Date().toISOString();
    const skipped = await waitFor(
      async () => {
        const res = await t.stack.api.call('GET', `${base()}/${every!.id}`, { token: t.key });
        const last = res.body.lastRun;
        return last && last.at > stoppedAt && last.status === 'skipped' ? last : null;
      },
      { timeoutMs: 30_000, intervalMs: 250, describe: 'a skipped run while stopped' },
    );
    expect(skipped.error).toBe('skipped: workspace is stopped');

    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${ws!.id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, ws!.id, 'deleted');
    await expect(described(client, ws!.id, every!.id)).rejects.toBeInstanceOf(ScheduleNotFoundError);
    // Listing is eventually consistent: wait until it agrees.
    await waitForSchedulesListed(client, ws!.id, 0);
    const { rows } = await t.stack.service.db.pool.query(`SELECT id FROM schedules WHERE workspace_id = $1`, [
      ws!.id,
    ]);
    expect(rows).toEqual([]);
  });
});

describe.each(PARITY_BACKENDS)('%s stray schedule mirrors', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  test('the orphan sweep removes a mirror that outlived its workspace and keeps unknown ones', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'gone', backend },
    });
    expect(created.status).toBe(202);
    const id = created.body.id as string;
    await waitForStatus(t.stack, t.key, id, 'online');
    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');

    // Mirrors with no row: one of the deleted workspace (a create that lost a race with the delete),
    // one of a workspace this database does not know (another deployment's).
    const client = t.stack.service.temporal;
    const mirror = new ScheduleMirror(client, t.stack.config.TASK_QUEUE);
    const stray = { id: newId(), workspaceId: id, cron: '@daily', timezone: 'UTC', enabled: false };
    const foreign = { ...stray, id: newId(), workspaceId: newId() };
    await mirror.put(stray);
    await mirror.put(foreign);
    try {
      await waitFor(
        async () => {
          const listed = [
            ...(await schedulesOf(client, id)),
            ...(await schedulesOf(client, foreign.workspaceId)),
          ];
          return listed.length === 2;
        },
        { timeoutMs: 30_000, intervalMs: 500, describe: 'both mirrors listed' },
      );
      const run = await t.stack.api.call('POST', '/v1/admin/sweeps/orphans/run', {
        token: t.stack.adminToken,
      });
      expect(run.status).toBe(200);
      expect(Array.isArray(run.body.schedulesRemoved)).toBe(true);
      // (The other backend's block sweeps the same namespace and may have removed it first.)
      await expect(described(client, id, stray.id)).rejects.toBeInstanceOf(ScheduleNotFoundError);
      expect((await described(client, foreign.workspaceId, foreign.id)).state.paused).toBe(true);
    } finally {
      await mirror.remove(foreign.workspaceId, foreign.id);
    }
  });
});
