/**
 * Builds the workflow bundle once, so workers start without running webpack:
 *
 *   npm run build:workflows            (= npx tsx src/cli/build-workflows.ts [--out-dir DIR])
 *
 * Writes dist/workflow-bundles/workflows-<hash>.js (see src/worker/bundle.ts); a worker whose
 * sources hash the same uses it, any other bundles at start as before.
 */
import { parseArgs } from 'node:util';
import { buildBundle, DEFAULT_BUNDLE_DIR } from '../worker/bundle.js';
import { OUTCOME_INTERCEPTOR, workflowsPath } from '../worker/index.js';

const { values } = parseArgs({ options: { 'out-dir': { type: 'string', default: DEFAULT_BUNDLE_DIR } } });
const file = await buildBundle(workflowsPath(), OUTCOME_INTERCEPTOR, values['out-dir']);
console.log(file);
