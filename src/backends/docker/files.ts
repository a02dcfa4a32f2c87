/**
 * Files API on a Docker workspace: exec inside the generation's container (paths always passed as
 * argv to a constant script, never spliced into a shell string) and putArchive for writes.
 *
 * Every path is checked lexically first (workspacePath), then resolved on the workspace side: the
 * script walks the path one directory at a time with `cd -P` and refuses as soon as the physical
 * directory leaves the physical root, so a symlink planted in the workspace (say to /etc) can
 * neither be read, written, listed nor deleted through. A final-component symlink is followed only
 * when it resolves inside the root (delete removes the link itself). A link swapped between the
 * check and the operation (TOCTOU) is not prevented.
 */
import { posix } from 'node:path';
import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import tar from 'tar-stream';
import { BackendError, type FileEntry, type WorkspaceRoot } from '../backend.js';
import { extractSingleFile } from './archive.js';
import { isConflict, isNotFound, toBackendError } from './errors.js';
import { joinUnderRoot, listingPath, pathSegments } from '../paths.js';

type Mode = 'read' | 'write' | 'delete' | 'list';

/** Exit codes of RESOLVE, mapped to typed errors in `check`. */
const EXIT = {
  notFound: 11,
  escapes: 12,
  failed: 13,
  isDir: 14,
  notRegular: 15,
  notEmpty: 16,
  notDir: 17,
  rootMissing: 18,
} as const;

/**
 * argv: mode root depth seg1 … segN (segments already lexically clean). Walks the parent segments
 * physically (creating missing ones only in write mode), then acts on the last one.
 * read → the file's bytes on stdout; write → the physical path to write on stdout;
 * delete → removes it; list → NUL-terminated `type|size|mtime|relpath` records.
 */
const SCRIPT = String.raw`
mode=$1; root=$2; depth=$3; shift 3
cd -P "$root" 2>/dev/null || { echo "root $root missing" >&2; exit 18; }
base=$(pwd -P)
inside() { [ "$1" = "$base" ] && return 0; case "$1" in "$base"/*) return 0;; esac; return 1; }
while [ $# -gt 1 ]; do
  seg=$1; shift
  if [ ! -e "./$seg" ] && [ ! -L "./$seg" ]; then
    [ "$mode" = write ] || { echo "not found" >&2; exit 11; }
    mkdir "./$seg" || exit 13
  fi
  [ -d "./$seg" ] || { echo "a parent is not a directory" >&2; exit 17; }
  cd -P "./$seg" || exit 13
  inside "$(pwd -P)" || { echo "resolves outside $root" >&2; exit 12; }
done
cur=$(pwd -P)
if [ $# -eq 0 ]; then
  target=$cur
else
  last=$1
  target=$cur/$last
  if [ -L "./$last" ]; then
    r=$(readlink -f "./$last" 2>/dev/null)
    if [ -n "$r" ] && [ -e "$r" ]; then
      inside "$r" || { echo "resolves outside $root" >&2; exit 12; }
      [ "$mode" = delete ] || target=$r
    else
      case $mode in
        delete) ;;
        write) echo "dangling symlink" >&2; exit 12 ;;
        *) echo "not found" >&2; exit 11 ;;
      esac
    fi
  fi
fi
case $mode in
  read)
    [ -e "$target" ] || { echo "not found" >&2; exit 11; }
    [ -d "$target" ] && { echo "is a directory" >&2; exit 14; }
    [ -f "$target" ] || { echo "not a regular file" >&2; exit 15; }
    exec cat "$target" ;;
  write)
    [ -d "$target" ] && { echo "is a directory" >&2; exit 14; }
    if [ -e "$target" ] && [ ! -f "$target" ]; then echo "not a regular file" >&2; exit 15; fi
    printf '%s' "$target" ;;
  delete)
    if [ ! -e "$target" ] && [ ! -L "$target" ]; then echo "not found" >&2; exit 11; fi
    if [ -d "$target" ] && [ ! -L "$target" ]; then
      rmdir "$target" 2>/dev/null || { echo "directory not empty" >&2; exit 16; }
    else
      rm -f "$target" || exit 13
    fi ;;
  list)
    [ -e "$target" ] || { echo "not found" >&2; exit 11; }
    [ -d "$target" ] || { echo "not a directory" >&2; exit 17; }
    cd -P "$target" || exit 13
    find . -mindepth 1 -maxdepth "$depth" -exec sh -c '
      base=$1; shift
      for p; do
        if [ -L "$p" ]; then
          r=$(readlink -f "$p" 2>/dev/null)
          [ -n "$r" ] && [ -e "$r" ] || continue
          [ "$r" = "$base" ] || case "$r" in "$base"/*) ;; *) continue ;; esac
        fi
        s=$(stat -L -c "%F|%s|%Y" "$p" 2>/dev/null) || continue
        printf "%s|%s\0" "$s" "$p"
      done' sh "$base" {} + ;;
esac
`;

