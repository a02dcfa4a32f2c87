/**
 * Files API on a Docker workspace: exec inside the generation's container (paths always passed as
 * argv to a constant script, never spliced into a shell string) and putArchive for writes.
 *
 * Every path is checked lexically first (workspacePath), then resolved on the workspace side: the
 * script walks the path one directory at a time with `cd -P` and refuses as soon as the physical
 * directory leaves the physical root, so a symlink planted in the workspace (say to /etc) can
 * neither be read, written, listed nor deleted through. A final-component symlink is followed only
 * when it resolves inside the root (delete and removeTree act on the link itself). A link swapped
 * between the check and the operation (TOCTOU) is not prevented.
 */
import { posix } from 'node:path';
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline as streamPipeline } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Dockerode from 'dockerode';
import {
  BackendError,
  LIST_MAX_ENTRIES,
  type FileEntry,
  type FileListing,
  type FileContent,
  type FileStream,
  type WorkspaceRoot,
} from '../backend.js';
import { READ_WHOLE_MAX_BYTES, contentStream, exactly, readWhole } from '../streams.js';
import { openSingleFile } from './archive.js';
import { beforeDeadline, isConflict, isNotFound, toBackendError } from './errors.js';
import { isUploadTemp, joinUnderRoot, listingPath, pathSegments } from '../paths.js';

type Mode = 'read' | 'write' | 'delete' | 'list' | 'purge';

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
  cutShort: 19,
} as const;

/**
 * argv: mode root depth seg1 … segN (segments already lexically clean). Walks the parent segments
 * physically (creating missing ones only in write mode), then acts on the last one.
 * read (depth = the reader's cap, 0 none) → the file's size on a line, then at most that many bytes
 * of it, none when the size is over the cap; write (depth = the size) →
 * stdin into a temporary file beside the target, renamed over it only when complete;
 * delete → removes it, a link as a link wherever it points (unlinking follows nothing); list →
 * NUL-terminated `type|size|mtime|relpath` records; purge → removes it and everything under it, a
 * link as a link (for both, the last component is never followed or checked).
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
  if [ "$mode" != purge ] && [ "$mode" != delete ] && [ -L "./$last" ]; then
    r=$(readlink -f "./$last" 2>/dev/null)
    if [ -n "$r" ] && [ -e "$r" ]; then
      inside "$r" || { echo "resolves outside $root" >&2; exit 12; }
      target=$r
    else
      [ "$mode" = write ] && { echo "dangling symlink" >&2; exit 12; }
      echo "not found" >&2; exit 11
    fi
  fi
fi
case $mode in
  read)
    [ -e "$target" ] || { echo "not found" >&2; exit 11; }
    [ -d "$target" ] && { echo "is a directory" >&2; exit 14; }
    [ -f "$target" ] || { echo "not a regular file" >&2; exit 15; }
    size=$(stat -L -c %s "$target") || exit 13
    printf '%s\n' "$size"
    # Over the reader's cap (depth > 0): the size alone, not a byte read (it is refused).
    [ "$depth" -gt 0 ] && [ "$size" -gt "$depth" ] && exit 0
    exec head -c "$size" "$target" ;;
  write)
    [ -d "$target" ] && { echo "is a directory" >&2; exit 14; }
    if [ -e "$target" ] && [ ! -f "$target" ]; then echo "not a regular file" >&2; exit 15; fi
    # A fresh name (O_EXCL): never a leftover, nor a link planted under a guessable one.
    tmp=$(mktemp "$(dirname "$target")/.wo-upload-XXXXXX") || exit 13
    chmod 644 "$tmp" || { rm -f "$tmp"; exit 13; }
    cat > "$tmp" || { rm -f "$tmp"; exit 13; }
    got=$(stat -c %s "$tmp") || { rm -f "$tmp"; exit 13; }
    [ "$got" = "$depth" ] || { rm -f "$tmp"; echo "upload cut short: $got of $depth bytes" >&2; exit 19; }
    mv -f "$tmp" "$target" || { rm -f "$tmp"; exit 13; } ;;
  delete)
    if [ ! -e "$target" ] && [ ! -L "$target" ]; then echo "not found" >&2; exit 11; fi
    if [ -d "$target" ] && [ ! -L "$target" ]; then
      rmdir "$target" 2>/dev/null || { echo "directory not empty" >&2; exit 16; }
    else
      rm -f "$target" || exit 13
    fi ;;
  purge)
    # rm -r never follows a symlink (lstat): a link at any level goes as a link, FIFOs and sockets too.
    if [ -e "$target" ] || [ -L "$target" ]; then rm -rf -- "$target" || exit 13; fi ;;
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

/** Bytes of stderr kept for error messages. */
const STDERR_BYTES = 4096;
/** Longest size line of a read (digits + newline). */
const SIZE_LINE_BYTES = 24;

