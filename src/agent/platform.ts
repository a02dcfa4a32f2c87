import { errorText, sleep } from './log.js';

/** A platform answer: status plus the body parsed as JSON when it is JSON. */
export interface PlatformResponse {
  status: number;
  body: unknown;
}

/** The `{error: {code, message}}` envelope of the platform API, tolerating anything else. */
export function platformError(res: PlatformResponse): { code: string; message: string } {
  const body = res.body;
  if (typeof body === 'object' && body !== null && 'error' in body) {
    const e = (body as { error: unknown }).error;
    if (typeof e === 'object' && e !== null) {
      const { code, message } = e as { code?: unknown; message?: unknown };
      return {
        code: typeof code === 'string' ? code : `http_${res.status}`,
        message: typeof message === 'string' ? message : '',
      };
    }
  }
  return { code: `http_${res.status}`, message: typeof body === 'string' ? body.slice(0, 200) : '' };
}

/** Worth retrying: the platform is up but overloaded/restarting, or a proxy in between hiccuped. */
export const isTransientStatus = (status: number): boolean =>
  status === 408 || status === 429 || status >= 500;

export class PlatformClient {
  constructor(
    readonly baseUrl: string,
    /** Per attempt: fetch can hang forever on a half-open connection. */
    private readonly timeoutMs = 10_000,
  ) {}

  /** One attempt. Network errors and timeouts throw; every HTTP status resolves. */
  async call(method: 'GET' | 'POST', path: string, token: string, body?: unknown): Promise<PlatformResponse> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      // Not JSON (a proxy error page, say): keep the text for the error message.
    }
    return { status: res.status, body: parsed };
  }

  /**
   * Repeats `call` while the failure is transient (network error, timeout, 408/429/5xx) and the
   * deadline allows. Resolves with the last answer, or with `{error}` when nothing ever answered.
   */
  async callWithRetry(
    method: 'GET' | 'POST',
    path: string,
    token: string,
    body: unknown,
    deadlineMs: number,
  ): Promise<{ res?: PlatformResponse; error?: string }> {
    const deadline = Date.now() + deadlineMs;
    let delay = 250;
    for (;;) {
      let outcome: { res?: PlatformResponse; error?: string };
      try {
        const res = await this.call(method, path, token, body);
        if (!isTransientStatus(res.status)) return { res };
        outcome = { res };
      } catch (err) {
        outcome = { error: errorText(err) };
      }
      if (Date.now() + delay > deadline) return outcome;
      await sleep(delay);
      delay = Math.min(delay * 2, 4_000);
    }
  }
}
