/**
 * The ec2-sim "VM" image: the runtime image (node + busybox + the agent) plus OpenSSH's sshd,
 * sftp-server and ssh-keygen, tini as PID 1, and the init (vm-init.ts bundled to /sbin/wo-init.mjs)
 * that plays cloud-init. Built `FROM wo-runtime:<tag>` (a local image: nothing is pulled).
 *
 * OpenSSH comes from Debian packages fetched with `apt-get download` (cached under
 * .data/cache/ec2-sim-debs) and unpacked with `dpkg -x` into a temp dir: nothing is installed on
 * the host. The shared libraries `ldd` lists that the runtime image lacks are copied from the host,
 * or from the package that ships them when the host has none (SONAME_PACKAGES).
 *
 * blkid, mkfs and mount shims in /usr/local/sbin (first on PATH) play the disk of an EBS volume the
 * sim staged (sim.ts): a "sim device" is a path resolving to /mnt/.sim-ebs/<vol-id> (a Docker
 * volume), whose filesystem is its `fs` directory (present = formatted); mounting it makes the mount
 * point a symlink to that directory, since a VM has no CAP_SYS_ADMIN. Any other device goes to the
 * real tool, if the image has one. The image's sh is busybox, which runs its own `mount` applet
 * whatever PATH says: the init defines the shims as shell functions (/usr/local/lib/ec2-sim/shims.sh)
 * before it runs the user-data.
 *
 * No host key is baked in: the init generates one per instance at first boot.
 * The build context is assembled in memory (no shared folder, so no cross-process lock needed) and
 * the tag is content-addressed: `wo-vm:<sha256 of the context, first 12 hex>`.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { build } from 'esbuild';
import tar from 'tar-stream';
import { buildImage, ensureRuntimeImage, imageExists, nodeLibraries } from '../../src/cli/build-images.js';

const run = promisify(execFile);

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(HERE, '../..');
const DEFAULT_CACHE_DIR = join(REPO_ROOT, '.data', 'cache', 'ec2-sim-debs');
const INIT_ENTRY = join(HERE, 'vm-init.ts');

export const VM_REPOSITORY = 'wo-vm';

/** Debian packages unpacked into the build (openssh-client only for ssh-keygen). */
const PACKAGES = ['openssh-server', 'openssh-sftp-server', 'openssh-client', 'libwrap0', 'tini'];

/** Files taken from the unpacked packages: package path → image path. */
const PACKAGE_FILES: Array<[string, string, number]> = [
  ['usr/sbin/sshd', '/usr/sbin/sshd', 0o755],
  ['usr/lib/openssh/sftp-server', '/usr/lib/openssh/sftp-server', 0o755],
  ['usr/bin/ssh-keygen', '/usr/bin/ssh-keygen', 0o755],
  ['usr/bin/tini-static', '/sbin/tini', 0o755],
  ['etc/ssh/moduli', '/etc/ssh/moduli', 0o644],
];
/** Binaries whose shared libraries must be present in the image. */
const DYNAMIC_BINARIES = ['usr/sbin/sshd', 'usr/lib/openssh/sftp-server', 'usr/bin/ssh-keygen'];

/**
 * Where to get a library `ldd` cannot find on the host (sshd's dependencies beyond a base Debian
 * system). Fetched with apt-get download like the rest; an unknown soname fails the build loudly.
 */
const SONAME_PACKAGES: Record<string, string> = {
  'libwrap.so.0': 'libwrap0',
  'libkrb5.so.3': 'libkrb5-3',
  'libgssapi_krb5.so.2': 'libgssapi-krb5-2',
  'libk5crypto.so.3': 'libk5crypto3',
  'libkrb5support.so.0': 'libkrb5support0',
  'libkeyutils.so.1': 'libkeyutils1',
  'libcom_err.so.2': 'libcom-err2',
  'libaudit.so.1': 'libaudit1',
  'libcap-ng.so.0': 'libcap-ng0',
  'libpam.so.0': 'libpam0g',
  'libsystemd.so.0': 'libsystemd0',
  'libselinux.so.1': 'libselinux1',
  'libpcre2-8.so.0': 'libpcre2-8-0',
  'libcrypt.so.1': 'libcrypt1',
  'libcrypto.so.3': 'libssl3',
  'libz.so.1': 'zlib1g',
  'liblzma.so.5': 'liblzma5',
  'libzstd.so.1': 'libzstd1',
  'liblz4.so.1': 'liblz4-1',
  'libcap.so.2': 'libcap2',
  'libgcrypt.so.20': 'libgcrypt20',
  'libgpg-error.so.0': 'libgpg-error0',
};