/**
 * Docker's multiplexed exec output (8-byte frame headers: stream id, 3 zero bytes, length) as a
 * stream of stdout bytes, with backpressure: a slow reader slows the exec down instead of the
 * output piling up here. stderr is kept (first STDERR_BYTES). With `sizeLine`, the first stdout
 * line is a decimal size: emitted as a 'size' event, not passed on. `atEnd` runs once the exec's
 * output has ended and may fail the stream (exit code checks).
 */
class Demux extends Transform {
  private header = Buffer.alloc(0);
  private remaining = 0;
  private streamId = 1;
  private stderrChunks: Buffer[] = [];
  private stderrBytes = 0;
  private sizeBuf: Buffer | null;

  constructor(
    sizeLine: boolean,
    private readonly atEnd: (d: Demux) => Promise<void>,
  ) {
    super();
    this.sizeBuf = sizeLine ? Buffer.alloc(0) : null;
  }

  get stderr(): string {
    return Buffer.concat(this.stderrChunks).toString('utf8').trim();
  }

  /** Whether the size line has been read (always true without one). */
  get sized(): boolean {
    return this.sizeBuf === null;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const buf = this.header.length ? Buffer.concat([this.header, chunk]) : chunk;
    this.header = Buffer.alloc(0);
    let off = 0;
    try {
      while (off < buf.length) {
        if (this.remaining === 0) {
          if (buf.length - off < 8) {
            this.header = Buffer.from(buf.subarray(off));
            break;
          }
          this.streamId = buf[off]!;
          this.remaining = buf.readUInt32BE(off + 4);
          off += 8;
          continue;
        }
        const take = Math.min(this.remaining, buf.length - off);
        const part = buf.subarray(off, off + take);
        off += take;
        this.remaining -= take;
        if (this.streamId === 2) this.keepStderr(part);
        else this.stdout(part);
      }
    } catch (err) {
      return cb(err as Error);
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    this.atEnd(this).then(() => cb(), cb);
  }

  private keepStderr(part: Buffer): void {
    if (this.stderrBytes >= STDERR_BYTES) return;
    this.stderrChunks.push(part.subarray(0, STDERR_BYTES - this.stderrBytes));
    this.stderrBytes += part.length;
  }

  private stdout(part: Buffer): void {
    if (this.sizeBuf === null) {
      this.push(part);
      return;
    }
    const all = Buffer.concat([this.sizeBuf, part]);
    const nl = all.indexOf(10);
    if (nl < 0) {
      if (all.length > SIZE_LINE_BYTES) throw new BackendError('transient', 'exec printed no size line');
      this.sizeBuf = all;
      return;
    }
    const size = Number(all.subarray(0, nl).toString('latin1'));
    if (!Number.isSafeInteger(size) || size < 0)
      throw new BackendError('transient', 'exec printed a bad size');
    this.sizeBuf = null;
    this.emit('size', size);
    if (nl + 1 < all.length) this.push(all.subarray(nl + 1));
  }
}

interface Started {
  raw: NodeJS.ReadWriteStream & { destroy(err?: Error): unknown };
  exec: Dockerode.Exec;
}

async function startExec(
  docker: Dockerode,
  container: string,
  argv: string[],
  what: string,
  stdin = false,
): Promise<Started> {
  try {
    const e = await beforeDeadline(docker, what, (abortSignal) =>
      docker.getContainer(container).exec({
        Cmd: argv,
        AttachStdout: true,
        AttachStderr: true,
        AttachStdin: stdin,
        Tty: false,
        abortSignal,
      }),
    );
    const raw = (await beforeDeadline(docker, what, (abortSignal) =>
      e.start({ hijack: true, stdin, abortSignal }),
    )) as Started['raw'];
    return { raw, exec: e };
  } catch (err) {
    if (isConflict(err)) throw new NotRunning(`${what} in ${container}: not running`, err);
    // No such container (removed behind the service's back): no file of it can be reached either.
    if (isNotFound(err))
      throw new BackendError('not_running', `${what}: no container ${container}`, { cause: err });
    throw toBackendError(err, `${what} in ${container}`);
  }
}

async function exitCode(docker: Dockerode, e: Dockerode.Exec, what: string): Promise<number> {
  try {
    return (await beforeDeadline(docker, what, (abortSignal) => e.inspect({ abortSignal }))).ExitCode ?? -1;
  } catch (err) {
    throw toBackendError(err, what);
  }
}

/** Runs argv to completion; its (small) output collected. */
async function exec(docker: Dockerode, container: string, argv: string[], what: string): Promise<ExecResult> {
  const { raw, exec: e } = await startExec(docker, container, argv, what);
  let code = -1;
  const demux = new Demux(false, async () => {
    code = await exitCode(docker, e, what);
  });
  const out: Buffer[] = [];
  demux.on('data', (c: Buffer) => out.push(c));
  const timer = setTimeout(
    () => demux.destroy(new BackendError('transient', `${what}: exec gave no answer within 60 s`)),
    60_000,
  );
  try {
    await pipeline(raw, demux);
  } catch (err) {
    throw err instanceof BackendError ? err : toBackendError(err, `${what} in ${container}`);
  } finally {
    clearTimeout(timer);
  }
  return { code, stdout: Buffer.concat(out), stderr: demux.stderr };
}

/** Exec refused because the container is not running (409). */
class NotRunning extends BackendError {
  constructor(message: string, cause: unknown) {
    super('not_running', message, { cause });
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
    res = (await beforeDeadline(docker, `stat of ${path}`, (abortSignal) =>
      docker.getContainer(container).infoArchive({ path, abortSignal }),
    )) as typeof res;
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
): Promise<FileStream> {
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
    archive = await beforeDeadline(docker, `reading ${full}`, (abortSignal) =>
      docker.getContainer(container).getArchive({ path, abortSignal }),
    );
  } catch (err) {
    if (isNotFound(err))
      throw new BackendError('not_found', `${full} not found in ${container}`, { cause: err });
    throw toBackendError(err, `reading ${full} from ${container}`);
  }
  return openSingleFile(archive, full);
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

/** The ENOSPC and EDQUOT messages of busybox and coreutils. */
const NO_SPACE = /No space left on device|Disk quota exceeded/i;

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
    case EXIT.cutShort:
      throw new BackendError('transient', msg);
    case EXIT.failed:
      // cat/mkdir/mv name the errno: a full disk (or quota) is the workspace's, not a hiccup.
      if (NO_SPACE.test(r.stderr)) throw new BackendError('no_space', msg);
      throw new BackendError('transient', msg);
    default:
      // 126/127 (exec could not run) or a failed mkdir/rm: the container is likely going away.
      throw new BackendError('transient', msg);
  }
}

