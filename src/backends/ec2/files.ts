/**
 * Files API on an EC2 workspace: SFTP over the generation's key, host key pinned, one connection per
 * operation (withSftp), or one per batch (writeFiles, deleteFiles).
 *
 * Same rules as the Docker backend: the path is checked lexically first (workspacePath), then walked
 * on the instance one directory at a time, each prefix resolved with SFTP realpath and refused as
 * soon as it leaves the resolved root, so a symlink planted in the workspace (say to /etc) can
 * neither be read, written, listed nor deleted through. A final-component symlink is followed only
 * when it resolves inside the root (delete and removeTree act on the link itself). A link swapped
 * between the check and the operation (TOCTOU) is not prevented.
 */
import { randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import { PassThrough, pipeline, type Readable, type Writable } from 'node:stream';
import type { SFTPWrapper, Stats } from 'ssh2';
import {
  BackendError,
  deletedIfGone,
  LIST_MAX_ENTRIES,
  type FileEntry,
  type FileContent,
  type FileListing,
  type FileStream,
  type WorkspaceRoot,
} from '../backend.js';
import { UPLOAD_TEMP_PREFIX, isUploadTemp, joinUnderRoot, listingPath, pathSegments } from '../paths.js';
import { contentStream, exactly, readWhole } from '../streams.js';
import { openSftp, sftpCode, sftpError, withSftp, type SshTarget } from './ssh.js';

type Mode = 'read' | 'write' | 'delete' | 'list' | 'purge';

/** Deadline of one upload (the client's pace is part of it). */
const UPLOAD_TIMEOUT_MS = 5 * 60_000;
/** Deadline of one removeTree (one round trip per entry of the tree). */
const REMOVE_TIMEOUT_MS = 5 * 60_000;
const SFTP_EOF = 1;
const SFTP_FAILURE = 4;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

type Kind = 'dir' | 'file' | 'link' | 'other';
const kindOf = (mode: number): Kind => {
  const t = mode & S_IFMT;
  return t === S_IFDIR ? 'dir' : t === S_IFREG ? 'file' : t === S_IFLNK ? 'link' : 'other';
};

/** Promisified SFTP calls; every failure becomes a typed BackendError naming `shown`. */
class Fs {
  constructor(private readonly sftp: SFTPWrapper) {}

  private call<T>(
    shown: string,
    fn: (cb: (err: Error | null | undefined, v: T) => void) => void,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) =>
      fn((err, v) => (err ? reject(sftpError(err, shown)) : resolve(v))),
    );
  }

  realpath(p: string, shown: string): Promise<string> {
    return this.call<string>(shown, (cb) => this.sftp.realpath(p, cb));
  }
  stat(p: string, shown: string): Promise<Stats> {
    return this.call<Stats>(shown, (cb) => this.sftp.stat(p, cb));
  }
  /** null when the path does not exist. */
  async lstat(p: string, shown: string): Promise<Stats | null> {
    try {
      return await this.call<Stats>(shown, (cb) => this.sftp.lstat(p, cb));
    } catch (err) {
      if (err instanceof BackendError && err.code === 'not_found') return null;
      throw err;
    }
  }
  mkdir(p: string, shown: string): Promise<void> {
    return this.call<void>(shown, (cb) => this.sftp.mkdir(p, (err) => cb(err, undefined)));
  }
  /** A directory's entries one by one, as `batches` reads them. */
  async *entries(p: string, shown: string): AsyncGenerator<{ filename: string; attrs: Stats }> {
    for await (const batch of this.batches(p, shown)) yield* batch;
  }
  /**
   * A directory's entries, one server batch at a time (a huge directory is never read whole);
   * the handle is closed when the iteration ends, early or not.
   */
  async *batches(p: string, shown: string): AsyncGenerator<{ filename: string; attrs: Stats }[]> {
    const handle = await this.call<Buffer>(shown, (cb) => this.sftp.opendir(p, cb));
    try {
      for (;;) {
        const batch = await new Promise<{ filename: string; attrs: Stats }[] | null>((resolve, reject) =>
          this.sftp.readdir(handle, (err, list) => {
            if (err && sftpCode(err) === SFTP_EOF) return resolve(null);
            if (err) return reject(sftpError(err, shown));
            resolve(list === (false as unknown) ? null : list);
          }),
        );
        if (!batch) return;
        yield batch;
      }
    } finally {
      this.sftp.close(handle, () => undefined);
    }
  }
  writeFile(p: string, data: Buffer, shown: string): Promise<void> {
    return this.call<void>(shown, (cb) => this.sftp.writeFile(p, data, (err) => cb(err, undefined)));
  }
  /** Renames `from` over `to` atomically (OpenSSH's posix-rename; plain rename needs `to` gone). */
  async replace(from: string, to: string, shown: string): Promise<void> {
    try {
      await this.call<void>(shown, (cb) =>
        this.sftp.ext_openssh_rename(from, to, (err) => cb(err, undefined)),
      );
    } catch (err) {
      if (!(err instanceof BackendError && /not supported|unsupported/i.test(String(err.cause ?? ''))))
        throw err;
      await this.unlink(to, shown).catch(() => undefined);
      await this.call<void>(shown, (cb) => this.sftp.rename(from, to, (e) => cb(e, undefined)));
    }
  }
  unlink(p: string, shown: string): Promise<void> {
    return this.call<void>(shown, (cb) => this.sftp.unlink(p, (err) => cb(err, undefined)));
  }
  rmdir(p: string, shown: string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.sftp.rmdir(p, (err) => {
        if (!err) return resolve();
        if (sftpCode(err) === SFTP_FAILURE)
          return reject(new BackendError('invalid_path', `${shown} is a directory that is not empty`));
        reject(sftpError(err, shown));
      }),
    );
  }
}