const DOCKERFILE = (runtimeImage: string): string => `# workspace-orchestrator ec2-sim VM image, layout v1
FROM ${runtimeImage}
COPY . /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL wo.image=ec2-sim-vm
WORKDIR /root
EXPOSE 22
ENTRYPOINT ["/sbin/tini", "-g", "--", "/usr/bin/node", "/sbin/wo-init.mjs"]
CMD []
`;

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'sshd:x:100:65534:sshd privilege separation:/run/sshd:/bin/false',
  'nobody:x:65534:65534:nobody:/nonexistent:/bin/false',
  '',
].join('\n');

const SSHD_CONFIG = `# ec2-sim VM: key-only root login, like an EC2 image's default user
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AuthorizedKeysFile .ssh/authorized_keys
UseDNS no
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
`;

/**
 * Prints the directory a sim device stands for (its volume's, under /mnt/.sim-ebs), or fails: the
 * opening of every shim below. An option (a leading '-') is never a device.
 */
const SIM_DEVICE_SH = `sim_dir() {
  case "$1" in -*|'') return 1 ;; esac
  r=$(readlink -f "$1" 2>/dev/null) || return 1
  case "$r" in /mnt/.sim-ebs/*/*) return 1 ;; /mnt/.sim-ebs/?*) ;; *) return 1 ;; esac
  [ -d "$r" ] || return 1
  printf '%s\\n' "$r"
}`;

/** `exec` the first of the real tools that exists, or say there is none. */
const execReal = (tool: string, paths: string[], code: number): string => `for real in ${paths.join(' ')}; do
  [ -x "$real" ] && exec "$real" "$@"
done
echo "${tool}: not installed in this VM image" >&2
exit ${code}`;

/** The shims: image path → POSIX sh script. */
const SHIMS: Record<string, string> = {
  '/usr/local/sbin/blkid': `#!/bin/sh
# ec2-sim: blkid of a sim device (see vm-image.ts): 0 and its TYPE when formatted, 2 when blank.
${SIM_DEVICE_SH}
for a in "$@"; do
  d=$(sim_dir "$a") || continue
  if [ -d "$d/fs" ]; then
    printf '%s: TYPE="ext4"\\n' "$a"
    exit 0
  fi
  exit 2
done
${execReal('blkid', ['/usr/sbin/blkid', '/sbin/blkid'], 4)}
`,
  '/usr/local/sbin/mkfs': `#!/bin/sh
# ec2-sim: mkfs of a sim device (see vm-image.ts) is an empty fs/ (a real mkfs wipes too).
${SIM_DEVICE_SH}
for last in "$@"; do :; done
if [ $# -gt 0 ] && d=$(sim_dir "$last"); then
  rm -rf "$d/fs" && mkdir -m 755 "$d/fs"
  exit $?
fi
${execReal('mkfs', ['/usr/sbin/mkfs', '/sbin/mkfs'], 1)}
`,
  '/usr/local/sbin/mount': `#!/bin/sh
# ec2-sim: \`mount DEV DIR\` of a sim device (see vm-image.ts) turns DIR, an empty directory, into a
# symlink to the device's fs/ (no CAP_SYS_ADMIN in a VM). Anything else: the real mount.
${SIM_DEVICE_SH}
n=0
dev=
dir=
skip=
for a in "$@"; do
  if [ -n "$skip" ]; then
    skip=
    continue
  fi
  case "$a" in
    -t|-o) skip=1; continue ;;
    -*) continue ;;
  esac
  n=$((n + 1))
  [ $n -eq 1 ] && dev=$a
  [ $n -eq 2 ] && dir=$a
done
if [ $n -eq 2 ] && d=$(sim_dir "$dev"); then
  if [ ! -d "$d/fs" ]; then
    echo "mount: $dir: wrong fs type, bad option, bad superblock on $dev (no filesystem: mkfs it first)" >&2
    exit 32
  fi
  if [ -L "$dir" ] || [ ! -d "$dir" ] || [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
    echo "mount: $dir: not an empty directory (or already mounted)" >&2
    exit 32
  fi
  rmdir "$dir" && ln -s "$d/fs" "$dir" && exit 0
  echo "mount: $dir: could not mount $dev" >&2
  exit 32
fi
${execReal('mount', ['/usr/bin/mount', '/bin/mount'], 32)}
`,
};