/**
 * Opens a regular file, resolving every symlink inside the workspace first. The exec prints the
 * size, then streams the bytes at the reader's pace (its output is never collected here).
 */
export async function openFile(
  docker: Dockerode,
  container: string,
  root: WorkspaceRoot,
  path: string,
  maxBytes?: number,
): Promise<FileStream> {
  const segs = pathSegments(root, path);
  const full = joinUnderRoot(root, segs);
  const what = `reading ${full}`;
  let started: Started;
  try {
    // The cap goes to the exec: a refused file is never streamed (an exec outlives its connection).
    started = await startExec(docker, container, argvOf('read', root, segs, maxBytes ?? 0), what);
  } catch (err) {
    if (err instanceof NotRunning) return readStopped(docker, container, root, segs);
    throw err;
  }
  const { raw, exec: e } = started;
  const demux = new Demux(true, async (d) => {
    const code = await exitCode(docker, e, what);
    check({ code, stdout: Buffer.alloc(0), stderr: d.stderr }, full);
    if (!d.sized) throw new BackendError('transient', `${full}: exec ended without a size`);
  });
  let out: Transform | null = null;
  const body = new PassThrough();
  const size = await new Promise<number>((resolve, reject) => {
    let known = false;
    const timer = setTimeout(
      () => demux.destroy(new BackendError('transient', `${what}: exec gave no answer within 60 s`)),
      60_000,
    );
    demux.once('size', (n: number) => {
      known = true;
      clearTimeout(timer);
      resolve(n);
    });
    // Destroying any part (a reader gone, an exec failure) tears down the exec's connection.
    streamPipeline(raw, demux, body, (err) => {
      clearTimeout(timer);
      if (known) {
        if (err) out?.destroy(err);
        return;
      }
      reject(
        err instanceof BackendError
          ? err
          : toBackendError(err ?? new Error('exec ended'), `${what} in ${container}`),
      );
    });
  });
  if (maxBytes && size > maxBytes) {
    // Refused by the caller: the exec sent the size alone; nothing to stream.
    body.destroy();
    return { size, stream: Readable.from([]) };
  }
  out = exactly(size, full);
  const stream = out;
  stream.on('close', () => body.destroy());
  body.pipe(stream);
  return { size, stream };
}