interface Resolved {
  /** Physical path to act on ('' segments = the root itself). */
  target: string;
  /** lstat of the last component before following a link; null = does not exist. */
  exists: boolean;
  rootReal: string;
  fs: Fs;
}

const insideOf = (rootReal: string) => (p: string) =>
  p === rootReal || p.startsWith(rootReal === '/' ? '/' : `${rootReal}/`);

/**
 * Walks `segs` under the root on the instance: every parent must exist (or is created in write
 * mode) and resolve inside the root; the last component is followed only when it is a link that
 * resolves inside the root (delete and purge act on a link itself, wherever it points: unlinking
 * follows nothing).
 */
async function resolve(
  sftp: SFTPWrapper,
  mode: Mode,
  root: WorkspaceRoot,
  segs: string[],
): Promise<Resolved> {
  const fs = new Fs(sftp);
  const full = joinUnderRoot(root, segs);
  const rootReal = await fs.realpath(root, root);
  const inside = insideOf(rootReal);
  const escapes = () => new BackendError('invalid_path', `${full} resolves outside ${root}`);
  let cur = rootReal;
  for (const seg of segs.slice(0, -1)) {
    const p = `${cur}/${seg}`;
    if (!(await fs.lstat(p, full))) {
      if (mode !== 'write') throw new BackendError('not_found', `${full} not found`);
      await fs.mkdir(p, full);
    }
    let real: string;
    try {
      real = await fs.realpath(p, full);
    } catch (err) {
      // A dangling link among the parents.
      if (err instanceof BackendError && err.code === 'not_found')
        throw mode === 'write' ? escapes() : new BackendError('not_found', `${full} not found`);
      throw err;
    }
    if (!inside(real)) throw escapes();
    if (!(await fs.stat(real, full)).isDirectory())
      throw new BackendError('invalid_path', `${full}: a parent is not a directory`);
    cur = real;
  }
  const last = segs.at(-1);
  if (last === undefined) return { target: cur, exists: true, rootReal, fs };
  const target = `${cur}/${last}`;
  const st = await fs.lstat(target, full);
  if (!st) return { target, exists: false, rootReal, fs };
  if (kindOf(st.mode) !== 'link' || mode === 'purge' || mode === 'delete')
    return { target, exists: true, rootReal, fs };
  let real: string | null;
  try {
    real = await fs.realpath(target, full);
    await fs.stat(real, full);
  } catch (err) {
    if (!(err instanceof BackendError && err.code === 'not_found')) throw err;
    real = null;
  }
  if (real === null) {
    // Dangling link: not written through, and holds nothing to read.
    if (mode === 'write') throw new BackendError('invalid_path', `${full} is a dangling symlink`);
    throw new BackendError('not_found', `${full} not found`);
  }
  if (!inside(real)) throw escapes();
  return { target: real, exists: true, rootReal, fs };
}

