/**
 * The console's only way to the API: every call carries the org key as a Bearer token. The key is
 * kept in sessionStorage (gone with the tab), never in a URL.
 */
const KEY = 'wo.key';

export const getKey = () => sessionStorage.getItem(KEY);
export const setKey = (key) => sessionStorage.setItem(KEY, key);
export const clearKey = () => sessionStorage.removeItem(KEY);

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Called when the API says the key is no good (401): the app goes back to the login page. */
let onUnauthorized = () => {};
export const setUnauthorizedHandler = (fn) => {
  onUnauthorized = fn;
};

async function errorOf(res) {
  let code = `http_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const body = await res.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, code, message);
}

/**
 * One API call. `body` is sent as JSON unless `raw` (a Blob/ArrayBuffer) is given; the answer is
 * parsed as JSON unless `as` is 'blob' or 'none'.
 */
export async function api(method, path, { body, raw, as = 'json', key = getKey(), signal } = {}) {
  const headers = { authorization: `Bearer ${key ?? ''}` };
  let payload;
  if (raw !== undefined) {
    payload = raw;
    headers['content-type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(path, { method, headers, body: payload, signal, cache: 'no-store' });
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && key === getKey()) onUnauthorized(err);
    throw err;
  }
  if (as === 'blob') return res.blob();
  if (as === 'none' || res.status === 204) return null;
  return res.json();
}

/**
 * Follows a workspace's `/events` stream (server-sent events) with fetch, since EventSource cannot
 * send the Authorization header. Reconnects after a drop (the server replays the history, so the
 * last event is always the current state) until `signal` aborts. `onState` gets 'open'/'closed'.
 */
export async function followEvents(id, { onEvent, onState = () => {}, signal }) {
  let delayMs = 1000;
  while (!signal.aborted) {
    try {
      const res = await fetch(`/v1/workspaces/${encodeURIComponent(id)}/events`, {
        headers: { authorization: `Bearer ${getKey() ?? ''}`, accept: 'text/event-stream' },
        signal,
        cache: 'no-store',
      });
      if (res.status === 401) return onUnauthorized(await errorOf(res));
      if (res.status === 404) return onState('closed');
      if (!res.ok || !res.body) {
        const retry = Number(res.headers.get('retry-after'));
        if (retry > 0) delayMs = retry * 1000;
        throw await errorOf(res);
      }
      onState('open');
      delayMs = 1000;
      let buf = '';
      let last = null;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).replace(/^ /, ''))
            .join('\n');
          if (!data) continue; // a keep-alive comment
          try {
            last = JSON.parse(data);
            onEvent(last);
          } catch {
            // a malformed event is skipped, not fatal
          }
        }
      }
      // The server ends the stream once the workspace is deleted; any other end is a drop.
      if (last && last.status === 'deleted') return onState('closed');
      throw new Error('event stream ended');
    } catch (err) {
      if (signal.aborted) return;
      onState('retrying', err);
    }
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    delayMs = Math.min(delayMs * 2, 30_000);
  }
}

let configPromise = null;
/** The deployment's console settings (Temporal UI link), fetched once per login. */
export function consoleConfig() {
  configPromise ??= api('GET', '/ui/config.json').catch((err) => {
    configPromise = null;
    throw err;
  });
  return configPromise;
}
export const forgetConfig = () => {
  configPromise = null;
};