interface ExecResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

async function exec(docker: Dockerode, container: string, argv: string[], what: string): Promise<ExecResult> {
  try {
    const e = await docker.getContainer(container).exec({
      Cmd: argv,
      AttachStdout: true,
      AttachStderr: true,
      AttachStdin: false,
      Tty: false,
    });
    const stream = await e.start({ hijack: true, stdin: false });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    stdout.on('data', (c: Buffer) => out.push(c));
    stderr.on('data', (c: Buffer) => err.push(c));
    docker.modem.demuxStream(stream, stdout, stderr);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        stream.destroy();
        reject(new BackendError('transient', `${what}: exec gave no answer within 60 s`));
      }, 60_000);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      stream.once('end', done);
      stream.once('close', done);
      stream.once('error', (e2: Error) => {
        clearTimeout(timer);
        reject(e2);
      });
    });
    const info = await e.inspect();
    return {
      code: info.ExitCode ?? -1,
      stdout: Buffer.concat(out),
      stderr: Buffer.concat(err).toString('utf8').trim(),
    };
  } catch (err) {
    if (isConflict(err)) throw new NotRunning(`${what} in ${container}: not running`, err);
    throw toBackendError(err, `${what} in ${container}`);
  }
}

/** Exec refused because the container is not running (409): permanent for this call. */
class NotRunning extends BackendError {
  constructor(message: string, cause: unknown) {
    super('permanent', message, { cause });
  }
}

/** Go's os.ModeSymlink, as in the archive API's path stat. */
const GO_MODE_SYMLINK = 1 << 27;

/** The archive API's stat of a path (lstat of the last component); null when it does not exist. */
async function archiveStat(
  docker: Dockerode,
  container: string,
  path: string,
): Promise<{ mode: number; linkTarget: string } | null> {
  let res: { headers?: Record<string, string | undefined>; resume?: () => void };
  try {
    res = (await docker.getContainer(container).infoArchive({ path })) as typeof res;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw toBackendError(err, `stat of ${path} in ${container}`);
  }
  res.resume?.();
  const header = res.headers?.['x-docker-container-path-stat'];
  if (!header) throw new BackendError('transient', `stat of ${path} in ${container}: no stat header`);
  const stat = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as {
    mode?: number;
    linkTarget?: string;
  };
  return { mode: stat.mode ?? 0, linkTarget: stat.linkTarget ?? '' };
}

/**
 * A stopped container cannot exec, but its files stay readable through the archive API: the
 * parents are walked with the archive stat (a link is followed only while its resolved target stays
 * inside the root) and the last component is read with getArchive, which refuses a final symlink.
 */
async function readStopped(
  docker: Dockerode,
  container: string,
  root: WorkspaceRoot,
  segs: string[],
): Promise<Buffer> {
  const full = joinUnderRoot(root, segs);
  const inside = (p: string) => p === root || p.startsWith(`${root}/`);
  let cur: string = root;
  for (const seg of segs.slice(0, -1)) {
    const p = `${cur}/${seg}`;
    const st = await archiveStat(docker, container, p);
    if (!st) throw new BackendError('not_found', `${full} not found in ${container}`);
    if (st.mode & GO_MODE_SYMLINK) {
      const target = posix.normalize(st.linkTarget);
      if (!target.startsWith('/') || !inside(target))
        throw new BackendError('invalid_path', `${full} resolves outside ${root}`);
      cur = target;
    } else cur = p;
  }
  const path = `${cur}/${segs.at(-1) ?? ''}`;
  let archive: NodeJS.ReadableStream;
  try {
    archive = await docker.getContainer(container).getArchive({ path });
  } catch (err) {
    if (isNotFound(err))
      throw new BackendError('not_found', `${full} not found in ${container}`, { cause: err });
    throw toBackendError(err, `reading ${full} from ${container}`);
  }
  return extractSingleFile(archive, full);
}

