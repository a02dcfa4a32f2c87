/**
 * The workflow code as the tests' own workers and replays run it: bundled without the outcome
 * interceptor, built by the first file that needs it and found by the others (src/worker/bundle.ts).
 */
import type { History } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { ensureBundle } from '../../src/worker/bundle.js';
import { workflowsPath } from '../../src/worker/index.js';
import { assertPatchesDecidedAtStart } from './patch-markers.js';

let bundle: Promise<{ codePath: string }> | undefined;

/** `{ codePath }` for Worker.create's and Worker.runReplayHistory's `workflowBundle` option. */
export const workflowBundle = () =>
  (bundle ??= ensureBundle(workflowsPath(), null).then((codePath) => ({ codePath })));

/**
 * Replays an entity run's history against the current code (determinism) and checks that the run
 * decided its patches in its first task (./patch-markers.ts).
 */
export async function expectEntityReplays(history: History, workflowId: string): Promise<void> {
  await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, workflowId);
  assertPatchesDecidedAtStart(history);
}