/**
 * Opens a regular file (every symlink on the path must resolve inside the root): its size from a
 * stat, its bytes from an SFTP read stream bounded to that size, read at the reader's pace. The
 * connection lives until the stream is done or destroyed.
 */
export async function openFile(target: SshTarget, root: WorkspaceRoot, path: string): Promise<FileStream> {
  const segs = pathSegments(root, path);
  const full = `${root}/${segs.join('/')}`;
  const session = await openSftp(target);
  let opened: { size: number; real: string };
  try {
    opened = await session.run(async (sftp) => {
      const r = await resolve(sftp, 'read', root, segs);
      if (!r.exists) throw new BackendError('not_found', `${full} not found`);
      const st = await r.fs.stat(r.target, full);
      if (st.isDirectory()) throw new BackendError('invalid_path', `${full} is a directory`);
      if (!st.isFile()) throw new BackendError('invalid_path', `${full} is not a regular file`);
      return { size: st.size, real: r.target };
    });
  } catch (err) {
    session.end();
    throw err;
  }
  const { size, real } = opened;
  const source: Readable =
    size === 0 ? new PassThrough().end() : session.sftp.createReadStream(real, { start: 0, end: size - 1 });
  const out = exactly(size, full);
  pipeline(source, out, (err) => {
    session.end();
    if (err && !out.destroyed) out.destroy(sftpError(err, full));
  });
  out.on('close', () => session.end());
  void session.closed.then(() => {
    if (!out.readableEnded)
      out.destroy(new BackendError('transient', `sftp on ${session.where}: connection broke`));
  });
  return { size, stream: out };
}

/** Reads a whole (small) file: openFile collected. */
export async function readFile(
  target: SshTarget,
  root: WorkspaceRoot,
  path: string,
  maxBytes?: number,
): Promise<Buffer> {
  return readWhole(await openFile(target, root, path), `${root}/${path}`, maxBytes);
}

export async function listFiles(
  target: SshTarget,
  root: WorkspaceRoot,
  path: string,
  depth: number,
  maxEntries = LIST_MAX_ENTRIES,
): Promise<FileListing> {
  const { segs, full } = listingPath(root, path, depth);
  return withSftp(target, async (sftp) => {
    const r = await resolve(sftp, 'list', root, segs);
    if (!r.exists) throw new BackendError('not_found', `${full} not found`);
    if (!(await r.fs.stat(r.target, full)).isDirectory())
      throw new BackendError('invalid_path', `${full} is not a directory`);
    const inside = insideOf(r.rootReal);
    const out: FileEntry[] = [];
    let truncated = false;
    /** Adds an entry; false once the cap is passed (the walk stops). */
    const add = (e: FileEntry): boolean => {
      if (out.length === maxEntries) {
        truncated = true;
        return false;
      }
      out.push(e);
      return true;
    };
    const walk = async (dir: string, rel: string, level: number): Promise<boolean> => {
      for await (const { filename, attrs } of r.fs.entries(dir, full)) {
        if (filename === '.' || filename === '..') continue;
        const relPath = rel ? `${rel}/${filename}` : filename;
        const physical = `${dir}/${filename}`;
        let st = attrs;
        let kind = kindOf(attrs.mode);
        if (kind === 'link') {
          // Listed as what it points at when that is inside the root; never descended into.
          try {
            const real = await r.fs.realpath(physical, full);
            if (!inside(real)) continue;
            st = await r.fs.stat(real, full);
          } catch (err) {
            if (err instanceof BackendError && err.code === 'not_found') continue;
            throw err;
          }
          kind = kindOf(st.mode);
          if (kind === 'link') continue;
          if (kind === 'dir') {
            if (!add(entryOf(relPath, 'dir', st))) return false;
            continue;
          }
        }
        if (kind === 'file') {
          // An upload's temporary file (a folder of the name is the user's, listed as any other).
          if (isUploadTemp(filename)) continue;
          if (!add(entryOf(relPath, 'file', st))) return false;
        } else if (kind === 'dir') {
          if (!add(entryOf(relPath, 'dir', st))) return false;
          if (level < depth && kindOf(attrs.mode) === 'dir' && !(await walk(physical, relPath, level + 1)))
            return false;
        }
      }
      return true;
    };
    await walk(r.target, segs.join('/'), 1);
    out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return { items: out, truncated };
  });
}

function entryOf(path: string, type: 'file' | 'dir', st: Stats): FileEntry {
  return { path, type, size: st.size, mtime: new Date(st.mtime * 1000).toISOString() };
}

