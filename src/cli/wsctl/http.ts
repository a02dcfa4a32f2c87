/**
 * The HTTP side of `wsctl`: one client per run, bearer token on every call, and every answer that
 * is not a success turned into a CliError carrying the server's `{"error":{"code","message"}}`
 * as one line, with the exit code for its status.
 */
import { CliError, EXIT, exitCodeForStatus, oneLine } from './errors.js';

export interface RequestOptions {
  query?: Record<string, string | number | undefined>;
  /** JSON body. */
  body?: unknown;
  /** Raw body (files). */
  raw?: Uint8Array;
  accept?: string;
  signal?: AbortSignal;
}

/** GETs repeated on 503 (the contract's "nothing changed, try again after Retry-After"). */
const GET_RETRIES = 3;
const MAX_RETRY_WAIT_S = 10;

export class Client {
  constructor(
    readonly url: string,
    readonly token: string | null,
  ) {}

  href(path: string, query?: RequestOptions['query']): string {
    const u = new URL(this.url + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.toString();
  }

  /** The response of a successful call (2xx); anything else throws. The body is left unread. */
  async send(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    if (!this.token) {
      throw new CliError(EXIT.auth, 'no token: pass --token, set WO_TOKEN, or run wsctl login');
    }
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    let body: string | Uint8Array | undefined;
    if (opts.raw !== undefined) {
      body = opts.raw;
      headers['content-type'] = 'application/octet-stream';
    } else if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    if (opts.accept) headers.accept = opts.accept;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(this.href(path, opts.query), { method, headers, body, signal: opts.signal });
      } catch (err) {
        if ((err as Error).name === 'AbortError') throw err;
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        throw new CliError(
          EXIT.unavailable,
          `cannot reach ${this.url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
        );
      }
      if (res.ok) return res;
      if (res.status === 503 && method === 'GET' && attempt < GET_RETRIES) {
        await res.body?.cancel();
        const wait = Math.min(Number(res.headers.get('retry-after')) || 1, MAX_RETRY_WAIT_S);
        await new Promise((resolve) => setTimeout(resolve, wait * 1000));
        continue;
      }
      throw await errorOf(method, path, res);
    }
  }

  /** A JSON answer (null for an empty one, e.g. 202/204). */
  async json<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, opts);
    const text = await res.text();
    if (!text) return null as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(EXIT.generic, `${method} ${path}: the server answered ${res.status} with non-JSON`);
    }
  }
}

/** The error line for a failed call: the server's code and message when it sent the contract's shape. */
export async function errorOf(method: string, path: string, res: Response): Promise<CliError> {
  const text = await res.text().catch(() => '');
  let detail = `${res.status} ${res.statusText}`.trim();
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; field?: unknown } };
    const e = parsed.error;
    if (e && typeof e.message === 'string') {
      detail = `${res.status} ${typeof e.code === 'string' ? e.code : 'error'}: ${e.message}`;
    }
  } catch {
    // Not the contract's shape (a proxy's page): the status line says enough.
  }
  const retry = res.headers.get('retry-after');
  const hint = retry ? ` (retry after ${retry}s)` : '';
  return new CliError(exitCodeForStatus(res.status), oneLine(`${method} ${path}: ${detail}${hint}`));
}

export const wsPath = (id: string, rest = ''): string => `/v1/workspaces/${encodeURIComponent(id)}${rest}`;