/** Sourced before the user-data (vm-init.ts): busybox sh runs a function before its own applet. */
const SHIM_FUNCTIONS = `# ec2-sim: the disk shims by name, whatever the shell prefers (see vm-image.ts)
${Object.keys(SHIMS)
  .map((path) => `${path.slice(path.lastIndexOf('/') + 1)}() { ${path} "$@"; }`)
  .join('\n')}
`;

export interface EnsureVmImageOptions {
  docker?: Dockerode;
  /** Base image; default: ensureRuntimeImage() (builds it if needed). */
  runtimeImage?: string;
  log?: (line: string) => void;
  /** Where downloaded .deb files are kept between builds (default .data/cache/ec2-sim-debs). */
  debCacheDir?: string;
}

interface ContextEntry {
  path: string; // absolute in the image
  mode: number;
  content?: Buffer; // undefined = directory
}

/** The init as one self-contained ES module (Node built-ins only). */
async function bundleInit(): Promise<Buffer> {
  const result = await build({
    entryPoints: [INIT_ENTRY],
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    write: false,
    logLevel: 'silent',
  });
  const out = result.outputFiles[0];
  if (!out) throw new Error('esbuild produced no output for the VM init');
  return Buffer.from(out.contents);
}

async function cachedDeb(cacheDir: string, pkg: string): Promise<string | null> {
  const names = (await readdir(cacheDir).catch(() => [] as string[]))
    .filter((n) => n.startsWith(`${pkg}_`) && n.endsWith('.deb'))
    .sort();
  const last = names.at(-1);
  return last === undefined ? null : join(cacheDir, last);
}

