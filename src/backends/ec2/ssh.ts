/**
 * SSH/SFTP access to an instance: one connection per operation, authenticated with the
 * generation's key pair, with the host key pinned on first use (SshKeyStore.putHostKey) and any
 * later mismatch refused.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import ssh2 from 'ssh2';
import type { SFTPWrapper, Stats } from 'ssh2';
import { BackendError, type WorkspaceRoot } from '../backend.js';
import { workspacePath } from '../docker/paths.js';
import type { SshKeyStore } from '../ssh-keys.js';

export interface SshTarget {
  /** Instance whose host key is pinned (the pin is per instance id). */
  instanceId: string;
  host: string;
  port: number;
  username: string;
  /** OpenSSH private key text of the generation. */
  privateKey: string;
  hostKeys: Pick<SshKeyStore, 'getHostKey' | 'putHostKey'>;
  /** Bound on TCP connect + SSH handshake + authentication. */
  connectTimeoutMs: number;
  /** Bound on the whole operation once connected (default 30 s). */
  operationTimeoutMs?: number;
}

/** OpenSSH's fingerprint format (`ssh-keygen -lf`): `SHA256:` + unpadded base64 of the key blob. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** ssh2 SFTP status codes (draft-ietf-secsh-filexfer-02). */
const SFTP_NO_SUCH_FILE = 2;
const SFTP_PERMISSION_DENIED = 3;

function sftpCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Connects, opens an SFTP session, runs `fn`, and always closes the connection.
 * - host key differs from the pinned one → BackendError('permanent', 'host key changed …');
 * - refused/timed-out connection, failed authentication (the key may not be installed yet while
 *   user-data runs) → BackendError('transient').
 */
