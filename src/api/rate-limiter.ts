/**
 * A fixed-window request limiter with express-rate-limit's behaviour as this API configures it
 * (in-memory store, draft-8 `RateLimit`/`RateLimit-Policy` headers, `Retry-After` on a refusal,
 * optionally not counting successful requests), without its per-request cost: it runs synchronously
 * (no promise per step, no three listeners per response), and a key's draft-8 partition key (a
 * SHA-256) is computed once, not on every request. test/unit/rate-limiter.test.ts holds it to the
 * library's answers, header for header.
 */
import { createHash } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';

interface Client {
  totalHits: number;
  resetTime: number;
}

/**
 * The library's MemoryStore algorithm: a key's window starts at its first hit; keys not hit for a
 * whole window are dropped in bulk (two maps, swapped every window).
 */
export class WindowStore {
  private previous = new Map<string, Client>();
  private current = new Map<string, Client>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.timer = setInterval(() => {
      this.previous = this.current;
      this.current = new Map();
    }, windowMs);
    this.timer.unref();
  }

  increment(key: string): Client {
    const client = this.client(key);
    const now = this.now();
    if (client.resetTime <= now) {
      client.totalHits = 0;
      client.resetTime = now + this.windowMs;
    }
    client.totalHits++;
    return client;
  }

  decrement(key: string): void {
    const client = this.client(key);
    if (client.totalHits > 0) client.totalHits--;
  }

  private client(key: string): Client {
    let client = this.current.get(key);
    if (client) return client;
    client = this.previous.get(key);
    if (client) this.previous.delete(key);
    else client = { totalHits: 0, resetTime: this.now() + this.windowMs };
    this.current.set(key, client);
    return client;
  }

  close(): void {
    clearInterval(this.timer);
  }
}

/** The library's draft-8 partition key of a limiter key. */
export function partitionKey(key: string): string {
  const hex = createHash('sha256').update(key).digest('hex').slice(0, 12);
  return Buffer.from(hex).toString('base64');
}

/** The library's policy name for a window: `30-in-1min`. */
export function policyName(limit: number, windowMs: number): string {
  const seconds = windowMs / 1000;
  const minutes = seconds / 60;
  const hours = minutes / 60;
  const days = hours / 24;
  let duration: string;
  if (seconds < 60) duration = `${seconds}sec`;
  else if (minutes < 60) duration = `${minutes}min`;
  else if (hours < 24) duration = `${hours}hr${hours > 1 ? 's' : ''}`;
  else duration = `${days}day${days > 1 ? 's' : ''}`;
  return `${limit}-in-${duration}`;
}

export interface LimiterOptions {
  windowMs: number;
  limit: number;
  key: (req: Request, res: Response) => string;
  /** Not counted, no headers. */
  skip?: (req: Request) => boolean;
  /** Counted while it runs; taken back when it ends like this (express-rate-limit's skipSuccessfulRequests). */
  uncountedWhen?: (res: Response) => boolean;
  /** Answers a request over the limit (Retry-After is already set). */
  refuse: (req: Request, res: Response) => void;
  now?: () => number;
}

const PARTITION_KEYS_KEPT = 10_000;

export function fixedWindowLimiter(opts: LimiterOptions): RequestHandler {
  const now = opts.now ?? Date.now;
  const store = new WindowStore(opts.windowMs, now);
  const name = policyName(opts.limit, opts.windowMs);
  const windowSeconds = Math.ceil(opts.windowMs / 1000);
  const partitionKeys = new Map<string, string>();
  const partitionKeyOf = (key: string): string => {
    let pk = partitionKeys.get(key);
    if (pk === undefined) {
      pk = partitionKey(key);
      if (partitionKeys.size >= PARTITION_KEYS_KEPT) partitionKeys.clear();
      partitionKeys.set(key, pk);
    }
    return pk;
  };
  return (req, res, next) => {
    if (opts.skip?.(req)) return next();
    const key = opts.key(req, res);
    const client = store.increment(key);
    const totalHits = client.totalHits;
    // As the library: the window's end as it was at this request (a later reset is not undone).
    const resetTime = client.resetTime;
    const resetSeconds = () => Math.max(0, Math.ceil((resetTime - now()) / 1000));
    if (!res.headersSent) {
      const remaining = Math.max(opts.limit - totalHits, 0);
      res.append('RateLimit', `"${name}"; r=${remaining}; t=${resetSeconds()}`);
      res.append(
        'RateLimit-Policy',
        `"${name}"; q=${opts.limit}; w=${windowSeconds}; pk=:${partitionKeyOf(key)}:`,
      );
    }
    const uncounted = opts.uncountedWhen;
    if (uncounted) {
      res.once('finish', () => {
        if (uncounted(res) && now() < resetTime) store.decrement(key);
      });
    }
    if (totalHits > opts.limit) {
      if (!res.headersSent) res.setHeader('Retry-After', String(resetSeconds()));
      opts.refuse(req, res);
      return;
    }
    next();
  };
}