/** Reads a whole (small) file: openFile collected. */
export async function readFile(
  docker: Dockerode,
  container: string,
  root: WorkspaceRoot,
  path: string,
  maxBytes?: number,
): Promise<Buffer> {
  const cap = maxBytes ?? READ_WHOLE_MAX_BYTES;
  return readWhole(await openFile(docker, container, root, path, cap), `${root}/${path}`, cap);
}

/**
 * Lists entries, reading the exec's records as they come and stopping (the exec is cut off) once
 * more than `maxEntries` were seen.
 */
export async function listFiles(
  docker: Dockerode,
  container: string,
  root: WorkspaceRoot,
  path: string,
  depth: number,
  maxEntries = LIST_MAX_ENTRIES,
): Promise<FileListing> {
  const { segs, full } = listingPath(root, path, depth);
  const what = `listing ${full}`;
  const { raw, exec: e } = await startExec(docker, container, argvOf('list', root, segs, depth), what);
  const demux = new Demux(false, async (d) => {
    check({ code: await exitCode(docker, e, what), stdout: Buffer.alloc(0), stderr: d.stderr }, full);
  });
  streamPipeline(raw, demux, () => undefined);
  const prefix = segs.join('/');
  const entries: FileEntry[] = [];
  let truncated = false;
  let partial = Buffer.alloc(0);
  const timer = setTimeout(
    () => demux.destroy(new BackendError('transient', `${what}: exec gave no answer within 60 s`)),
    60_000,
  );
  try {
    read: for await (const chunk of demux as AsyncIterable<Buffer>) {
      let buf = partial.length ? Buffer.concat([partial, chunk]) : chunk;
      let nul: number;
      while ((nul = buf.indexOf(0)) >= 0) {
        const entry = entryOf(buf.subarray(0, nul).toString('utf8'), prefix);
        buf = buf.subarray(nul + 1);
        if (!entry) continue;
        if (entries.length === maxEntries) {
          truncated = true;
          break read; // ends the exec: its output is not wanted any more
        }
        entries.push(entry);
      }
      if (buf.length > 64 * 1024) throw new BackendError('transient', `${what}: a record over 64 KiB`);
      partial = Buffer.from(buf);
    }
  } catch (err) {
    throw err instanceof BackendError ? err : toBackendError(err, `${what} in ${container}`);
  } finally {
    clearTimeout(timer);
    raw.destroy();
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { items: entries, truncated };
}

/** One `type|size|mtime|relpath` record as an entry (null for what a listing skips). */
function entryOf(record: string, prefix: string): FileEntry | null {
  if (!record) return null;
  const [kind, size, mtime, ...rest] = record.split('|');
  const rel = rest.join('|').replace(/^\.\//, '');
  if (!kind || !rel) return null;
  const type = kind === 'directory' ? 'dir' : kind.includes('regular') ? 'file' : null;
  if (!type) return null;
  // An upload's temporary file (a folder of the name is the user's, listed as any other).
  if (type === 'file' && isUploadTemp(rel.slice(rel.lastIndexOf('/') + 1))) return null;
  return {
    path: prefix ? `${prefix}/${rel}` : rel,
    type,
    size: Number(size) || 0,
    mtime: new Date(Number(mtime) * 1000).toISOString(),
  };
}

/**
 * Writes a file: one exec resolves the path (creating parents), copies stdin into a temporary file
 * beside the target and renames it over the target only once all `size` bytes arrived, so a cut
 * upload leaves the old file (or nothing). The content is streamed in at its own pace.
 */
export async function writeFile(
  docker: Dockerode,
  container: string,
  root: WorkspaceRoot,
  path: string,
  content: FileContent,
): Promise<void> {
  const segs = pathSegments(root, path);
  const full = joinUnderRoot(root, segs);
  const what = `writing ${full}`;
  const { size, stream } = contentStream(content);
  let started: Started;
  try {
    started = await startExec(docker, container, argvOf('write', root, segs, size), what, true);
  } catch (err) {
    stream.destroy();
    throw err;
  }
  const { raw, exec: e } = started;
  let code = -1;
  const demux = new Demux(false, async () => {
    code = await exitCode(docker, e, what);
  });
  demux.resume();
  // Input: exactly `size` bytes, then end-of-file (the socket's write side closes).
  let sending = true;
  const input = pipeline(stream, exactly(size, full), raw as unknown as NodeJS.WritableStream)
    .finally(() => {
      sending = false;
    })
    .catch((err: unknown) => {
      raw.destroy(); // the exec's stdin closes: the short temporary file is removed, nothing replaced
      throw err instanceof BackendError
        ? err
        : new BackendError('transient', `${what}: upload failed`, { cause: err });
    });
  const output = pipeline(raw, demux).then(
    () => {
      // The script ended while bytes were still going in (it refused the path, or the disk filled
      // up): nothing reads them any more, and the daemon keeps the connection open, so the upload
      // would wait for a drain that never comes. Stop it; the exit code says why.
      if (sending) raw.destroy();
    },
    (err: unknown) => {
      throw err instanceof BackendError ? err : toBackendError(err, `${what} in ${container}`);
    },
  );
  const [sent, done] = await Promise.allSettled([input, output]);
  if (sent.status === 'rejected' || done.status === 'rejected') {
    // The script may have refused the path before reading its input (the connection then closes
    // under the upload): its exit code names the reason.
    const refused = await exitCode(docker, e, what).catch(() => -1);
    if (refused > 0 && refused !== EXIT.cutShort) {
      check({ code: refused, stdout: Buffer.alloc(0), stderr: demux.stderr }, full);
    }
    throw sent.status === 'rejected' ? sent.reason : (done as PromiseRejectedResult).reason;
  }
  check({ code, stdout: Buffer.alloc(0), stderr: demux.stderr }, full);
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

/**
 * Removes a tree in one exec (`rm -rf` on the physical path, parents walked as for delete). A
 * missing parent means the tree is gone already: success, like a missing target.
 */
export async function removeTree(
  docker: Dockerode,
  container: string,
  root: WorkspaceRoot,
  path: string,
): Promise<void> {
  const segs = pathSegments(root, path);
  const full = joinUnderRoot(root, segs);
  const r = await exec(docker, container, argvOf('purge', root, segs), `removing ${full}`);
  if (r.code !== EXIT.notFound) check(r, full);
}
