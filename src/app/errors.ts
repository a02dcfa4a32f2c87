/**
 * What a use case refuses, in its own terms: a kind (the API maps each to its HTTP status, in
 * src/api/errors.ts), the contract's error code, and a message safe to show the caller.
 */
export type RefusalKind =
  | 'invalid'
  | 'not_found'
  | 'conflict'
  | 'forbidden'
  | 'payment_required'
  | 'too_large'
  /** The workspace's disk is full: nothing was written; retrying will not help until space is freed. */
  | 'insufficient_storage'
  | 'unavailable'
  /** A system the use case relies on (a backend, an agent) failed it. */
  | 'upstream_failed';

export class AppError extends Error {
  constructor(
    readonly kind: RefusalKind,
    readonly code: string,
    message: string,
    /** The request field at fault (invalid), or when a retry may succeed (unavailable). */
    readonly extra: { field?: string; retryAfterSeconds?: number } = {},
    /** What failed underneath (a backend's error): logged with a 5xx answer, never sent. */
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const invalid = (message: string, field?: string) =>
  new AppError('invalid', 'invalid_request', message, { field });
export const missing = (what = 'workspace') => new AppError('not_found', 'not_found', `${what} not found`);
export const conflicting = (message: string, code = 'conflict') => new AppError('conflict', code, message);
export const quotaExceeded = (message: string) => new AppError('forbidden', 'quota_exceeded', message);
export const beingDeleted = () => conflicting('workspace is being deleted');

/**
 * Changes to a workspace being deleted are refused (409): its secrets, plugins and schedules go at
 * the delete's end, and a change made then is lost or outlives it.
 */
export function refuseWhileDeleting(w: { status: string }): void {
  if (w.status === 'deleting') throw beingDeleted();
}

/** Temporal down, too slow, or no worker: the caller may retry after this many seconds. */
export const RETRY_AFTER_SECONDS = 5;

export const temporalDown = (message = 'workflow service unavailable') =>
  new AppError('unavailable', 'temporal_unavailable', message, { retryAfterSeconds: RETRY_AFTER_SECONDS });

/** No worker polls the task queue: what was asked would wait in the queue, so it is refused. */
export class NoWorkerPolling extends Error {}

/**
 * Runs a "does a worker poll?" check (EntityClient.requireWorker): its failure is the 503
 * temporal_unavailable that says which (no worker, or Temporal not answering) and what `outcome`
 * left as it was.
 */
export async function requireWorkerFor(check: () => Promise<void>, outcome: string): Promise<void> {
  try {
    await check();
  } catch (err) {
    throw err instanceof NoWorkerPolling
      ? temporalDown(`no worker is polling the task queue; ${outcome}`)
      : temporalDown(`workflow service unavailable; ${outcome}`);
  }
}
