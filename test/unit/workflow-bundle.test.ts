/** The prebuilt workflow bundle is used only for the sources it was built from. */
import { mkdtemp, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bundleFile, bundleHash, ensureBundle, findBundle } from '../../src/worker/bundle.js';
import { OUTCOME_INTERCEPTOR, workflowsPath } from '../../src/worker/index.js';

describe('workflow bundle lookup', () => {
  let dir: string;
  let entry: string;
  let interceptor: string;
  let bundles: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(os.tmpdir(), 'wo-bundle-'));
    await mkdir(join(dir, 'workflows', 'workspace'), { recursive: true });
    entry = join(dir, 'workflows', 'index.js');
    interceptor = join(dir, 'outcome-interceptor.js');
    bundles = join(dir, 'bundles');
    await writeFile(entry, "export { w } from './workspace/w.js';\n");
    await writeFile(join(dir, 'workflows', 'workspace', 'w.js'), 'export async function w() {}\n');
    await writeFile(interceptor, 'export const interceptors = () => ({});\n');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('finds no bundle when none was built', () => {
    expect(findBundle(entry, interceptor, bundles)).toBeNull();
  });

  it('finds the bundle built for exactly these sources', async () => {
    const file = bundleFile(bundles, bundleHash(entry, interceptor));
    await mkdir(bundles);
    await writeFile(file, '// bundle');
    expect(findBundle(entry, interceptor, bundles)).toBe(file);
  });

  it('ignores a bundle once a workflow module (even a nested one) or the interceptor changed', async () => {
    await mkdir(bundles);
    await writeFile(bundleFile(bundles, bundleHash(entry, interceptor)), '// bundle');
    await writeFile(join(dir, 'workflows', 'workspace', 'w.js'), 'export async function w() { return 1; }\n');
    expect(findBundle(entry, interceptor, bundles)).toBeNull();

    await writeFile(bundleFile(bundles, bundleHash(entry, interceptor)), '// bundle');
    await writeFile(interceptor, 'export const interceptors = () => ({ inbound: [] });\n');
    expect(findBundle(entry, interceptor, bundles)).toBeNull();
  });

  it('ignores files that are not modules (source maps, declarations)', async () => {
    const before = bundleHash(entry, interceptor);
    await writeFile(join(dir, 'workflows', 'index.js.map'), '{}');
    await writeFile(join(dir, 'workflows', 'index.d.ts'), 'export {};');
    expect(bundleHash(entry, interceptor)).toBe(before);
  });
});

describe('ensureBundle (the real workflows, as the tests and their services use them)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(os.tmpdir(), 'wo-bundle-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('builds once, then finds the same file; with and without the interceptor are two bundles', async () => {
    expect(findBundle(workflowsPath(), null, dir)).toBeNull();
    const built = await ensureBundle(workflowsPath(), null, dir);
    const writtenAt = (await stat(built)).mtimeMs;

    expect(await ensureBundle(workflowsPath(), null, dir)).toBe(built);
    expect((await stat(built)).mtimeMs).toBe(writtenAt);
    expect(await readdir(dir)).toEqual([basename(built)]);

    expect(bundleHash(workflowsPath(), OUTCOME_INTERCEPTOR)).not.toBe(bundleHash(workflowsPath(), null));
    expect(findBundle(workflowsPath(), OUTCOME_INTERCEPTOR, dir)).toBeNull();
  });
});
