/**
 * The operators' search attributes (docs/operations.md): the entity upserts WorkspaceStatusSince
 * and WorkspaceRestarts with each status, so "auto-restarted" and "stuck since" are queries. The
 * history is recorded for test/replay (RECORD_REPLAY=1) behind its patch.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  agentLivenessSignal,
  deleteUpdate,
  WorkspaceRestartsKey,
  WorkspaceStatusKey,
  WorkspaceStatusSinceKey,
} from '../../src/workflows/messages.js';
import { createEnv, replayAndRecord, settledAt, startEntity, until, withWorker } from './harness.js';

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await createEnv();
});
afterAll(async () => {
  await env?.teardown();
});

describe('entity workflow: operators search attributes', () => {
  it('upserts when the status began and the restarts of the streak', async () => {
    await withWorker(env, async (h) => {
      const handle = await startEntity(h, { restartPolicy: { backoffInitialMs: 1000 } });
      const first = await until(h, handle, settledAt('online', 1), 'online at generation 1');
      let attrs = (await handle.describe()).typedSearchAttributes;
      expect(attrs.get(WorkspaceStatusKey)).toBe('online');
      expect(attrs.get(WorkspaceRestartsKey)).toBe(0);
      const onlineSince = attrs.get(WorkspaceStatusSinceKey);
      expect(onlineSince).toBeInstanceOf(Date);
      expect(first.status).toBe('online');

      // Stopped behind its back: offline, restarted at generation 2, one restart in the streak.
      await handle.signal(agentLivenessSignal, {
        generation: 1,
        reachable: false,
        resourceStatus: 'stopped',
      });
      await until(h, handle, settledAt('online', 2), 'online at generation 2');
      attrs = (await handle.describe()).typedSearchAttributes;
      expect(attrs.get(WorkspaceRestartsKey)).toBe(1);
      expect(attrs.get(WorkspaceStatusSinceKey)!.getTime()).toBeGreaterThan(onlineSince!.getTime());

      await handle.executeUpdate(deleteUpdate);
      await until(h, handle, (s) => s.status === 'deleted', 'deleted');
      await handle.result();
      await replayAndRecord(handle, 'status-search-attributes');
    });
  });
});
