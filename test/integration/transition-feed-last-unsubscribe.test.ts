/**
 * Regression: the events route unsubscribes from inside a delivery (a stream ends on `deleted`).
 * When that was the feed's last subscriber, the poll that was delivering restored its cursor after
 * stop() had reset it, so the next subscriber's start() saw a "running" feed that had no timer:
 * every later `/events` stream of the process got its history and then nothing live (found by
 * `wsctl ws rm` waiting forever for `deleted` right after another workspace's rm).
 */
import { describe, expect, it } from 'vitest';
import { TransitionFeed } from '../../src/api/transition-feed.js';
import { recordTransition } from '../../src/db/workspaces.js';
import { waitFor } from '../setup/wait-for.js';
import { insertWorkspaceRow, useStack } from '../support/stack.js';

describe('TransitionFeed after its last subscriber leaves during a delivery', () => {
  const t = useStack({ worker: false });

  it('a later subscriber still gets live transitions', async () => {
    const pool = t.stack.service.db.pool;
    const feed = new TransitionFeed(pool, { intervalMs: 50 });
    const [a, b] = [await insertWorkspaceRow(pool, t.orgId), await insertWorkspaceRow(pool, t.orgId)];
    try {
      // As the route does on `deleted`: the subscriber leaves from inside its own delivery.
      let offA: (() => void) | null = null;
      let leftA = false;
      offA = await feed.subscribe(a, (e) => {
        if (e.status === 'deleted') {
          offA?.();
          leftA = true;
        }
      });
      await recordTransition(pool, { workspaceId: a, generation: 1, status: 'deleted' });
      await waitFor(() => leftA, { timeoutMs: 10_000, describe: 'the first subscriber to leave' });
      expect(feed.size).toBe(0);

      const got: string[] = [];
      const offB = await feed.subscribe(b, (e) => got.push(e.status));
      expect(feed.running).toBe(true);
      await recordTransition(pool, { workspaceId: b, generation: 1, status: 'online' });
      await waitFor(() => got.includes('online'), { timeoutMs: 10_000, describe: 'a live transition' });
      offB();
    } finally {
      feed.close();
    }
  });
});
