export interface WaitForOptions {
  /** Overall deadline. */
  timeoutMs: number;
  /** Pause between attempts (default 100 ms). */
  intervalMs?: number;
  /** What is awaited, for the error message: "PostgreSQL on 127.0.0.1:5432 to accept SELECT 1". */
  describe: string;
  /** Cap on a single attempt (default: the time left). A hung attempt is abandoned, its signal aborted. */
  attemptTimeoutMs?: number;
}

export interface WaitForAttempt {
  /** 1-based attempt number. */
  attempt: number;
  /** Aborted when the attempt is abandoned (attempt timeout or overall deadline). */
  signal: AbortSignal;
}

export class WaitForTimeoutError extends Error {
  constructor(
    message: string,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WaitForTimeoutError';
  }
}

type Falsy = false | null | undefined;

/**
 * Polls `fn` until it returns something other than false/null/undefined, and returns that value.
 * A throw counts as "not yet"; the last error (or result) ends up in the deadline error, so a test
 * that times out says what it was waiting for and why it never came.
 */
export async function waitFor<T>(
  fn: (attempt: WaitForAttempt) => T | Promise<T>,
  opts: WaitForOptions,
): Promise<Exclude<T, Falsy>> {
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + opts.timeoutMs;
  let attempts = 0;
  let lastError: unknown;
  let lastResult: unknown;
  let sawError = false;

  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0 && attempts > 0) break;
    attempts++;
    const budget = Math.max(1, Math.min(left, opts.attemptTimeoutMs ?? left));
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    try {
      const result = await Promise.race([
        Promise.resolve().then(() => fn({ attempt: attempts, signal: controller.signal })),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`attempt timed out after ${budget} ms`)), budget);
        }),
      ]);
      if (result !== false && result !== null && result !== undefined) {
        return result as Exclude<T, Falsy>;
      }
      lastResult = result;
      sawError = false;
    } catch (err) {
      lastError = err;
      sawError = true;
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
    const pause = Math.min(intervalMs, deadline - Date.now());
    if (pause <= 0) break;
    await new Promise((resolve) => setTimeout(resolve, pause));
  }

  const last = sawError
    ? `last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`
    : `last result: ${String(lastResult)}`;
  throw new WaitForTimeoutError(
    `timed out after ${opts.timeoutMs} ms (${attempts} attempts) waiting for ${opts.describe}; ${last}`,
    attempts,
    sawError ? { cause: lastError } : undefined,
  );
}
