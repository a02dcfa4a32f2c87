/** Terminal on a Docker workspace: `docker exec` with a TTY, hijacked stdin/stdout, exec resize. */
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type Dockerode from 'dockerode';
import { BackendError, type TerminalSession, type TerminalSize } from '../backend.js';
import { drained } from '../streams.js';
import { beforeDeadline, statusCodeOf } from './errors.js';

/**
 * Marks every process of one terminal session: the shell is started with it in its environment and
 * every process started from the shell inherits it, so closing the session can find them all.
 */
const MARKER = 'WO_TERMINAL_SESSION';

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

function dockerError(err: unknown, what: string): BackendError {
  const status = statusCodeOf(err);
  if (status === 404) return new BackendError('not_found', `${what}: not found`, { cause: err });
  // Exec refused: the container is not running.
  if (status === 409) return new BackendError('not_running', `${what}: not running`, { cause: err });
  return new BackendError('transient', `${what}: ${errText(err)}`, { cause: err });
}

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The id goes into the shell's environment and into a shell script: only ever a uuid. */
function requireSessionId(sessionId: string): void {
  if (!SESSION_ID.test(sessionId))
    throw new BackendError('permanent', `not a terminal session id: ${sessionId}`);
}

/** Exactly the processes carrying the marker (the shell and its descendants), signalled. */
function killScript(sessionId: string, signal: string): string {
  requireSessionId(sessionId);
  return [
    `for d in /proc/[0-9]*; do`,
    `  [ "\${d#/proc/}" = "$$" ] && continue`,
    `  if tr '\\0' '\\n' < "$d/environ" 2>/dev/null | grep -qx '${MARKER}=${sessionId}'; then`,
    `    kill -${signal} "\${d#/proc/}" 2>/dev/null`,
    `  fi`,
    `done`,
    `exit 0`,
  ].join('\n');
}

/** How long a short command (the session's kill script) may run before it is left. */
const QUIET_RUN_MS = 10_000;

/** Runs a short command in the container (no TTY) and waits for it to finish, within bounds. */
async function runQuietly(docker: Dockerode, container: Dockerode.Container, cmd: string[]): Promise<void> {
  const what = `running ${cmd[0] ?? 'a command'} in ${container.id}`;
  const exec = await beforeDeadline(docker, what, (abortSignal) =>
    container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: false, abortSignal }),
  );
  const stream = await beforeDeadline(docker, what, (abortSignal) =>
    exec.start({ hijack: false, abortSignal }),
  );
  let timer: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', () => resolve());
    stream.resume();
    // A daemon that stalls mid-answer must not hold a session's close (and a shutdown) for ever.
    timer = setTimeout(() => {
      (stream as Partial<Duplex>).destroy?.();
      resolve();
    }, QUIET_RUN_MS);
  });
  clearTimeout(timer);
}

/** How long a hung-up session's shell gets to end before whatever carries the marker is killed. */
const HANGUP_GRACE_MS = 1_000;
const HANGUP_POLL_MS = 50;

/**
 * Hangs up a session like a terminal would (SIGHUP to every process carrying its marker), then
 * SIGKILLs whatever still carries it: descendants that ignored the hangup, or a shell that did.
 * `shellRunning` (the exec's state, when the caller has the exec) ends the grace early once the
 * shell is gone; without it the whole grace is given. Throws the daemon's error (dockerError).
 */
async function hangUpThenKill(
  docker: Dockerode,
  container: Dockerode.Container,
  sessionId: string,
  shellRunning?: () => Promise<boolean>,
): Promise<void> {
  const run = async (signal: string): Promise<void> => {
    const script = killScript(sessionId, signal);
    try {
      await runQuietly(docker, container, ['/bin/sh', '-c', script]);
    } catch (err) {
      throw dockerError(err, `ending terminal session ${sessionId} in ${container.id}`);
    }
  };
  if (!shellRunning || (await shellRunning())) {
    await run('HUP');
    const deadline = Date.now() + HANGUP_GRACE_MS;
    while (Date.now() < deadline && (!shellRunning || (await shellRunning()))) {
      await new Promise((r) => setTimeout(r, HANGUP_POLL_MS));
    }
  }
  await run('KILL');
}

/**
 * Kills what is left of a session whose client went away without closing it (its API process
 * died: dockerd keeps the exec running). Container gone or not running: nothing is left, done.
 */
export async function killSession(
  docker: Dockerode,
  containerName: string,
  sessionId: string,
): Promise<void> {
  try {
    await hangUpThenKill(docker, docker.getContainer(containerName), sessionId);
  } catch (err) {
    if (err instanceof BackendError && (err.code === 'not_found' || err.code === 'not_running')) return;
    throw err;
  }
}

export async function openTerminal(
  docker: Dockerode,
  containerName: string,
  size: TerminalSize,
  sessionId: string = randomUUID(),
): Promise<TerminalSession> {
  requireSessionId(sessionId);
  const container = docker.getContainer(containerName);
  let exec: Dockerode.Exec;
  try {
    exec = await beforeDeadline(docker, `opening a terminal in ${containerName}`, (abortSignal) =>
      container.exec({
        Cmd: ['/bin/sh'],
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: true,
        Env: ['TERM=xterm', `${MARKER}=${sessionId}`],
        abortSignal,
      }),
    );
  } catch (err) {
    throw dockerError(err, `opening a terminal in ${containerName}`);
  }
  let stream: Duplex;
  try {
    stream = (await beforeDeadline(docker, `starting the terminal in ${containerName}`, (abortSignal) =>
      exec.start({ hijack: true, stdin: true, Tty: true, abortSignal }),
    )) as Duplex;
  } catch (err) {
    throw dockerError(err, `starting the terminal in ${containerName}`);
  }

  const ended = new Promise<void>((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
    stream.once('error', () => resolve());
  });
  const exited: Promise<number | null> = ended.then(async () => {
    try {
      const info = await beforeDeadline(docker, 'terminal exit', (abortSignal) =>
        exec.inspect({ abortSignal }),
      );
      return info.Running ? null : (info.ExitCode ?? null);
    } catch {
      return null;
    }
  });

  const resize = async ({ cols, rows }: TerminalSize): Promise<void> => {
    try {
      await beforeDeadline(docker, 'terminal resize', (abortSignal) =>
        exec.resize({ h: rows, w: cols, abortSignal }),
      );
    } catch (err) {
      throw dockerError(err, `resizing the terminal in ${containerName}`);
    }
  };
  try {
    await resize(size);
  } catch (err) {
    // The shell may already be gone (e.g. the container stopped meanwhile): report it, leave nothing.
    stream.destroy();
    throw err;
  }

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const stillRunning = async (): Promise<boolean> => {
        try {
          return (
            await beforeDeadline(docker, 'terminal state', (abortSignal) => exec.inspect({ abortSignal }))
          ).Running;
        } catch {
          return false;
        }
      };
      try {
        await hangUpThenKill(docker, container, sessionId, stillRunning);
      } catch {
        // Container stopped or gone: so is every process of the session.
      }
      stream.destroy();
      await Promise.race([ended, new Promise((r) => setTimeout(r, 2_000))]);
    })();
    return closing;
  };

  return {
    output: stream,
    write(data: Buffer) {
      return !stream.destroyed && stream.writable ? stream.write(data) : true;
    },
    drained: () => drained(stream),
    resize,
    exited,
    close,
  };
}
