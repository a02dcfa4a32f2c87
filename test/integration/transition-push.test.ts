/**
 * `/events` learns of a transition at its commit: PostgreSQL announces every new
 * `workspace_transitions` row (trigger → NOTIFY `wo_transitions`), the API's change feed hears it
 * and wakes the shared poller for a followed workspace. The stack here polls once per 10 minutes,
 * so an event that arrives at all within the tests' deadlines came by the wake; the poll is the
 * backstop (test/integration/bounds.test.ts covers it alone). A reconnecting client resumes after
 * its Last-Event-ID.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { TransitionFeed } from '../../src/api/transition-feed.js';
import { ChangeFeed } from '../../src/db/change-feed.js';
import { recordTransition } from '../../src/db/workspaces.js';
import type { TransitionEvent } from '../../src/db/events.js';
import { waitFor } from '../setup/wait-for.js';
import { followEvents } from '../support/events-stream.js';
import { insertWorkspaceRow, useStack } from '../support/stack.js';

const TEN_MINUTES = 600_000;

describe('transitions pushed to /events', () => {
  const t = useStack({ worker: false, env: { EVENTS_POLL_MS: String(TEN_MINUTES) } });

  it('a transition committed on another connection reaches the stream without waiting for a poll', async () => {
    const id = await insertWorkspaceRow(t.stack.service.db.pool, t.orgId);
    const stream = followEvents(t.stack.url, id, t.key);
    // Another process's connection, as the worker's activities write transitions.
    const other = new pg.Client({ connectionString: t.stack.config.DATABASE_URL });
    await other.connect();
    try {
      expect(await stream.status).toBe(200);
      const statuses = ['provisioning', 'online', 'degraded'] as const;
      for (const [i, status] of statuses.entries()) {
        await recordTransition(other, { workspaceId: id, generation: 1, status });
        await waitFor(() => stream.events.length === i + 1, {
          timeoutMs: 15_000,
          describe: `the ${status} transition on the stream`,
        });
      }
      expect(stream.events.map((e) => e.status)).toEqual([...statuses]);
    } finally {
      stream.close();
      await other.end();
    }
  });

  it('a client resuming with Last-Event-ID is sent what came after it, not the history again', async () => {
    const pool = t.stack.service.db.pool;
    const id = await insertWorkspaceRow(pool, t.orgId);
    for (const status of ['provisioning', 'online', 'degraded'] as const)
      await recordTransition(pool, { workspaceId: id, generation: 1, status });
    const first = followEvents(t.stack.url, id, t.key);
    expect(await first.status).toBe(200);
    await waitFor(() => first.events.length === 3, { timeoutMs: 15_000, describe: 'the history' });
    first.close();
    const seen = first.events[1]!.id;
    const resumed = followEvents(t.stack.url, id, t.key, seen);
    expect(await resumed.status).toBe(200);
    await recordTransition(pool, { workspaceId: id, generation: 1, status: 'offline' });
    await waitFor(() => resumed.events.length === 2, {
      timeoutMs: 15_000,
      describe: 'the rest and the new one',
    });
    expect(resumed.events.map((e) => e.status)).toEqual(['degraded', 'offline']);
    resumed.close();
    // Not one of our ids: the whole history, as a first connection gets.
    for (const garbage of ['garbage', '-1', '1.5', '99999999999999999999']) {
      const whole = followEvents(t.stack.url, id, t.key, garbage);
      expect(await whole.status, garbage).toBe(200);
      await waitFor(() => whole.events.length === 4, {
        timeoutMs: 15_000,
        describe: `history for ${garbage}`,
      });
      whole.close();
    }
  });

  it('a storm of transitions: every one delivered, and wakes fold into a bounded rate of polls', async () => {
    const pool = t.stack.service.db.pool;
    const newClient = t.stack.service.db.newClient!;
    const changes = new ChangeFeed({ newClient, onChange: () => undefined });
    const feed = new TransitionFeed(pool, { intervalMs: TEN_MINUTES });
    changes.onTransition((wsId) => feed.wake(wsId));
    await changes.start();
    const ids = [await insertWorkspaceRow(pool, t.orgId), await insertWorkspaceRow(pool, t.orgId)];
    const got = new Map<string, TransitionEvent[]>(ids.map((id) => [id, []]));
    const offs = await Promise.all(ids.map((id) => feed.subscribe(id, (e) => got.get(id)!.push(e))));
    try {
      const PER_WRITER = 50;
      const pollsBefore = feed.polls;
      const started = performance.now();
      // Four writers at once, two per workspace.
      await Promise.all(
        [0, 1, 2, 3].map(async (w) => {
          for (let i = 0; i < PER_WRITER; i++) {
            await recordTransition(pool, {
              workspaceId: ids[w % 2]!,
              generation: 1,
              status: 'online',
              phase: `w${w}-${i}`,
            });
          }
        }),
      );
      await waitFor(() => ids.every((id) => got.get(id)!.length === 2 * PER_WRITER), {
        timeoutMs: 30_000,
        describe: 'every transition of the storm on its subscriber',
      });
      const elapsed = performance.now() - started;
      for (const id of ids) {
        const phases = got.get(id)!.map((e) => e.phase);
        expect(new Set(phases).size).toBe(2 * PER_WRITER);
        // Each writer's transitions arrive in the order it committed them.
        for (const w of [0, 1, 2, 3].filter((n) => ids[n % 2] === id)) {
          const mine = phases.filter((p) => p?.startsWith(`w${w}-`));
          expect(mine).toEqual(Array.from({ length: PER_WRITER }, (_, i) => `w${w}-${i}`));
        }
      }
      // Not one poll per transition (200): at most one per 20 ms of the storm, plus the first.
      const polls = feed.polls - pollsBefore;
      expect(polls).toBeGreaterThan(0);
      expect(polls).toBeLessThanOrEqual(2 + Math.ceil(elapsed / 20));
    } finally {
      for (const off of offs) off();
      feed.close();
      await changes.close();
    }
  });
});