/** `apt-get download` into a private temp dir, then an atomic rename into the cache. */
async function fetchDebs(packages: string[], cacheDir: string, log: (s: string) => void): Promise<string[]> {
  await mkdir(cacheDir, { recursive: true });
  const missing: string[] = [];
  for (const pkg of packages) if (!(await cachedDeb(cacheDir, pkg))) missing.push(pkg);
  if (missing.length > 0) {
    log(`apt-get download ${missing.join(' ')}`);
    const tmp = await mkdtemp(join(cacheDir, '.download-'));
    try {
      await run('apt-get', ['download', '-q', ...missing], { cwd: tmp, timeout: 180_000 }).catch(
        (err: { stderr?: string; message: string }) => {
          throw new Error(
            `apt-get download ${missing.join(' ')} failed (try \`apt-get update\`): ${err.stderr?.trim() || err.message}`,
          );
        },
      );
      for (const name of await readdir(tmp)) {
        if (name.endsWith('.deb')) await rename(join(tmp, name), join(cacheDir, name));
      }
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  const debs: string[] = [];
  for (const pkg of packages) {
    const deb = await cachedDeb(cacheDir, pkg);
    if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb in ${cacheDir}`);
    debs.push(deb);
  }
  return debs;
}

async function libraryDirs(root: string): Promise<string[]> {
  const dirs: string[] = [];
  for (const rel of ['lib', 'usr/lib', 'lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu']) {
    const dir = join(root, rel);
    if (existsSync(dir)) dirs.push(dir);
  }
  // Other multiarch triplets (arm64 hosts).
  for (const base of ['lib', 'usr/lib']) {
    for (const name of await readdir(join(root, base)).catch(() => [] as string[])) {
      if (/-linux-gnu/.test(name) && !dirs.includes(join(root, base, name)))
        dirs.push(join(root, base, name));
    }
  }
  return dirs;
}

interface LddResult {
  found: string[];
  missing: string[];
}

async function ldd(binary: string, libPath: string[]): Promise<LddResult> {
  const { stdout } = await run('ldd', [binary], {
    env: { ...process.env, LD_LIBRARY_PATH: libPath.join(':') },
  });
  const found: string[] = [];
  const missing: string[] = [];
  for (const line of stdout.split('\n')) {
    const notFound = /^\s*(\S+)\s+=>\s+not found/.exec(line);
    if (notFound?.[1]) {
      missing.push(notFound[1]);
      continue;
    }
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) found.push(m[1]);
  }
  return { found, missing };
}

/**
 * Unpacks the packages, resolves every library the binaries need (downloading the package of a
 * soname the host lacks), and returns the image entries taken from packages and host libraries.
 */
async function opensshEntries(
  cacheDir: string,
  runtimeLibs: Set<string>,
  log: (s: string) => void,
): Promise<ContextEntry[]> {
  const root = await mkdtemp(join(os.tmpdir(), 'wo-vm-debs-'));
  try {
    const unpacked = new Set<string>();
    const unpack = async (packages: string[]): Promise<void> => {
      const todo = packages.filter((p) => !unpacked.has(p));
      for (const deb of await fetchDebs(todo, cacheDir, log)) await run('dpkg', ['-x', deb, root]);
      todo.forEach((p) => unpacked.add(p));
    };
    await unpack(PACKAGES);

    const libs = new Map<string, string>(); // image path → source path
    for (let round = 0; ; round++) {
      const libPath = await libraryDirs(root);
      const missing = new Set<string>();
      libs.clear();
      for (const bin of DYNAMIC_BINARIES) {
        const result = await ldd(join(root, bin), libPath);
        result.missing.forEach((s) => missing.add(s));
        for (const lib of result.found) {
          const imagePath = lib.startsWith(`${root}/`) ? lib.slice(root.length) : lib;
          if (!runtimeLibs.has(imagePath)) libs.set(imagePath, lib);
        }
      }
      if (missing.size === 0) break;
      const unknown = [...missing].filter((s) => !SONAME_PACKAGES[s] || unpacked.has(SONAME_PACKAGES[s]));
      if (unknown.length > 0 || round >= 3) {
        throw new Error(
          `sshd needs libraries neither the host nor the known packages have: ${unknown.join(', ')}`,
        );
      }
      await unpack([...missing].map((s) => SONAME_PACKAGES[s] as string));
    }

    const entries: ContextEntry[] = [];
    for (const [from, to, mode] of PACKAGE_FILES) {
      entries.push({ path: to, mode, content: await readFile(join(root, from)) });
    }
    for (const [imagePath, source] of [...libs].sort(([a], [b]) => a.localeCompare(b))) {
      // readFile follows symlinks (like cp -L): the real file lands at the soname path ldd used.
      entries.push({ path: imagePath, mode: 0o755, content: await readFile(source) });
    }
    return entries;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

async function contextEntries(cacheDir: string, log: (s: string) => void): Promise<ContextEntry[]> {
  const runtimeLibs = new Set(await nodeLibraries());
  const files: ContextEntry[] = [
    ...(await opensshEntries(cacheDir, runtimeLibs, log)),
    { path: '/sbin/wo-init.mjs', mode: 0o644, content: await bundleInit() },
    { path: '/etc/passwd', mode: 0o644, content: Buffer.from(PASSWD) },
    { path: '/etc/ssh/sshd_config', mode: 0o644, content: Buffer.from(SSHD_CONFIG) },
    ...Object.entries(SHIMS).map(([path, script]) => ({ path, mode: 0o755, content: Buffer.from(script) })),
    { path: '/usr/local/lib/ec2-sim/shims.sh', mode: 0o644, content: Buffer.from(SHIM_FUNCTIONS) },
  ];
  const dirs = new Map<string, number>([
    ['/root', 0o700],
    ['/root/.ssh', 0o700],
    ['/run/sshd', 0o755],
    ['/var/empty', 0o755],
    ['/var/lib/wo-init', 0o755],
    // The agent's private state dir (bundle, secrets), as in the runtime image.
    ['/var/lib/wo', 0o700],
    ['/etc/wo/boot.d', 0o755],
    ['/etc/ssh', 0o755],
    // The staged EBS volumes' parent (sim.ts mounts one directory per volume): root's only.
    ['/mnt/.sim-ebs', 0o700],
  ]);
  // Every parent folder gets an explicit entry (0755 unless listed above).
  for (const p of [...files.map((f) => f.path), ...dirs.keys()]) {
    for (let d = dirname(p); d !== '/'; d = dirname(d)) if (!dirs.has(d)) dirs.set(d, 0o755);
  }
  const dirEntries = [...dirs].map(([path, mode]) => ({ path, mode }));
  return [...dirEntries, ...files].sort((a, b) => a.path.localeCompare(b.path));
}

function contextDigest(dockerfile: string, entries: ContextEntry[]): string {
  const h = createHash('sha256').update(dockerfile);
  for (const e of entries) {
    h.update(`\0${e.path}\0${e.mode.toString(8)}\0`);
    h.update(e.content ? createHash('sha256').update(e.content).digest('hex') : 'dir');
  }
  return h.digest('hex');
}

function packContext(dockerfile: string, entries: ContextEntry[]): tar.Pack {
  const pack = tar.pack();
  const mtime = new Date('2020-01-01T00:00:00Z');
  pack.entry({ name: 'Dockerfile', mode: 0o644, mtime }, dockerfile);
  pack.entry({ name: '.dockerignore', mode: 0o644, mtime }, 'Dockerfile\n.dockerignore\n');
  for (const e of entries) {
    const name = e.path.slice(1);
    const base = { name, mode: e.mode, mtime, uid: 0, gid: 0 };
    if (e.content) pack.entry({ ...base, type: 'file' }, e.content);
    else pack.entry({ ...base, type: 'directory' });
  }
  pack.finalize();
  return pack;
}

const inProcess = new Map<string, Promise<string>>();

/**
 * Returns the tag of the VM image (`wo-vm:<hash>`), building it when missing. Needs dockerd, the
 * runtime image (built on demand), `apt-get download` reachability on a cold cache, dpkg and ldd.
 */
export async function ensureVmImage(opts: EnsureVmImageOptions = {}): Promise<string> {
  const docker = opts.docker ?? new Dockerode();
  const log = opts.log ?? (() => undefined);
  const runtimeImage = opts.runtimeImage ?? (await ensureRuntimeImage({ docker, log }));
  const started = Date.now();
  const entries = await contextEntries(opts.debCacheDir ?? DEFAULT_CACHE_DIR, log);
  const dockerfile = DOCKERFILE(runtimeImage);
  const tag = `${VM_REPOSITORY}:${contextDigest(dockerfile, entries).slice(0, 12)}`;

  let pending = inProcess.get(tag);
  if (!pending) {
    pending = (async () => {
      if (await imageExists(docker, tag)) {
        log(`${tag} already exists, not rebuilding`);
        return tag;
      }
      log(`building ${tag} from ${runtimeImage}`);
      await buildImage(docker, packContext(dockerfile, entries), tag, log);
      if (!(await imageExists(docker, tag)))
        throw new Error(`docker build reported success but ${tag} is missing`);
      log(`built ${tag} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
      return tag;
    })();
    inProcess.set(tag, pending);
    pending.catch(() => inProcess.delete(tag));
  }
  return pending;
}
