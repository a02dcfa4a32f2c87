/**
 * Schedule writes when Temporal cannot be reached: the row is the source of truth, so a write whose
 * Temporal Schedule cannot be written answers 503 `temporal_unavailable` with Retry-After and
 * leaves the row as it was; reading still answers, from the rows, saying the mirror is unknown.
 * The stack's own API (reachable Temporal) then sees the rows exactly as before. With the API's own
 * Temporal budget, each refusal comes within the contract's 5 s (a create's cleanup not waited for).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@temporalio/client';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app.js';
import { apiSettings } from '../../src/service.js';
import { connectTemporal } from '../../src/api/temporal-connection.js';
import { API_TEMPORAL_BUDGET_MS, ScheduleMirror } from '../../src/schedules/mirror.js';
import { SecretBox } from '../../src/security/secrets.js';
import { freePort } from '../setup/free-port.js';
import { ApiClient, insertWorkspaceRow, useStack } from '../support/stack.js';

describe('schedules while Temporal is unreachable', () => {
  const t = useStack({ worker: false });

  it('writes answer 503 and change nothing; reads answer from the rows', async () => {
    const c = t.stack.config;
    // Nothing listens there: every call fails fast with UNAVAILABLE (or runs into the deadline).
    const connection = await connectTemporal(`127.0.0.1:${await freePort()}`, { lazy: true });
    const dead = new Client({ connection, namespace: c.TEMPORAL_NAMESPACE });
    const server = createServer(
      createApp({
        db: t.stack.service.db.pool,
        // A worker polls (as far as run-now asks): only Temporal's schedule calls fail.
        entity: { requireWorker: async () => undefined } as never,
        schedules: new ScheduleMirror(dead, c.TASK_QUEUE, API_TEMPORAL_BUDGET_MS),
        backends: t.stack.service.backends,
        secrets: new SecretBox(c.SECRETS_KEY, c.SECRETS_OLD_KEYS),
        log: pino({ level: 'silent' }),
        settings: apiSettings(c),
        readiness: {},
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const broken = new ApiClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const id = await insertWorkspaceRow(t.stack.service.db.pool, t.orgId);
      const base = `/v1/workspaces/${id}/schedules`;
      // The contract's 503 comes within 5 s of the request, whatever cleanup the refusal leaves.
      const timed = async <T>(call: Promise<T>): Promise<T> => {
        const started = Date.now();
        const res = await call;
        expect(Date.now() - started).toBeLessThan(5000);
        return res;
      };
      const unavailable = (res: { status: number; body: { error?: { code: string } }; headers: Headers }) => {
        expect(res.status).toBe(503);
        expect(res.body.error?.code).toBe('temporal_unavailable');
        expect(res.headers.get('retry-after')).toBe('5');
      };

      unavailable(
        await timed(broken.call('POST', base, { token: t.key, body: { cron: '@daily', prompt: 'hello' } })),
      );
      expect((await t.stack.api.call('GET', base, { token: t.key })).body.items).toEqual([]);

      // Made through the working API; then every write through the broken one is refused.
      const made = await t.stack.api.call('POST', base, {
        token: t.key,
        body: { cron: '0 9 * * *', timezone: 'Europe/Paris', prompt: 'morning' },
      });
      expect(made.status).toBe(201);
      const sid = made.body.id as string;
      unavailable(
        await timed(
          broken.call('PATCH', `${base}/${sid}`, {
            token: t.key,
            body: { cron: '0 10 * * *', prompt: 'later', enabled: false },
          }),
        ),
      );
      unavailable(await timed(broken.call('DELETE', `${base}/${sid}`, { token: t.key })));
      unavailable(await timed(broken.call('POST', `${base}/${sid}/run`, { token: t.key })));

      const listed = await broken.call('GET', base, { token: t.key });
      expect(listed.status).toBe(200);
      expect(listed.body.items).toEqual([
        expect.objectContaining({
          id: sid,
          cron: '0 9 * * *',
          prompt: 'morning',
          enabled: true,
          mirror: 'unknown',
        }),
      ]);
      const after = await t.stack.api.call('GET', `${base}/${sid}`, { token: t.key });
      expect(after.body).toMatchObject({
        cron: '0 9 * * *',
        timezone: 'Europe/Paris',
        prompt: 'morning',
        enabled: true,
      });
      expect(after.body.updatedAt).toBe(made.body.updatedAt);
      const mirrored = await t.stack.service.temporal.schedule
        .getHandle(`workspace:${id}:schedule:${sid}`)
        .describe();
      expect(mirrored.state.paused).toBe(false);

      expect((await t.stack.api.call('DELETE', `${base}/${sid}`, { token: t.key })).status).toBe(204);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await connection.close().catch(() => undefined);
    }
  });
});
