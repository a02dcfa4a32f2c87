/**
 * SSH/SFTP access to an instance: one connection per operation, authenticated with the
 * generation's key pair, with the host key pinned on first use (SshKeyStore.putHostKey) and any
 * later mismatch refused.
 */
import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';
import type { SFTPWrapper } from 'ssh2';
import { BackendError } from '../backend.js';
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
  /**
   * Throws a `not_running` BackendError once the instance has left `running` (stopped, being
   * terminated, gone). Asked before a failed handshake is tried again and, while one is slow, every
   * LIVENESS_CHECK_MS: a connection to an instance going away (a restart, stop or delete of its
   * workspace) ends within seconds instead of waiting out every try's timeout (handshakes to an
   * address that no longer answers). Any other failure of the check is ignored: the connect goes on.
   */
  stillRunning?: () => Promise<void>;
}

/** OpenSSH's fingerprint format (`ssh-keygen -lf`): `SHA256:` + unpadded base64 of the key blob. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** ssh2 SFTP status codes (draft-ietf-secsh-filexfer-02). */
const SFTP_NO_SUCH_FILE = 2;
const SFTP_PERMISSION_DENIED = 3;

export function sftpCode(err: unknown): number | undefined {
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
  const s = await openSftp(target);
  try {
    return await s.run(fn);
  } finally {
    s.end();
  }
}

/** An open SFTP session; the caller must `end()` it. */
export interface SftpSession {
  sftp: SFTPWrapper;
  where: string;
  /** Settles once the connection is gone. */
  closed: Promise<void>;
  /** Runs `fn` bounded by the operation timeout and failed by a broken connection. */
  run<T>(fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T>;
  end(): void;
}

/**
 * Connects and opens an SFTP session that outlives one call (a streamed read ends it when the
 * stream is done). Same error rules as withSftp.
 */
export async function openSftp(target: SshTarget): Promise<SftpSession> {
  const { conn, where, closed } = await connectSsh(target);
  // A connection that drops mid-operation fails the operation instead of hanging it.
  const broken = closed.then(() => {
    throw new BackendError('transient', `ssh ${where}: connection broke`);
  });
  broken.catch(() => undefined); // observed through the races below
  const limit = target.operationTimeoutMs ?? 30_000;
  const run = async <T>(fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const op = fn(sftp);
    op.catch(() => undefined); // a late failure after a lost race is not an unhandled rejection
    try {
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
    }
  };
  let sftp: SFTPWrapper;
  try {
    sftp = await Promise.race([
      new Promise<SFTPWrapper>((resolve, reject) =>
        conn.sftp((err, s) =>
          err
            ? reject(new BackendError('transient', `sftp on ${where}: ${err.message}`, { cause: err }))
            : resolve(s),
        ),
      ),
      broken,
    ]);
  } catch (err) {
    conn.end();
    throw err;
  }
  return { sftp, where, closed, run, end: () => conn.end() };
}

/** An SFTP failure as a typed backend error naming `path`. */
export function sftpError(err: unknown, path: string): BackendError {
  if (err instanceof BackendError) return err;
  const code = sftpCode(err);
  if (code === SFTP_NO_SUCH_FILE) return new BackendError('not_found', `${path} not found`, { cause: err });
  if (code === SFTP_PERMISSION_DENIED)
    return new BackendError('permanent', `${path}: permission denied`, { cause: err });
  return new BackendError('transient', `sftp ${path}: ${errText(err)}`, { cause: err });
}

/** A connected, authenticated SSH client; `closed` resolves once the connection is gone. */
export interface SshConnection {
  conn: ssh2.Client;
  where: string;
  closed: Promise<void>;
}

/**
 * sshd drops unauthenticated connections at random beyond MaxStartups (default 10:30:100): a burst
 * of file calls or terminals to one instance (a client listing a few folders at once) handshakes a
 * few at a time per host in this process, and a dropped handshake is tried again.
 */
const MAX_HANDSHAKES_PER_HOST = 4;
const CONNECT_ATTEMPTS = 3;
/** A handshake slower than this asks `stillRunning` (and again at this pace until it ends). */
export const LIVENESS_CHECK_MS = 1_000;

/** `stillRunning`'s verdict: the not_running it threw, or null (running, unknown, or no check). */
async function leftRunning(target: SshTarget): Promise<BackendError | null> {
  if (!target.stillRunning) return null;
  try {
    await target.stillRunning();
    return null;
  } catch (err) {
    return err instanceof BackendError && err.code === 'not_running' ? err : null;
  }
}

const handshakes = new Map<string, { active: number; waiting: (() => void)[] }>();

async function limited<T>(host: string, fn: () => Promise<T>): Promise<T> {
  let slot = handshakes.get(host);
  if (!slot) {
    slot = { active: 0, waiting: [] };
    handshakes.set(host, slot);
  }
  const s = slot;
  while (s.active >= MAX_HANDSHAKES_PER_HOST) await new Promise<void>((resolve) => s.waiting.push(resolve));
  s.active++;
  try {
    return await fn();
  } finally {
    s.active--;
    const next = s.waiting.shift();
    if (next) next();
    else if (s.active === 0) handshakes.delete(host);
  }
}

/**
 * Connects and authenticates with the same rules as withSftp (key only, host key pinned on first
 * use, a changed host key refused as `permanent`, connection/auth failures `transient`), and hands
 * the open connection to the caller, who must `conn.end()` it. At most a few handshakes per host
 * at a time; a transient failure is tried again twice, unless `stillRunning` says the instance has
 * left `running` (then that `not_running`), which it also says of a slow handshake (see SshTarget).
 */
export async function connectSsh(target: SshTarget): Promise<SshConnection> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await limited(`${target.host}:${target.port}`, () => watchedHandshake(target));
    } catch (err) {
      const retryable = err instanceof BackendError && err.code === 'transient' && attempt < CONNECT_ATTEMPTS;
      if (!retryable) throw err;
      const gone = await leftRunning(target);
      if (gone) throw gone;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

/** A handshake abandoned (its connection ended) as soon as `stillRunning` says the instance left. */
async function watchedHandshake(target: SshTarget): Promise<SshConnection> {
  if (!target.stillRunning) return handshake(target);
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const check = (): void => {
    timer = setTimeout(() => {
      void leftRunning(target).then((gone) => {
        if (abort.signal.aborted) return; // the handshake ended meanwhile
        if (gone) abort.abort(gone);
        else check();
      });
    }, LIVENESS_CHECK_MS);
  };
  check();
  try {
    return await handshake(target, abort.signal);
  } finally {
    clearTimeout(timer);
    // Stops a check in flight from going on (a reason that is no BackendError aborts nothing).
    if (!abort.signal.aborted) abort.abort(null);
  }
}

async function handshake(target: SshTarget, signal?: AbortSignal): Promise<SshConnection> {
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
    // Abandoned (the instance left `running`): the connection goes at once, connected or not.
    signal?.addEventListener('abort', () => {
      if (!(signal.reason instanceof BackendError)) return;
      reject(signal.reason);
      conn.destroy();
    });
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
  // SFTP and terminals are small request/answer exchanges: with Nagle's algorithm on, a small write
  // behind an unacknowledged one waits for the peer's delayed ACK (tens of ms per round trip).
  conn.setNoDelay(true);
  return { conn, where, closed };
}