/**
 * Writes a file: the content is streamed (at its own pace) into a temporary file beside the
 * target, which is renamed over the target only once all `size` bytes arrived, so a cut upload
 * leaves the old file (or nothing).
 */
export async function writeFile(
  target: SshTarget,
  root: WorkspaceRoot,
  path: string,
  content: FileContent,
): Promise<void> {
  const body = contentStream(content);
  try {
    // The upload comes at the client's pace: bounded by a longer deadline than one SFTP call.
    await withSftp({ ...target, operationTimeoutMs: UPLOAD_TIMEOUT_MS }, (sftp) =>
      writeOn(sftp, root, path, body),
    );
  } finally {
    // Also when no connection was made: the caller's stream is not left waiting.
    body.stream.destroy();
  }
}

/**
 * Writes files in order over one SSH connection (one handshake instead of one per file), each as
 * writeFile does and under its own deadline; the first failure ends the batch.
 */
export async function writeFiles(
  target: SshTarget,
  root: WorkspaceRoot,
  files: ReadonlyArray<{ path: string; content: Buffer }>,
): Promise<void> {
  // Every path was checked by Ec2Backend.writeFiles before it looked the instance up.
  if (files.length === 0) return;
  const s = await openSftp({ ...target, operationTimeoutMs: UPLOAD_TIMEOUT_MS });
  try {
    for (const f of files) await s.run((sftp) => writeOn(sftp, root, f.path, contentStream(f.content)));
  } finally {
    s.end();
  }
}

async function writeOn(
  sftp: SFTPWrapper,
  root: WorkspaceRoot,
  path: string,
  { size, stream }: ReturnType<typeof contentStream>,
): Promise<void> {
  const segs = pathSegments(root, path);
  const full = `${root}/${segs.join('/')}`;
  try {
    const r = await resolve(sftp, 'write', root, segs);
    if (r.exists) {
      const st = await r.fs.stat(r.target, full);
      if (st.isDirectory()) throw new BackendError('invalid_path', `${full} is a directory`);
      if (!st.isFile()) throw new BackendError('invalid_path', `${full} is not a regular file`);
    }
    const tmp = `${posix.dirname(r.target)}/${UPLOAD_TEMP_PREFIX}${randomUUID()}`;
    const sink = sftp.createWriteStream(tmp, { mode: 0o644 });
    try {
      await new Promise<void>((done, fail) =>
        pipeline(stream, exactly(size, full), sink, (err) => (err ? fail(sftpError(err, full)) : done())),
      );
      await r.fs.replace(tmp, r.target, full);
    } catch (err) {
      // The temporary file goes before the connection does: wait for its handle to close (an
      // open still in flight would otherwise create it after the unlink), then unlink and wait.
      await closed(sink, CLEANUP_WAIT_MS);
      await new Promise<void>((done) => sftp.unlink(tmp, () => done()));
      throw (await outOfSpace(sftp, posix.dirname(r.target), size, full, err)) ?? err;
    }
  } finally {
    stream.destroy();
  }
}

export async function deleteFile(target: SshTarget, root: WorkspaceRoot, path: string): Promise<void> {
  await withSftp(target, (sftp) => deleteOn(sftp, root, path));
}

/** Deletes entries in order over one SSH connection, as deleteFile each; one already gone is skipped. */
export async function deleteFiles(
  target: SshTarget,
  root: WorkspaceRoot,
  paths: readonly string[],
): Promise<void> {
  // Every path was checked by Ec2Backend.deleteFiles before it looked the instance up.
  if (paths.length === 0) return;
  const s = await openSftp(target);
  try {
    for (const p of paths) await s.run((sftp) => deletedIfGone(deleteOn(sftp, root, p)));
  } finally {
    s.end();
  }
}

async function deleteOn(sftp: SFTPWrapper, root: WorkspaceRoot, path: string): Promise<void> {
  const segs = pathSegments(root, path);
  const full = `${root}/${segs.join('/')}`;
  const r = await resolve(sftp, 'delete', root, segs);
  if (!r.exists) throw new BackendError('not_found', `${full} not found`);
  const st = await r.fs.lstat(r.target, full);
  if (!st) throw new BackendError('not_found', `${full} not found`);
  if (kindOf(st.mode) === 'dir') await r.fs.rmdir(r.target, full);
  else await r.fs.unlink(r.target, full);
}

