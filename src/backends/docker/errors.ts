import { BackendError } from '../backend.js';

/** The HTTP status docker-modem attaches to daemon errors; undefined for socket-level failures. */
export function statusCodeOf(err: unknown): number | undefined {
  const code = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

export const isNotFound = (err: unknown): boolean => statusCodeOf(err) === 404;
export const isConflict = (err: unknown): boolean => statusCodeOf(err) === 409;
/** 304: start of a running / stop of a stopped container — the desired state already holds. */
export const isNotModified = (err: unknown): boolean => statusCodeOf(err) === 304;

/** The daemon's own message (its JSON body) rather than docker-modem's generic wrapper text. */
export function daemonMessage(err: unknown): string {
  const json = (err as { json?: unknown } | null)?.json;
  if (
    typeof json === 'object' &&
    json !== null &&
    typeof (json as { message?: unknown }).message === 'string'
  ) {
    return (json as { message: string }).message;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * Daemon error → typed backend error. 404 → not_found; other 4xx (bad request, conflict) are
 * the caller's problem and will not heal by retrying → permanent; 5xx, socket errors, timeouts
 * (no status at all) → transient.
 */
export function toBackendError(err: unknown, what: string): BackendError {
  if (err instanceof BackendError) return err;
  const status = statusCodeOf(err);
  const detail = `${what}: ${daemonMessage(err)}`;
  if (status === 404) return new BackendError('not_found', detail, { cause: err });
  if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
    return new BackendError('permanent', detail, { cause: err });
  }
  return new BackendError('transient', detail, { cause: err });
}

/** How long a daemon call may go unanswered, per client (DockerBackend sets its callTimeoutMs). */
const callMs = new WeakMap<object, number>();
const DEFAULT_CALL_MS = 15_000;

export function setDaemonCallTimeout(docker: object, ms: number): void {
  callMs.set(docker, ms);
}

/**
 * Runs one daemon call with a deadline on its answer: a daemon that accepts the connection and then
 * stalls fails the call (`transient`) instead of holding it, and whoever waits on it, for ever. The
 * deadline ends with the answer: a stream that follows it (a hijacked exec, an archive) must
 * outlive it, and aborting the request then would cut that stream.
 */
export async function beforeDeadline<T>(
  docker: object,
  what: string,
  call: (abortSignal: AbortSignal) => Promise<T>,
): Promise<T> {
  const ms = callMs.get(docker) ?? DEFAULT_CALL_MS;
  const c = new AbortController();
  const timer = setTimeout(
    () => c.abort(new BackendError('transient', `${what}: no answer from dockerd within ${ms} ms`)),
    ms,
  );
  try {
    return await call(c.signal);
  } catch (err) {
    // docker-modem rejects an aborted call with its own error: the reason says what happened.
    if (c.signal.aborted) throw c.signal.reason as BackendError;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