export async function withSftp<T>(target: SshTarget, fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
  const conn = new ssh2.Client();
  let hostKeyProblem: BackendError | undefined;
  const where = `${target.username}@${target.host}:${target.port} (${target.instanceId})`;

  const hostVerifier = (key: Buffer, verify: (valid: boolean) => void): void => {
    const seen = hostKeyFingerprint(key);
    const check = async (): Promise<boolean> => {
      let pinned = await target.hostKeys.getHostKey(target.instanceId);
      if (pinned === null) {
        // Trust on first use. The store keeps the first writer, so re-read: a concurrent first
        // connection that saw a different key loses here instead of silently re-pinning.
        await target.hostKeys.putHostKey(target.instanceId, seen);
        pinned = (await target.hostKeys.getHostKey(target.instanceId)) ?? seen;
      }
      if (pinned !== seen) {
        hostKeyProblem = new BackendError(
          'permanent',
          `host key changed for instance ${target.instanceId}: pinned ${pinned}, offered ${seen}`,
        );
        return false;
      }
      return true;
    };
    check().then(verify, (err: unknown) => {
      hostKeyProblem = new BackendError('transient', `checking the pinned host key: ${errText(err)}`, {
        cause: err,
      });
      verify(false);
    });
  };

  // Rejects on the first error or on close, whether during the handshake or the operation.
  let ready = false;
  const broken = new Promise<never>((_, reject) => {
    conn.on('error', (err: Error & { level?: string }) => {
      if (hostKeyProblem) return reject(hostKeyProblem);
      const what = !ready
        ? err.level === 'client-authentication'
          ? 'authentication failed'
          : 'connection failed'
        : 'connection broke';
      reject(new BackendError('transient', `ssh ${where}: ${what}: ${err.message}`, { cause: err }));
    });
    conn.once('close', () =>
      reject(hostKeyProblem ?? new BackendError('transient', `ssh ${where}: connection closed`)),
    );
  });
  broken.catch(() => undefined); // observed through the races below
  const connected = Promise.race([
    new Promise<void>((resolve) =>
      conn.once('ready', () => {
        ready = true;
        resolve();
      }),
    ),
    broken,
  ]);

  try {
    conn.connect({
      host: target.host,
      port: target.port,
      username: target.username,
      privateKey: target.privateKey,
      readyTimeout: target.connectTimeoutMs,
      hostVerifier,
      // Only the key: no agent, no password prompts.
      authHandler: ['publickey'],
    });
  } catch (err) {
    // ssh2 throws synchronously on an unparsable private key: retrying will not fix that.
    conn.end();
    throw new BackendError('permanent', `ssh ${where}: ${errText(err)}`, { cause: err });
  }

  let timer: NodeJS.Timeout | undefined;
  try {
    await connected;
    const sftp = await Promise.race([
      new Promise<SFTPWrapper>((resolve, reject) =>
        conn.sftp((err, s) =>
          err
            ? reject(new BackendError('transient', `sftp on ${where}: ${err.message}`, { cause: err }))
            : resolve(s),
        ),
      ),
      broken,
    ]);
    const limit = target.operationTimeoutMs ?? 30_000;
    const op = fn(sftp);
    op.catch(() => undefined); // a late failure after a lost race is not an unhandled rejection
    return await Promise.race([
      op,
      broken,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new BackendError('transient', `sftp on ${where}: no answer within ${limit} ms`)),
          limit,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    conn.end();
  }
}

const realpath = (sftp: SFTPWrapper, path: string): Promise<string> =>
  new Promise((resolve, reject) => sftp.realpath(path, (err, p) => (err ? reject(err) : resolve(p))));
const stat = (sftp: SFTPWrapper, path: string): Promise<Stats> =>
  new Promise((resolve, reject) => sftp.stat(path, (err, s) => (err ? reject(err) : resolve(s))));
const readAll = (sftp: SFTPWrapper, path: string): Promise<Buffer> =>
  new Promise((resolve, reject) => sftp.readFile(path, (err, b) => (err ? reject(err) : resolve(b))));

function sftpError(err: unknown, path: string): BackendError {
  if (err instanceof BackendError) return err;
  const code = sftpCode(err);
  if (code === SFTP_NO_SUCH_FILE) return new BackendError('not_found', `${path} not found`, { cause: err });
  if (code === SFTP_PERMISSION_DENIED)
    return new BackendError('permanent', `${path}: permission denied`, { cause: err });
  return new BackendError('transient', `sftp ${path}: ${errText(err)}`, { cause: err });
}

/**
 * Reads `root/path` through SFTP. The path is first checked lexically (workspacePath: no `..`,
 * absolute path, NUL, backslash), then resolved on the instance (realpath follows every symlink)
 * and refused unless the result is still inside the resolved root, so a link planted in the
 * workspace cannot redirect the read. Directories and special files are refused too.
 *
 * A link swapped between the check and the read (TOCTOU) is not prevented; the read itself runs
 * on the fully resolved path, which contains no links at check time.
 */
export async function sftpReadFile(sftp: SFTPWrapper, root: WorkspaceRoot, path: string): Promise<Buffer> {
  const full = workspacePath(root, path);
  let rootReal: string;
  try {
    rootReal = await realpath(sftp, root);
  } catch (err) {
    throw sftpError(err, root);
  }
  let real: string;
  try {
    real = await realpath(sftp, full);
  } catch (err) {
    throw sftpError(err, full);
  }
  real = posix.normalize(real);
  if (real === rootReal || !real.startsWith(rootReal === '/' ? '/' : `${rootReal}/`)) {
    throw new BackendError('invalid_path', `${full} resolves outside ${root}`);
  }
  let st: Stats;
  try {
    st = await stat(sftp, real);
  } catch (err) {
    throw sftpError(err, full);
  }
  if (st.isDirectory()) throw new BackendError('invalid_path', `${full} is a directory`);
  if (!st.isFile()) throw new BackendError('invalid_path', `${full} is not a regular file`);
  try {
    return await readAll(sftp, real);
  } catch (err) {
    throw sftpError(err, full);
  }
}

/** A connected, authenticated SSH client; `closed` resolves once the connection is gone. */
export interface SshConnection {
  conn: ssh2.Client;
  where: string;
  closed: Promise<void>;
}

/**
 * Connects and authenticates with the same rules as withSftp (key only, host key pinned on first
 * use, a changed host key refused as `permanent`, connection/auth failures `transient`), and hands
 * the open connection to the caller, who must `conn.end()` it. For long-lived sessions (terminal).
 */
export async function connectSsh(target: SshTarget): Promise<SshConnection> {
  const conn = new ssh2.Client();
  let hostKeyProblem: BackendError | undefined;
  const where = `${target.username}@${target.host}:${target.port} (${target.instanceId})`;
  const hostVerifier = (key: Buffer, verify: (valid: boolean) => void): void => {
    const seen = hostKeyFingerprint(key);
    const check = async (): Promise<boolean> => {
      let pinned = await target.hostKeys.getHostKey(target.instanceId);
      if (pinned === null) {
        await target.hostKeys.putHostKey(target.instanceId, seen);
        pinned = (await target.hostKeys.getHostKey(target.instanceId)) ?? seen;
      }
      if (pinned !== seen) {
        hostKeyProblem = new BackendError(
          'permanent',
          `host key changed for instance ${target.instanceId}: pinned ${pinned}, offered ${seen}`,
        );
        return false;
      }
      return true;
    };
    check().then(verify, (err: unknown) => {
      hostKeyProblem = new BackendError('transient', `checking the pinned host key: ${errText(err)}`, {
        cause: err,
      });
      verify(false);
    });
  };
  const closed = new Promise<void>((resolve) => conn.once('close', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    const onError = (err: Error & { level?: string }): void => {
      if (hostKeyProblem) return reject(hostKeyProblem);
      const what = err.level === 'client-authentication' ? 'authentication failed' : 'connection failed';
      reject(new BackendError('transient', `ssh ${where}: ${what}: ${err.message}`, { cause: err }));
    };
    conn.on('error', onError);
    conn.once('close', () =>
      reject(hostKeyProblem ?? new BackendError('transient', `ssh ${where}: connection closed`)),
    );
    conn.once('ready', () => resolve());
  });
  try {
    conn.connect({
      host: target.host,
      port: target.port,
      username: target.username,
      privateKey: target.privateKey,
      readyTimeout: target.connectTimeoutMs,
      hostVerifier,
      authHandler: ['publickey'],
    });
  } catch (err) {
    conn.end();
    throw new BackendError('permanent', `ssh ${where}: ${errText(err)}`, { cause: err });
  }
  try {
    await ready;
  } catch (err) {
    conn.end();
    throw err;
  }
  // Later errors surface as `close`; keep them from being unhandled 'error' events.
  conn.on('error', () => undefined);
  return { conn, where, closed };
}