/**
 * Removes a tree over one SFTP connection: the parents are resolved as for delete, then the walk
 * goes by lstat, so a link (the path itself or any entry below it) is unlinked, never entered.
 * Already gone, or a parent missing: success.
 */
export async function removeTree(target: SshTarget, root: WorkspaceRoot, path: string): Promise<void> {
  const segs = pathSegments(root, path);
  const full = joinUnderRoot(root, segs);
  // A large tree needs longer than one SFTP call's deadline.
  await withSftp({ ...target, operationTimeoutMs: REMOVE_TIMEOUT_MS }, async (sftp) => {
    let r: Resolved;
    try {
      r = await resolve(sftp, 'purge', root, segs);
    } catch (err) {
      if (err instanceof BackendError && err.code === 'not_found') return;
      throw err;
    }
    if (r.exists) await removeAt(r.fs, r.target, full);
  });
}

/**
 * Removes `path` (physical) and what is under it. A directory's other entries are unlinked a server
 * batch at a time (unlink never follows a link); its subdirectories are walked after its handle is
 * closed, so a deep tree holds one handle at a time.
 */
async function removeAt(fs: Fs, path: string, shown: string): Promise<void> {
  const st = await fs.lstat(path, shown);
  if (!st) return;
  if (kindOf(st.mode) !== 'dir') return deletedIfGone(fs.unlink(path, shown));
  const subdirs: string[] = [];
  for await (const batch of fs.batches(path, shown)) {
    const others: string[] = [];
    for (const { filename, attrs } of batch) {
      if (filename === '.' || filename === '..') continue;
      // removeAt lstats it again: a server whose readdir followed links cannot lead it through one.
      (kindOf(attrs.mode) === 'dir' ? subdirs : others).push(`${path}/${filename}`);
    }
    await Promise.all(others.map((p) => deletedIfGone(fs.unlink(p, shown))));
  }
  for (const d of subdirs) await removeAt(fs, d, shown);
  try {
    await fs.rmdir(path, shown);
  } catch (err) {
    if (err instanceof BackendError && err.code === 'not_found') return;
    // Not empty after the walk: something was written into it meanwhile; a retry walks it again.
    if (err instanceof BackendError && err.code === 'invalid_path')
      throw new BackendError('transient', `${shown}: changed while it was being removed`, { cause: err });
    throw err;
  }
}

/**
 * SFTP has no status for a full disk (OpenSSH answers ENOSPC and EDQUOT as a bare `Failure`), so a
 * write that failed so is told apart by the filesystem's free space, asked once its temporary file
 * is gone (statvfs@openssh.com): less than the upload, or no inode left, is `no_space`. Null when it
 * is not that (or the server cannot tell).
 */
async function outOfSpace(
  sftp: SFTPWrapper,
  dir: string,
  size: number,
  full: string,
  err: unknown,
): Promise<BackendError | null> {
  const cause = err instanceof BackendError ? err.cause : err;
  if (sftpCode(cause) !== SFTP_FAILURE) return null;
  const fs = await new Promise<Record<string, number | bigint> | null>((done) => {
    const timer = setTimeout(() => done(null), STATVFS_WAIT_MS);
    try {
      sftp.ext_openssh_statvfs(dir, (e, info: Record<string, number | bigint> | undefined) => {
        clearTimeout(timer);
        done(e || !info ? null : info);
      });
    } catch {
      // A server without the extension: the error stays as it was.
      clearTimeout(timer);
      done(null);
    }
  });
  if (!fs) return null;
  const free = Number(fs.f_bavail ?? 0) * Number(fs.f_frsize ?? 0);
  if (free >= size && Number(fs.f_favail ?? 1) > 0) return null;
  return new BackendError(
    'no_space',
    `${full}: no space left on device (${free} bytes free, ${size} to write)`,
    {
      cause: err,
    },
  );
}

/** How long the free-space check of a failed upload may take. */
const STATVFS_WAIT_MS = 5_000;

/** How long a failed upload waits for its temporary file's handle to close before unlinking it. */
const CLEANUP_WAIT_MS = 5_000;

/** Resolves once the stream has closed (or at once if it already has), or after `ms`. */
function closed(stream: Writable, ms: number): Promise<void> {
  if (stream.closed) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(done, ms);
    stream.once('close', () => {
      clearTimeout(timer);
      done();
    });
  });
}
