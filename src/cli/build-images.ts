/**
 * Builds the workspace runtime image: the host's node binary + its shared libraries + busybox + the
 * bundled reference agent, on `FROM scratch` (no registry is reachable, so nothing can be pulled).
 *
 *   npx tsx src/cli/build-images.ts           → builds if needed, prints the tag
 *   npx tsx src/cli/build-images.ts --prune   → also removes older wo-runtime images no container uses
 *   npx tsx src/cli/build-images.ts service   → the service image instead (src/cli/service-image.ts)
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { build } from 'esbuild';
import tar from 'tar-stream';

const run = promisify(execFile);

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DATA_DIR = join(REPO_ROOT, '.data');
const CONTEXT_DIR = join(DATA_DIR, 'build', 'runtime');
const LOCK_PATH = join(DATA_DIR, 'build', 'runtime.lock');
const TAG_FILE = join(DATA_DIR, 'runtime-image');
const AGENT_ENTRY = join(REPO_ROOT, 'src', 'agent', 'main.ts');

// The node that runs the build (Node 24 from ./dev's .tools) goes into the image as /usr/bin/node, so
// the agent runs on the same release as the service.
const NODE_BINARY = process.execPath;
const IMAGE_NODE_PATH = '/usr/bin/node';
const BUSYBOX = '/bin/busybox';
export const RUNTIME_REPOSITORY = 'wo-runtime';

/**
 * Part of the tag hash. The leading comment carries a layout version: bump it when the context
 * layout (files outside the agent bundle) changes, so a stale image is never reused. No
 * wo.managed-by label here: containers inherit image labels, and only the backend may mark a
 * container as managed (the orphan sweep deletes what carries it).
 */
const DOCKERFILE = `# workspace-orchestrator runtime image, context layout v2
FROM scratch
COPY . /
ENV PATH=/usr/local/bin:/usr/bin:/bin
LABEL wo.image=runtime
WORKDIR /workspace
EXPOSE 8080
ENTRYPOINT ["/usr/bin/node", "/opt/agent/agent.mjs"]
`;

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
const GROUP = 'root:x:0:\nnobody:x:65534:\n';
// glibc resolves host.docker.internal (an /etc/hosts entry docker writes) only if files come first.
const NSSWITCH = 'passwd: files\ngroup: files\nhosts: files dns\n';

export interface EnsureRuntimeImageOptions {
  docker?: Dockerode;
  log?: (line: string) => void;
}

/** Bundles the agent into one self-contained ES module (Node built-ins stay external). */
export async function bundleAgent(): Promise<Buffer> {
  const result = await build({
    entryPoints: [AGENT_ENTRY],
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    write: false,
    logLevel: 'silent',
    // CJS dependencies bundled into ESM may still call require() for built-ins.
    banner: {
      js: "import { createRequire as __woCreateRequire } from 'node:module';\nconst require = __woCreateRequire(import.meta.url);",
    },
  });
  const out = result.outputFiles[0];
  if (!out) throw new Error('esbuild produced no output for the agent bundle');
  return Buffer.from(out.contents);
}

/** Every file `ldd` says node loads, including the dynamic loader (vdso is virtual: skipped). */
export async function nodeLibraries(): Promise<string[]> {
  return sharedLibraries(NODE_BINARY);
}

/** Every file `ldd` says `file` (an executable or a native addon) loads. */
export async function sharedLibraries(file: string): Promise<string[]> {
  const { stdout } = await run('ldd', [file]);
  const libs = new Set<string>();
  for (const line of stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.add(m[1]);
  }
  if (libs.size === 0) throw new Error(`ldd ${file} listed no libraries:\n${stdout}`);
  return [...libs].sort();
}

export async function copyKeepingPath(source: string, contextDir: string, imagePath = source): Promise<void> {
  const target = join(contextDir, imagePath);
  await mkdir(dirname(target), { recursive: true });
  // copyFile follows symlinks (like cp -L): the image gets the real file at the listed path.
  await copyFile(source, target);
  await chmod(target, 0o755);
}

