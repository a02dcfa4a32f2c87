/**
 * A run of a paused schedule (src/activities/schedules.ts runScheduledMessage), against a fake
 * database and a fake Temporal: a firing of a Temporal Schedule that is still running while its row
 * is paused (a write whose Temporal half failed) sends nothing and pauses the mirror; a run of a
 * paused mirror (only run-now starts those) goes on to send.
 */
import { randomBytes } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ScheduleAlreadyRunning, type Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { createScheduleActivities } from '../../src/activities/schedules.js';
import { UnconfiguredBackend } from '../../src/backends/unconfigured.js';
import type { Queryable, Transactable } from '../../src/db/queryable.js';
import { fingerprint } from '../../src/schedules/mirror.js';
import { SecretBox } from '../../src/security/secrets.js';
import { noTransactions } from '../support/db-rows.js';

const WS = 'a'.repeat(16);
const SID = 'b'.repeat(16);
// MockActivityEnvironment's task queue.
const QUEUE = 'test';

const scheduleRow = {
  id: SID,
  workspace_id: WS,
  cron: '@every 5m',
  timezone: 'UTC',
  prompt: 'hello',
  enabled: false,
  created_at: new Date(),
  updated_at: new Date(),
};
const workspaceRow = {
  id: WS,
  org_id: 'c'.repeat(16),
  backend: 'docker',
  status: 'online',
  endpoint: 'http://127.0.0.1:9',
  generation: 1,
};

/**
 * Answers the schedule, workspace and org reads (`orgLive` false: its org was deleted); any other
 * statement (the send path) stops the run.
 */
function fakeDb(orgLive = true): Transactable {
  return {
    ...noTransactions,
    query: (async (text: string) => {
      if (/FROM schedules/.test(text)) return { rows: [scheduleRow], rowCount: 1 };
      if (/FROM workspaces/.test(text)) return { rows: [workspaceRow], rowCount: 1 };
      if (/FROM orgs/.test(text)) {
        const rows = orgLive ? [{ id: workspaceRow.org_id, name: 'o', created_at: new Date() }] : [];
        return { rows, rowCount: rows.length };
      }
      throw new Error(`went on to send: ${text.trim().slice(0, 40)}`);
    }) as unknown as Queryable['query'],
  };
}

/** A Temporal Schedule of the row, paused or not, recording the definitions put. */
function fakeTemporal(paused: boolean): { client: Client; puts: Array<{ paused: boolean; note: string }> } {
  const puts: Array<{ paused: boolean; note: string }> = [];
  const handle = {
    describe: async () => ({
      state: { paused, note: paused ? 'other' : 'stale' },
      info: { nextActionTimes: [] },
    }),
    update: async (fn: (previous: object) => { state: { paused: boolean; note: string } }) => {
      puts.push(fn({}).state);
    },
  };
  const client = {
    schedule: {
      getHandle: () => handle,
      create: async () => {
        throw new ScheduleAlreadyRunning('exists', `workspace:${WS}:schedule:${SID}`);
      },
    },
  };
  return { client: client as unknown as Client, puts };
}

function activities(temporal: Client, orgLive = true) {
  return createScheduleActivities({
    db: fakeDb(orgLive),
    backends: { docker: new UnconfiguredBackend('docker'), ec2: new UnconfiguredBackend('ec2') },
    secrets: new SecretBox(randomBytes(32).toString('base64')),
    temporal,
  });
}

describe('a run of a paused schedule', () => {
  it('fired by a Temporal Schedule left running: nothing sent, the mirror paused', async () => {
    const { client, puts } = fakeTemporal(false);
    const status = await new MockActivityEnvironment().run(activities(client).runScheduledMessage, {
      workspaceId: WS,
      scheduleId: SID,
    });
    expect(status).toBe('skipped');
    const row = { id: SID, workspaceId: WS, cron: '@every 5m', timezone: 'UTC', enabled: false };
    expect(puts).toEqual([{ paused: true, note: fingerprint(row, QUEUE) }]);
  });

  it('of a paused Temporal Schedule (run-now): goes on to send', async () => {
    const { client, puts } = fakeTemporal(true);
    await expect(
      new MockActivityEnvironment().run(activities(client).runScheduledMessage, {
        workspaceId: WS,
        scheduleId: SID,
      }),
    ).rejects.toThrow(/went on to send/);
    expect(puts).toEqual([]);
  });
  it('of a workspace whose org was deleted (its cascade not there yet): nothing sent, even run-now', async () => {
    const { client, puts } = fakeTemporal(true);
    const status = await new MockActivityEnvironment().run(activities(client, false).runScheduledMessage, {
      workspaceId: WS,
      scheduleId: SID,
    });
    expect(status).toBe('skipped');
    expect(puts).toEqual([]);
  });
});
