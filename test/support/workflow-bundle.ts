/**
 * The workflow code as the tests' own workers and replays run it: bundled without the outcome
 * interceptor, built by the first file that needs it and found by the others (src/worker/bundle.ts).
 */
import { ensureBundle } from '../../src/worker/bundle.js';
import { workflowsPath } from '../../src/worker/index.js';

let bundle: Promise<{ codePath: string }> | undefined;

/** `{ codePath }` for Worker.create's and Worker.runReplayHistory's `workflowBundle` option. */
export const workflowBundle = () =>
  (bundle ??= ensureBundle(workflowsPath(), null).then((codePath) => ({ codePath })));