async function assembleContext(contextDir: string, agent: Buffer): Promise<void> {
  await rm(contextDir, { recursive: true, force: true });
  await mkdir(contextDir, { recursive: true });

  await copyKeepingPath(NODE_BINARY, contextDir, IMAGE_NODE_PATH);
  for (const lib of await nodeLibraries()) await copyKeepingPath(lib, contextDir);

  await copyKeepingPath(BUSYBOX, contextDir);
  const { stdout } = await run(BUSYBOX, ['--list']);
  for (const applet of stdout.split('\n').map((s) => s.trim())) {
    if (applet === '' || applet === 'busybox' || applet.includes('/')) continue;
    const link = join(contextDir, 'bin', applet);
    if (!existsSync(link)) await symlink('busybox', link);
  }

  await mkdir(join(contextDir, 'etc'), { recursive: true });
  await writeFile(join(contextDir, 'etc', 'passwd'), PASSWD, { mode: 0o644 });
  await writeFile(join(contextDir, 'etc', 'group'), GROUP, { mode: 0o644 });
  await writeFile(join(contextDir, 'etc', 'nsswitch.conf'), NSSWITCH, { mode: 0o644 });
  for (const dir of ['configs', 'workspace', 'root', 'usr/local/bin']) {
    await mkdir(join(contextDir, dir), { recursive: true, mode: 0o755 });
  }
  await mkdir(join(contextDir, 'tmp'));
  await chmod(join(contextDir, 'tmp'), 0o1777);
  // The agent's private state (bundle, secrets): root-only, outside the files API's roots.
  await mkdir(join(contextDir, 'var', 'lib', 'wo'), { recursive: true });
  await chmod(join(contextDir, 'var', 'lib', 'wo'), 0o700);

  await mkdir(join(contextDir, 'opt', 'agent'), { recursive: true });
  await writeFile(join(contextDir, 'opt', 'agent', 'agent.mjs'), agent, { mode: 0o644 });
  await writeFile(join(contextDir, 'Dockerfile'), DOCKERFILE);
  await writeFile(join(contextDir, '.dockerignore'), 'Dockerfile\n.dockerignore\n');
}

/** Tars the context folder (modes kept, symlinks as symlinks) into the stream docker builds from. */
export function packContext(contextDir: string): tar.Pack {
  const pack = tar.pack();
  const walk = async (rel: string): Promise<void> => {
    const entries = (await readdir(join(contextDir, rel))).sort();
    for (const name of entries) {
      const relPath = rel === '' ? name : `${rel}/${name}`;
      const abs = join(contextDir, relPath);
      const st = await lstat(abs);
      const base = { name: relPath, mode: st.mode & 0o7777, mtime: st.mtime, uid: 0, gid: 0 };
      if (st.isSymbolicLink()) {
        pack.entry({ ...base, type: 'symlink', linkname: await readlink(abs) });
      } else if (st.isDirectory()) {
        pack.entry({ ...base, type: 'directory' });
        await walk(relPath);
      } else if (st.isFile()) {
        const sink = pack.entry({ ...base, type: 'file', size: st.size });
        await pipeline(createReadStream(abs), sink);
      }
    }
  };
  walk('').then(
    () => pack.finalize(),
    (err: unknown) => pack.destroy(err instanceof Error ? err : new Error(String(err))),
  );
  return pack;
}

/** Sends a tar context, follows the progress stream, and rejects with the daemon's build error. */
export async function buildImage(
  docker: Dockerode,
  context: tar.Pack,
  tag: string,
  log: (s: string) => void,
  buildargs?: Record<string, string>,
): Promise<void> {
  // @types/tar-stream's Pack lacks a few legacy Readable members in its typings; it is a real Readable.
  const stream = await docker.buildImage(context as unknown as NodeJS.ReadableStream, {
    t: tag,
    rm: true,
    forcerm: true,
    ...(buildargs ? { buildargs } : {}),
  });
  await new Promise<void>((resolvePromise, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, output: Array<{ error?: string; errorDetail?: { message?: string } }>) => {
        if (err) return reject(err);
        const failure = output.find((e) => e.error);
        if (failure) {
          reject(
            new Error(`docker build of ${tag} failed: ${failure.errorDetail?.message ?? failure.error}`),
          );
        } else resolvePromise();
      },
      (event: { stream?: string }) => {
        if (event.stream?.trim()) log(event.stream.trim());
      },
    );
  });
}

