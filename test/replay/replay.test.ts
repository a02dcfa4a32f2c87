/**
 * Replays recorded entity-workflow histories against the current workflow code: a change that
 * would break a running workspace's workflow (non-determinism) fails here, not in production.
 * Recorded by `RECORD_REPLAY=1` runs of test/parity/lifecycle.test.ts (`<backend>-lifecycle`) and
 * test/workflow/entity.test.ts (`wf-*`: failure, delete, offline/degraded start, continue-as-new
 * branches); `pre-wf-*` came from the code before the failure-semantics change and replays only
 * through its `patched()` gates; `pre-org-delete-wait-ran-out` is an org cascade recorded by the
 * code before it waited for every workspace (its `patched()` gate keeps that run's end as it was), and
 * `pre-org-delete-{first,last}-sweep-failed` cascades that the code before
 * `org-delete-sweeps-until-done` failed when a sweep by org failed; `pre-orphan-sweep-org-cascades`
 * is an orphan sweep from before it started lost org cascades, `pre-orphan-sweep-history-retention` one
 * from before it deleted old workspace history (these four recorded with fake activities, as in
 * test/workflow/sweeps.test.ts);
 * `wf-ui-story` (test/workflow/ui-story.test.ts) has summaries on its activities and timers;
 * `wf-local-db-steps` is the same story recorded with the DB steps as local activities;
 * `wf-auto-restart-failed` and `wf-stop-failed` are from before the restart policy's give-up tore
 * its generation down and a refused stop was retried (`wf-auto-restart-give-up*`, `wf-stop-retr*`
 * after); `wf-serial-local-steps` (a config save, when it was a local activity) and
 * `wf-serial-local-steps-policy` have an Update's database step and the main loop's met in one task,
 * run one after the other; `wf-config-save-after-acceptance` saves config as a regular activity;
 * `wf-update-answer-time` has Updates accepted and then failed `Expired` (apply-after-acceptance);
 * `wf-check-task-writes-nothing` runs the first DB step after that check as a regular activity;
 * `wf-queued-save-rechecks` has a config save refused `Expired` when its turn came; in
 * `wf-start-after-pending-stop` a start accepted before a stop began comes after that stop;
 * `wf-patches-decided-at-start` is the first run to decide every patch in its first task (one
 * marker), so every history before it decides each patch where it is used.
 * Add new ones; never overwrite a history older code recorded.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { patchMarkers } from '../support/patch-markers.js';
import { REPO_ROOT } from '../support/stack.js';
import { workflowBundle } from '../support/workflow-bundle.js';

const dir = path.join(REPO_ROOT, 'test/replay/histories');

describe('recorded histories replay', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

  it('has recorded histories', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  it('tells a run that decided its patches in its first task from one that decided them as it went', () => {
    const markersOf = (name: string) =>
      patchMarkers(historyFromJSON(JSON.parse(readFileSync(path.join(dir, `${name}.json`), 'utf8'))));
    expect(markersOf('wf-patches-decided-at-start')).toEqual([
      { patchId: 'patches-decided-at-start', firstTask: true },
    ]);
    // The same give-up recorded before: its patches decided in later tasks, where first used.
    const before = markersOf('wf-auto-restart-give-up');
    expect(before.map((m) => m.patchId)).toContain('auto-restart-give-up-removes-generation');
    expect(before.some((m) => !m.firstTask)).toBe(true);
    expect(before.map((m) => m.patchId)).not.toContain('patches-decided-at-start');
  });

  it('replays every recorded history without non-determinism', async () => {
    const histories = files.map((f) => ({
      workflowId: path.basename(f, '.json'),
      history: JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as unknown,
    }));
    const results = [];
    for await (const r of Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, histories))
      results.push(r);
    expect(results).toHaveLength(files.length);
    for (const r of results) expect(r.error, r.workflowId).toBeUndefined();
  });
});
