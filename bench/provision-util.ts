/**
 * Shared pieces of bench/provision.ts: progress on stderr, Ctrl-C handling, polling, statistics and
 * a watcher of Docker `start` events (when a workspace container or an ec2-sim VM really started).
 */
import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import { BOOT_PHASES } from '../src/api/schemas.js';

export const HEARTBEAT_INTERVAL_MS = 5_000;
export const POLL_INTERVAL_MS = 50;
/** Per-attempt cap of a /health or GET poll: a request through docker-proxy can hang otherwise. */
export const ATTEMPT_TIMEOUT_MS = 1_000;
export const PROVISION_TIMEOUT_MS = 120_000;
/** Port the agent listens on (container: published; instance: http://<private ip>:8080). */
export const AGENT_PORT = 8080;
export { BOOT_PHASES };
export type BootPhase = (typeof BOOT_PHASES)[number];

export const progress = (message: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
};

export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

// ---------------------------------------------------------------------------------------------
// Interruption: Ctrl-C rejects whatever phase is awaited, so the finally blocks still clean up.

export const interrupt = new AbortController();
const interrupted = new Promise<never>((_, reject) => {
  interrupt.signal.addEventListener('abort', () => reject(interrupt.signal.reason as Error));
});
interrupted.catch(() => undefined);
/**
 * One Ctrl-C can arrive more than once: the `tsx` CLI (`npx tsx bench/…`) relays a SIGINT to this
 * process unless this process reports it within 30 ms, and the terminal sends it too. Repeats
 * within this window are the same Ctrl-C, not a request to skip the clean-up.
 */
const REPEAT_GRACE_MS = 2_000;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    const first = Date.now();
    progress(`${signal}: cleaning up (send it again to exit at once)`);
    process.on(signal, () => {
      if (Date.now() - first >= REPEAT_GRACE_MS) process.exit(130);
    });
    interrupt.abort(new Error(`interrupted by ${signal}`));
  });
}

export function guard<T>(p: Promise<T>): Promise<T> {
  return Promise.race([p, interrupted]);
}

// ---------------------------------------------------------------------------------------------
// Statistics

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p95: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
export function pct(sorted: number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? Number.NaN;
}

export function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    min: sorted[0] ?? Number.NaN,
    p50: pct(sorted, 50),
    p95: pct(sorted, 95),
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

export const ms = (v: number): string => (Number.isFinite(v) ? String(Math.round(v)) : '–');
export const fmt = (v: number, digits = 2): string => (Number.isFinite(v) ? v.toFixed(digits) : '–');
/** x / y as `1.23×`; '–' when y is not positive or x not finite. */
export const times = (x: number, y: number): string =>
  y > 0 && Number.isFinite(x) ? `${(x / y).toFixed(2)}×` : '–';
export const row = (cells: string[]): string => `| ${cells.join(' | ')} |`;

/** Runs a bench's main(): exit 0 when it resolves; on an error the stack to stderr and exit 1. */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      progress(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exit(1);
    },
  );
}

/** Settles every promise first (so nothing is left running unobserved), then fails on the first error. */
export async function allOrFail<T>(what: string, promises: Array<Promise<T>>): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) {
    const reason = failed[0]?.reason;
    throw new Error(`${what}: ${failed.length} of ${results.length} failed; first: ${errorText(reason)}`, {
      cause: reason,
    });
  }
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

// ---------------------------------------------------------------------------------------------
// Polling

/** Client requests the timed waits issued, to show how much load the pollers themselves add. */
export const pollCount = { health: 0, get: 0 };

export interface PollLoad {
  requests: number;
  windowMs: number;
}

/** Thrown by a probe to end a poll at once instead of retrying. */
export class FatalError extends Error {}

/**
 * Calls `probe` every POLL_INTERVAL_MS until it returns a truthy value. Each attempt gets its own
 * AbortSignal.timeout (a request through docker-proxy can hang); a throw counts as "not yet"
 * unless it is a FatalError; Ctrl-C ends the wait.
 */
export async function poll<T>(
  what: string,
  probe: (signal: AbortSignal) => Promise<T | false | null | undefined>,
  timeoutMs = PROVISION_TIMEOUT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (interrupt.signal.aborted) throw interrupt.signal.reason as Error;
    try {
      const value = await probe(AbortSignal.timeout(ATTEMPT_TIMEOUT_MS));
      if (value) return value;
    } catch (err) {
      if (err instanceof FatalError) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`, { cause: lastError });
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

export async function healthOk(endpoint: string, signal: AbortSignal): Promise<boolean> {
  pollCount.health++;
  const res = await fetch(`${endpoint}/health`, { signal });
  await res.arrayBuffer();
  return res.status === 200;
}

// ---------------------------------------------------------------------------------------------
// Docker `start` events

export interface StartWatcher {
  /** Label value (`key` of the watcher) → wall clock (ms) of the first `start` event. */
  readonly starts: Map<string, number>;
  stop(): void;
}

/**
 * Records when dockerd started each container carrying `labelKey`, keyed by that label's value
 * (dockerd's own timestamp, same host clock as everything else). Both DockerBackend's containers
 * and ec2-sim's VM containers carry `wo.workspace-id`.
 */
export async function watchStarts(docker: Dockerode, labelKey: string): Promise<StartWatcher> {
  const starts = new Map<string, number>();
  const stream = (await docker.getEvents({
    filters: { type: ['container'], event: ['start'], label: [labelKey] },
  })) as Readable;
  let buffered = '';
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (!line) continue;
      try {
        const event = JSON.parse(line) as {
          timeNano?: number;
          time?: number;
          Actor?: { Attributes?: Record<string, string> };
        };
        const key = event.Actor?.Attributes?.[labelKey];
        const at = event.timeNano ? event.timeNano / 1e6 : (event.time ?? 0) * 1000;
        if (key && !starts.has(key)) starts.set(key, at);
      } catch {
        // not JSON: ignore
      }
    }
  });
  stream.on('error', (err) => progress(`docker events stream: ${errorText(err)}`));
  return { starts, stop: () => stream.destroy() };
}
