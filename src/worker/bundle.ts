/**
 * The workflow bundle, built once (`npm run build:workflows`, and by the service image build)
 * instead of by webpack at every worker start (seconds of CPU per start, per replica).
 *
 * A bundle is keyed by a hash of what it is made of: every file under the workflows directory the
 * worker would bundle, the outcome interceptor, and the SDK version. A worker computes that hash
 * from its own files and uses `<dir>/workflows-<hash>.js` only when it exists, so a stale bundle
 * (sources edited since) is never run: the worker bundles at start, as before.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, type Logger } from '@temporalio/worker';

/** Where bundles go and are looked for: dist/workflow-bundles (the repo's, or the image's /app/dist). */
export const DEFAULT_BUNDLE_DIR = fileURLToPath(new URL('../../dist/workflow-bundles', import.meta.url));

function sdkVersion(): string {
  const require = createRequire(import.meta.url);
  return (require('@temporalio/worker/package.json') as { version: string }).version;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|js)$/.test(e.name) && !e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/**
 * The key of the bundle made from `workflowsPath` (the entry module) and `interceptorPath` (null:
 * a bundle without one, as the workflow tests' workers run).
 */
export function bundleHash(workflowsPath: string, interceptorPath: string | null): string {
  const root = dirname(workflowsPath);
  const h = createHash('sha256').update(`sdk ${sdkVersion()}\n`);
  if (interceptorPath === null) h.update('no interceptor\n');
  for (const file of [...filesUnder(root), ...(interceptorPath === null ? [] : [interceptorPath])]) {
    h.update(`${relative(root, file)}\n`)
      .update(readFileSync(file))
      .update('\n');
  }
  return h.digest('hex').slice(0, 16);
}

export function bundleFile(dir: string, hash: string): string {
  return join(dir, `workflows-${hash}.js`);
}

/** The prebuilt bundle for these sources, or null when none was built for them. */
export function findBundle(
  workflowsPath: string,
  interceptorPath: string | null,
  dir = DEFAULT_BUNDLE_DIR,
): string | null {
  if (!existsSync(dir)) return null;
  const file = bundleFile(dir, bundleHash(workflowsPath, interceptorPath));
  return existsSync(file) ? file : null;
}

/** Bundles the workflows (with the interceptor, if any) into `dir`; answers the file written. */
export async function buildBundle(
  workflowsPath: string,
  interceptorPath: string | null,
  dir = DEFAULT_BUNDLE_DIR,
  logger?: Logger,
): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    workflowInterceptorModules: interceptorPath === null ? [] : [interceptorPath],
    ...(logger ? { logger } : {}),
  });
  await mkdir(dir, { recursive: true });
  const file = bundleFile(dir, bundleHash(workflowsPath, interceptorPath));
  // Written whole, then renamed: a worker starting meanwhile never reads half a bundle.
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, code);
  await rename(tmp, file);
  return file;
}

/**
 * The bundle for these sources: the one built before, or one built now, without webpack's progress
 * lines (a failed build still rejects with its errors). Tests use it so that each of a run's worker
 * starts does not run webpack again (about 3 s of CPU each).
 */
export async function ensureBundle(
  workflowsPath: string,
  interceptorPath: string | null,
  dir = DEFAULT_BUNDLE_DIR,
): Promise<string> {
  return (
    findBundle(workflowsPath, interceptorPath, dir) ?? buildBundle(workflowsPath, interceptorPath, dir, QUIET)
  );
}

const QUIET: Logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };
