/**
 * Builds the service image (API + worker), FROM scratch like the runtime image (build-images.ts):
 * no registry is reachable, so the root filesystem is assembled here and sent as build contexts.
 * Two images, so that an edit under src/ does not resend ~400 MB of node_modules to the daemon:
 *
 *   wo-service-base:<hash>  Dockerfile.base: node + shared libraries + production node_modules
 *                           (hash: lockfile, node version, Dockerfile.base)
 *   wo-service:<hash>       Dockerfile: FROM the base + the compiled application
 *                           (hash: base tag, Dockerfile, src/, templates/, plugins/, package/tsconfig)
 *
 *   npx tsx src/cli/build-images.ts service [--prune]   → builds what is missing, prints the tag
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, constants as fsConstants } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import {
  buildImage,
  DATA_DIR,
  REPO_ROOT,
  copyKeepingPath,
  ensureImage,
  imageExists,
  packContext,
  sharedLibraries,
} from './build-images.js';
import { buildBundle } from '../worker/bundle.js';

const run = promisify(execFile);

const CONTEXT_DIR = join(DATA_DIR, 'build', 'service');
const BASE_CONTEXT_DIR = join(DATA_DIR, 'build', 'service-base');
const LOCK_PATH = join(DATA_DIR, 'build', 'service.lock');
const TAG_FILE = join(DATA_DIR, 'service-image');
export const DOCKERFILE_PATH = join(REPO_ROOT, 'Dockerfile');
export const BASE_DOCKERFILE_PATH = join(REPO_ROOT, 'Dockerfile.base');
export const SERVICE_REPOSITORY = 'wo-service';
export const BASE_REPOSITORY = 'wo-service-base';
/** The image's user (Dockerfile USER): not root, no login. */
export const SERVICE_UID = 10001;

const NODE_BINARY = process.execPath;
/** Bump when the context layout changes in a way the hashed inputs do not show. */
const LAYOUT_VERSION = 'service context v1';

/** What goes into /app besides dist/: read at run time relative to the working directory. */
const APP_FOLDERS = ['templates', 'plugins'];
/** Hashed with src/ and APP_FOLDERS: the inputs of `tsc -p tsconfig.build.json` and of the context. */
const APP_HASHED_FILES = ['Dockerfile', 'package.json', 'tsconfig.json', 'tsconfig.build.json'];
/** Typings, source maps and docs: nothing the service reads at run time (a third of the files). */
const DROPPED_FROM_PACKAGES = /\.(d\.[mc]?ts|map|md)$/;

const PASSWD = `root:x:0:0:root:/root:/bin/false\nwo:x:${SERVICE_UID}:${SERVICE_UID}:workspace-orchestrator:/var/lib/wo:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n`;
const GROUP = `root:x:0:\nwo:x:${SERVICE_UID}:\nnobody:x:65534:\n`;
const NSSWITCH = 'passwd: files\ngroup: files\nhosts: files dns\n';

export interface EnsureServiceImageOptions {
  docker?: Dockerode;
  log?: (line: string) => void;
}

interface LockPackage {
  dev?: boolean;
  /** Optional dependencies: kept, when installed (other platforms' builds are not). */
  optional?: boolean;
  devOptional?: boolean;
}

/**
 * node_modules folders of the production dependency closure, from package-lock.json (v2/v3 mark
 * dev-only entries `dev: true`). Optional packages for other platforms were never installed and
 * are skipped. Nested node_modules are entries of their own.
 */
export function productionPackages(lock: { packages?: Record<string, LockPackage> }): string[] {
  return Object.entries(lock.packages ?? {})
    .filter(([path, meta]) => path.startsWith('node_modules/') && meta.dev !== true)
    .map(([path]) => path)
    .sort();
}

/** The Temporal core bridge ships prebuilt addons for five platforms; the image needs one. */
export function hostRustTriple(arch = process.arch): string {
  if (arch === 'x64') return 'x86_64-unknown-linux-gnu';
  if (arch === 'arm64') return 'aarch64-unknown-linux-gnu';
  throw new Error(`no Temporal core bridge build for linux/${arch}`);
}

/** Files of one package folder to leave out of the image (relative to the package). */
function skipInPackage(pkg: string, rel: string): boolean {
  if (rel === 'node_modules' || rel === '.bin') return true; // nested packages are separate entries
  if (DROPPED_FROM_PACKAGES.test(rel)) return true;
  if (pkg.endsWith('/@temporalio/core-bridge') && rel.startsWith('releases/')) {
    const [, triple] = rel.split('/');
    return triple !== undefined && triple !== hostRustTriple();
  }
  return false;
}

/** Copies a tree (symlinks followed, modes kept) except what `skip` rejects; returns the files. */
async function copyTree(
  from: string,
  to: string,
  skip: (rel: string) => boolean = () => false,
  rel = '',
): Promise<string[]> {
  const copied: string[] = [];
  await mkdir(join(to, rel), { recursive: true });
  for (const entry of await readdir(join(from, rel), { withFileTypes: true })) {
    const childRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (skip(childRel)) continue;
    if (entry.isDirectory()) {
      copied.push(...(await copyTree(from, to, skip, childRel)));
    } else if (entry.isFile()) {
      // FICLONE: a reflink where the filesystem offers one, a plain copy otherwise.
      await copyFile(join(from, childRel), join(to, childRel), fsConstants.COPYFILE_FICLONE);
      copied.push(join(to, childRel));
    } else if (entry.isSymbolicLink()) {
      // Inside packages these point at files of the same package: copy what they point at.
      await copyFile(join(from, childRel), join(to, childRel)).catch(() => undefined);
    }
  }
  return copied;
}

/** Every file under `dir` (relative paths, sorted), for hashing. */
async function listFiles(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(join(dir, rel), { withFileTypes: true }).catch(() => []);
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const childRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await listFiles(dir, childRel)));
    else if (entry.isFile()) out.push(childRel);
  }
  return out;
}

async function digestOf(parts: Array<string | Buffer>, files: string[]): Promise<string> {
  const hash = createHash('sha256').update(LAYOUT_VERSION);
  for (const part of parts) hash.update('\0').update(part);
  for (const path of files) {
    hash.update(`\0${relative(REPO_ROOT, path)}\0`);
    hash.update(await readFile(path));
  }
  return hash.digest('hex').slice(0, 12);
}

/** The base image's tag: what decides node_modules and the root filesystem. */
export async function baseImageTag(nodeVersion: string): Promise<string> {
  const files = [BASE_DOCKERFILE_PATH, join(REPO_ROOT, 'package-lock.json')];
  return `${BASE_REPOSITORY}:${await digestOf([nodeVersion, process.arch], files)}`;
}

/** The service image's tag: its base, and every input of the application layer. */
export async function serviceImageTag(baseTag: string): Promise<string> {
  const files = APP_HASHED_FILES.map((f) => join(REPO_ROOT, f));
  for (const folder of ['src', ...APP_FOLDERS]) {
    for (const rel of await listFiles(join(REPO_ROOT, folder))) files.push(join(REPO_ROOT, folder, rel));
  }
  return `${SERVICE_REPOSITORY}:${await digestOf([baseTag], files)}`;
}

/** .data/build/service-base/: rootfs/, state/, node_modules/ (see Dockerfile.base). */
async function assembleBaseContext(contextDir: string, log: (line: string) => void): Promise<void> {
  await rm(contextDir, { recursive: true, force: true });
  const rootfs = join(contextDir, 'rootfs');
  await mkdir(contextDir, { recursive: true });

  const lock = JSON.parse(await readFile(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
    packages?: Record<string, LockPackage>;
  };
  const addons: string[] = [];
  let packages = 0;
  for (const pkg of productionPackages(lock)) {
    const source = join(REPO_ROOT, pkg);
    if (!existsSync(source)) continue; // an optional package for another platform
    const files = await copyTree(source, join(contextDir, pkg), (rel) => skipInPackage(pkg, rel));
    packages += 1;
    addons.push(...files.filter((f) => f.endsWith('.node')));
  }
  log(`base context: ${packages} production packages, ${addons.length} native addons`);

  // The root filesystem: node, and every shared library node or a native addon loads.
  await copyKeepingPath(NODE_BINARY, rootfs, '/usr/bin/node');
  const libraries = new Set(await sharedLibraries(NODE_BINARY));
  for (const addon of addons) for (const lib of await sharedLibraries(addon)) libraries.add(lib);
  for (const lib of [...libraries].sort()) await copyKeepingPath(lib, rootfs);
  await mkdir(join(rootfs, 'etc'), { recursive: true });
  await writeFile(join(rootfs, 'etc', 'passwd'), PASSWD, { mode: 0o644 });
  await writeFile(join(rootfs, 'etc', 'group'), GROUP, { mode: 0o644 });
  await writeFile(join(rootfs, 'etc', 'nsswitch.conf'), NSSWITCH, { mode: 0o644 });
  await mkdir(join(rootfs, 'tmp'));
  await chmod(join(rootfs, 'tmp'), 0o1777);
  // /var/lib/wo: DATA_DIR, the one place the service may write (embedded PGlite when no DATABASE_URL).
  await mkdir(join(contextDir, 'state'));

  await copyFile(BASE_DOCKERFILE_PATH, join(contextDir, 'Dockerfile'));
  await writeFile(join(contextDir, '.dockerignore'), 'Dockerfile\n.dockerignore\n');
}

/** .data/build/service/: app/ = package.json, dist/ (tsc + non-TS assets of src/), templates/, plugins/. */
async function assembleAppContext(contextDir: string): Promise<void> {
  await rm(contextDir, { recursive: true, force: true });
  const app = join(contextDir, 'app');
  await mkdir(app, { recursive: true });
  // dist/: the settings of `npm run build`, into the context instead of ./dist.
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await run(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', join(app, 'dist')], {
    cwd: REPO_ROOT,
    maxBuffer: 16 * 1024 * 1024,
  }).catch((err: { stdout?: string; message: string }) => {
    throw new Error(`tsc -p tsconfig.build.json failed: ${err.stdout?.trim() || err.message}`);
  });
  // tsc emits only .js: migrations (*.sql) and any other non-TS asset under src/ go next to them.
  await copyTree(join(REPO_ROOT, 'src'), join(app, 'dist'), (rel) => rel.endsWith('.ts'));
  // The workflow bundle, from the emitted .js (the files the image's worker hashes to find it).
  await buildBundle(
    join(app, 'dist', 'workflows', 'index.js'),
    join(app, 'dist', 'worker', 'outcome-interceptor.js'),
    join(app, 'dist', 'workflow-bundles'),
  );
  for (const folder of APP_FOLDERS) await copyTree(join(REPO_ROOT, folder), join(app, folder));
  await copyFile(join(REPO_ROOT, 'package.json'), join(app, 'package.json')); // "type": "module"
  await copyFile(DOCKERFILE_PATH, join(contextDir, 'Dockerfile'));
  await writeFile(join(contextDir, '.dockerignore'), 'Dockerfile\n.dockerignore\n');
}

/**
 * Returns the service image tag, building the base and/or the service image first when no image
 * with that tag exists.
 */
export async function ensureServiceImage(opts: EnsureServiceImageOptions = {}): Promise<string> {
  const docker = opts.docker ?? new Dockerode();
  const log = opts.log ?? (() => undefined);
  const { stdout } = await run(NODE_BINARY, ['--version']);
  const nodeVersion = stdout.trim();
  const baseTag = await baseImageTag(nodeVersion);
  const tag = await serviceImageTag(baseTag);
  return ensureImage({
    docker,
    tag,
    log,
    lockPath: LOCK_PATH,
    tagFile: TAG_FILE,
    build: async () => {
      if (!(await imageExists(docker, baseTag))) {
        log(`building ${baseTag} (node ${nodeVersion}) in ${BASE_CONTEXT_DIR}`);
        await assembleBaseContext(BASE_CONTEXT_DIR, log);
        await buildImage(docker, packContext(BASE_CONTEXT_DIR), baseTag, log);
        // ~400 MB of copies the image now holds; the next base build assembles afresh anyway.
        await rm(BASE_CONTEXT_DIR, { recursive: true, force: true });
      }
      log(`building ${tag} on ${baseTag} in ${CONTEXT_DIR}`);
      await assembleAppContext(CONTEXT_DIR);
      await buildImage(docker, packContext(CONTEXT_DIR), tag, log, { BASE: baseTag });
    },
  });
}