export async function imageExists(docker: Dockerode, tag: string): Promise<boolean> {
  try {
    await docker.getImage(tag).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Cross-process lock around assembling `.data/build/runtime/`: test files run in parallel workers,
 * and two builders sharing one context folder would clobber each other. A lock left by a dead
 * process is taken over.
 */
async function withBuildLock<T>(fn: () => Promise<T>, lockPath: string): Promise<T> {
  await mkdir(dirname(lockPath), { recursive: true });
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
      const ageMs = Date.now() - ((await stat(lockPath).catch(() => null))?.mtimeMs ?? Date.now());
      // Dead holder, or a holder that died between creating the file and writing its pid.
      const stale = Number.isInteger(holder) && holder > 0 ? !pidAlive(holder) : ageMs > 30_000;
      if (stale) {
        await unlink(lockPath).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for build lock ${lockPath}`, { cause: err });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => undefined);
  }
}

const inProcess = new Map<string, Promise<string>>();

export interface EnsureImageSpec {
  docker: Dockerode;
  /** Content-addressed: an image with this tag is what `build` would make. */
  tag: string;
  /** Builds the image under the cross-process lock (see withBuildLock). */
  build: () => Promise<void>;
  lockPath: string;
  /** Where the tag is recorded for ./dev and the service (one line). */
  tagFile: string;
  log: (line: string) => void;
}

/**
 * Returns `spec.tag` once an image with it exists, running `build` first when none does. One build
 * per tag per process, and one at a time across processes.
 */
export function ensureImage(spec: EnsureImageSpec): Promise<string> {
  const { docker, tag, log } = spec;
  let pending = inProcess.get(tag);
  if (!pending) {
    pending = (async () => {
      if (!(await imageExists(docker, tag))) {
        await withBuildLock(async () => {
          // Another process may have built it while this one waited for the lock.
          if (await imageExists(docker, tag)) return;
          const started = Date.now();
          await spec.build();
          if (!(await imageExists(docker, tag)))
            throw new Error(`docker build reported success but ${tag} is missing`);
          log(`built ${tag} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
        }, spec.lockPath);
      } else {
        log(`${tag} already exists, not rebuilding`);
      }
      await mkdir(dirname(spec.tagFile), { recursive: true });
      await writeFile(spec.tagFile, `${tag}\n`);
      return tag;
    })();
    inProcess.set(tag, pending);
    // A failed build must not be cached: the next call retries.
    pending.catch(() => inProcess.delete(tag));
  }
  return pending;
}

/**
 * Returns the runtime image tag, building it first when no image with that tag exists. The tag is
 * content-addressed (agent bundle + Dockerfile + node version), so an unchanged agent never rebuilds.
 */
export async function ensureRuntimeImage(opts: EnsureRuntimeImageOptions = {}): Promise<string> {
  const docker = opts.docker ?? new Dockerode();
  const log = opts.log ?? (() => undefined);
  if (!existsSync(BUSYBOX)) {
    throw new Error(`${BUSYBOX} is missing: run \`apt-get install busybox-static\` (./dev does this)`);
  }
  const agent = await bundleAgent();
  const { stdout: nodeVersion } = await run(NODE_BINARY, ['--version']);
  const digest = createHash('sha256')
    .update(agent)
    .update(DOCKERFILE)
    .update(nodeVersion.trim())
    .digest('hex');
  const tag = `${RUNTIME_REPOSITORY}:${digest.slice(0, 12)}`;
  return ensureImage({
    docker,
    tag,
    log,
    lockPath: LOCK_PATH,
    tagFile: TAG_FILE,
    build: async () => {
      log(`building ${tag} (node ${nodeVersion.trim()}) in ${CONTEXT_DIR}`);
      await assembleContext(CONTEXT_DIR, agent);
      await buildImage(docker, packContext(CONTEXT_DIR), tag, log);
    },
  });
}

/**
 * Removes the images of `keep`'s repository (`wo-runtime:*` or `wo-service:*`) other than `keep`.
 * Never forced: the daemon refuses to delete an image a container still uses, and such images are
 * skipped. Opt-in (`--prune`), because a test run started before a source edit may still be about
 * to use the previous tag.
 */
export async function pruneImages(docker: Dockerode, keep: string, log: (s: string) => void): Promise<void> {
  const repository = keep.slice(0, keep.lastIndexOf(':'));
  const images = await docker.listImages({ filters: { reference: [`${repository}:*`] } });
  for (const image of images) {
    const tags = (image.RepoTags ?? []).filter((t) => t.startsWith(`${repository}:`));
    if (tags.includes(keep)) continue;
    for (const tag of tags) {
      try {
        await docker.getImage(tag).remove();
        log(`removed ${tag}`);
      } catch (err) {
        log(`kept ${tag}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const docker = new Dockerode();
  // Imported lazily: service-image.ts imports this module, and a static cycle would reach its
  // constants before they are initialised.
  const ensure = process.argv.includes('service')
    ? import('./service-image.js').then((m) => m.ensureServiceImage({ docker, log }))
    : ensureRuntimeImage({ docker, log });
  ensure
    .then(async (tag) => {
      if (process.argv.includes('--prune')) await pruneImages(docker, tag, log);
      return tag;
    })
    .then(
      (tag) => process.stdout.write(`${tag}\n`),
      (err: unknown) => {
        process.stderr.write(`build-images: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
}