const argvOf = (mode: Mode, root: WorkspaceRoot, segs: string[], depth = 1): string[] => [
  'sh',
  '-c',
  SCRIPT,
  'sh',
  mode,
  root,
  String(depth),
  ...segs,
];

function check(r: ExecResult, full: string): void {
  if (r.code === 0) return;
  const msg = `${full}: ${r.stderr || `exit ${r.code}`}`;
  switch (r.code) {
    case EXIT.notFound:
      throw new BackendError('not_found', msg);
    case EXIT.escapes:
    case EXIT.isDir:
    case EXIT.notRegular:
    case EXIT.notEmpty:
    case EXIT.notDir:
      throw new BackendError('invalid_path', msg);
    case EXIT.rootMissing:
      throw new BackendError('permanent', msg);
    default:
      // 126/127 (exec could not run) or a failed mkdir/rm: the container is likely going away.
      throw new BackendError('transient', msg);
  }
}

/** Reads a regular file, resolving every symlink inside the workspace first. */
export async function readFile(
  docker: Dockerode,
  container: string,
  root: WorkspaceRoot,
  path: string,
): Promise<Buffer> {
  const segs = pathSegments(root, path);
  const full = joinUnderRoot(root, segs);
  let r: ExecResult;
  try {
    r = await exec(docker, container, argvOf('read', root, segs), `reading ${full}`);
  } catch (err) {
    if (err instanceof NotRunning) return readStopped(docker, container, root, segs);
    throw err;
  }
  check(r, full);
  return r.stdout;
}

export async function listFiles(
  docker: Dockerode,
  container: string,
  root: WorkspaceRoot,
  path: string,
  depth: number,
): Promise<FileEntry[]> {
  const { segs, full } = listingPath(root, path, depth);
  const r = await exec(docker, container, argvOf('list', root, segs, depth), `listing ${full}`);
  check(r, full);
  const prefix = segs.join('/');
  const entries: FileEntry[] = [];
  for (const record of r.stdout.toString('utf8').split('\0')) {
    if (!record) continue;
    const [kind, size, mtime, ...rest] = record.split('|');
    const rel = rest.join('|').replace(/^\.\//, '');
    if (!kind || !rel) continue;
    const type = kind === 'directory' ? 'dir' : kind.includes('regular') ? 'file' : null;
    if (!type) continue;
    entries.push({
      path: prefix ? `${prefix}/${rel}` : rel,
      type,
      size: Number(size) || 0,
      mtime: new Date(Number(mtime) * 1000).toISOString(),
    });
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return entries;
}

function tarOf(name: string, content: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const pack = tar.pack();
    const chunks: Buffer[] = [];
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
    pack.entry(
      { name, size: content.length, mode: 0o644, mtime: new Date(), type: 'file' },
      content,
      (err) => {
        if (err) reject(err);
        else pack.finalize();
      },
    );
  });
}

export async function writeFile(
  docker: Dockerode,
  container: string,
  root: WorkspaceRoot,
  path: string,
  content: Buffer,
): Promise<void> {
  const segs = pathSegments(root, path);
  const full = joinUnderRoot(root, segs);
  // Resolves (and creates) the parents on the workspace side; prints the physical target.
  const r = await exec(docker, container, argvOf('write', root, segs), `preparing ${full}`);
  check(r, full);
  const target = r.stdout.toString('utf8');
  if (!target.startsWith('/')) throw new BackendError('transient', `${full}: could not resolve the target`);
  const archive = await tarOf(posix.basename(target), content);
  try {
    await docker.getContainer(container).putArchive(archive, { path: posix.dirname(target) });
  } catch (err) {
    throw toBackendError(err, `writing ${full} in ${container}`);
  }
}

export async function deleteFile(
  docker: Dockerode,
  container: string,
  root: WorkspaceRoot,
  path: string,
): Promise<void> {
  const segs = pathSegments(root, path);
  const full = joinUnderRoot(root, segs);
  const r = await exec(docker, container, argvOf('delete', root, segs), `deleting ${full}`);
  check(r, full);
}
