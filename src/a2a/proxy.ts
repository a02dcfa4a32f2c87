/**
 * The A2A proxy's forwarding path, shared by the HTTP route (src/api/routes/a2a.ts, which streams
 * answers through) and by scheduled runs (src/activities/schedules.ts, which send one
 * `message/send` and read the whole answer): the same endpoint rules (only the address the backend
 * recorded for the current generation, re-read once when the agent was not reached), the same
 * agent credential, the same limits, and the same redacted activity rows.
 */
import http from 'node:http';
import type { BackendKind, WorkspaceBackend } from '../backends/backend.js';
import { backendReads, type BackendReads } from './backend-reads.js';
import { activityBatcher, type ActivityType, type NewA2AActivity } from '../db/activity.js';
import type { Queryable } from '../db/queryable.js';
import * as workspaces from '../db/workspaces.js';
import type { WorkspaceRow } from '../db/workspaces.js';
import { AGENT_CREDENTIAL_HEADER } from '../security/agent-credential.js';
import { IdentifiedAgent, type AgentIdentity, type IdentifiedArgs } from './identity.js';

export type { AgentIdentity } from './identity.js';

/** Proxy limits; read from `settings.a2a` when present. Mutable so tests can shorten them. */
export const A2A_DEFAULTS = {
  /** Largest accepted request body (413 above). */
  maxBodyBytes: 1024 * 1024,
  /** TCP connect to the agent. */
  connectTimeoutMs: 10_000,
  /** No byte from the agent for this long → 504 (or the stream is cut). */
  idleTimeoutMs: 30_000,
  /** The /health probe of the liveness check. */
  probeTimeoutMs: 3_000,
  /** Retry-After when the workspace is not online. */
  retryAfterSeconds: 5,
};

export const SUMMARY_CHARS = 200;
/** The status an activity row gets when its caller left before the answer (nginx's). */
export const CALLER_LEFT = 499;
export const EXCERPT_CHARS = 4000;
/** How much of an answer is kept to extract the reply text (the stream itself is not buffered). */
export const CAPTURE_BYTES = 256 * 1024;
export const SERVING = new Set(['online', 'degraded']);

export type A2ALimits = typeof A2A_DEFAULTS;

export class Failure extends Error {
  constructor(
    readonly kind: 'unreachable' | 'timeout' | 'connect_timeout',
    message: string,
    /** The connection was up: the agent may have read (and acted on) the request. */
    readonly mayHaveReached = false,
  ) {
    super(message);
  }
}

/**
 * JSON-RPC methods the A2A protocol defines as reads: sent twice, they change nothing. Only these
 * are sent again after a failure that may have come after the agent read them.
 */
export const IDEMPOTENT_A2A_METHODS = new Set([
  'tasks/get',
  'tasks/pushNotificationConfig/get',
  'tasks/pushNotificationConfig/list',
  'agent/getAuthenticatedExtendedCard',
  'GetTask',
  'ListTasks',
  'GetTaskPushNotificationConfig',
  'ListTaskPushNotificationConfig',
  'ListTaskPushNotificationConfigs',
  'GetExtendedAgentCard',
]);

/**
 * The caller's A2A service parameters, passed on to the agent: `A2A-Version` picks the protocol the
 * agent answers in (absent = 0.3), the extensions headers activate protocol extensions.
 */
export const A2A_PASSED_HEADERS = ['a2a-version', 'a2a-extensions', 'x-a2a-extensions'] as const;

export type A2AHeaders = Partial<Record<(typeof A2A_PASSED_HEADERS)[number], string>>;

/** The A2A headers of a caller's request (only those, and only single string values). */
export function a2aHeaders(get: (name: string) => string | undefined): A2AHeaders {
  const out: A2AHeaders = {};
  for (const name of A2A_PASSED_HEADERS) {
    const v = get(name);
    if (typeof v === 'string' && v !== '') out[name] = v;
  }
  return out;
}

export function forward(
  endpoint: string,
  payload: Buffer,
  accept: string | undefined,
  /** The workspace generation meant: its agent proves it on a new connection, then gets the credential. */
  identity: AgentIdentity,
  lim: A2ALimits,
  /** The caller left: the agent's request is destroyed (absent: it runs to its end). */
  signal?: AbortSignal,
  passed: A2AHeaders = {},
  /** The call is a read (IDEMPOTENT_A2A_METHODS): it may be sent again after a dropped connection. */
  idempotent = false,
): Promise<http.IncomingMessage> {
  return request(
    agentRoot(endpoint),
    {
      method: 'POST',
      identity,
      headers: {
        ...passed,
        'content-type': 'application/json',
        'content-length': String(payload.length),
        accept: accept ?? 'application/json, text/event-stream',
        // Only the proxy holds it: the agent refuses calls that reach it any other way.
        [AGENT_CREDENTIAL_HEADER]: identity.credential,
      },
    },
    payload,
    lim,
    signal,
    idempotent,
  );
}

/** Parsed agent roots (`POST /` of an endpoint), kept: parsing a URL per call is measurable. */
const agentRoots = new Map<string, URL>();
const AGENT_ROOTS_MAX = 1_024;

function agentRoot(endpoint: string): URL {
  let url = agentRoots.get(endpoint);
  if (!url) {
    url = new URL('/', endpoint);
    if (agentRoots.size >= AGENT_ROOTS_MAX) agentRoots.clear();
    agentRoots.set(endpoint, url);
  }
  return url;
}

/** What a request emits when its caller's signal aborts it (as Node's own `signal` option does). */
function abortError(): Error {
  return Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
}

/**
 * Kept-alive connections to the agents, shared by every call: a fresh TCP connection per call was
 * the proxy's largest single cost (docs/benchmarks.md). Every new connection is verified to reach
 * the agent of the workspace generation the call means (src/a2a/identity.ts) before the request is
 * written on it; the pool key is the endpoint plus that workspace generation, so a verified
 * connection is reused only for it. Bounded per key; an idle connection is closed after
 * FREE_SOCKET_MS, sooner when the agent's `Keep-Alive: timeout=…` hint says so (Node's agent
 * honours it), so a reused connection is rarely one the agent already dropped; a read that still
 * meets one is retried once (see request()).
 */
export const UPSTREAM_MAX_SOCKETS = 256;
const FREE_SOCKET_MS = 4_000;
export const upstreamAgent = new IdentifiedAgent({
  keepAlive: true,
  maxSockets: UPSTREAM_MAX_SOCKETS,
  maxFreeSockets: 32,
  timeout: FREE_SOCKET_MS,
  scheduling: 'lifo',
});

/** Errors of a kept-alive connection the agent closed: before it read the request, or after (a crash). */
const STALE_SOCKET = new Set(['ECONNRESET', 'EPIPE']);

/** A request to an agent: it names the workspace generation it means to reach. */
export interface AgentRequestOptions extends http.RequestOptions {
  identity: AgentIdentity;
  /** `false`: a connection of its own (still verified); absent: the shared pool. */
  agent?: false;
}

/**
 * One request to the agent; resolves with the response once its headers arrived. Over the shared
 * kept-alive pool unless `opts.agent` says otherwise; either way on a connection whose agent proved
 * it is `opts.identity` (src/a2a/identity.ts: a peer that does not is an `unreachable` failure, and
 * nothing of the request was written to it). The limits stay per request: the connect timeout runs
 * until the socket is connected and verified (at once for a reused one), the idle timeout from then
 * on, between any two bytes.
 */
export function request(
  url: URL,
  { identity, ...opts }: AgentRequestOptions,
  payload: Buffer | null,
  lim: Pick<A2ALimits, 'connectTimeoutMs' | 'idleTimeoutMs'>,
  /**
   * Destroys the request when it aborts. Not passed to http.request: Node's `signal` option tracks
   * the stream with `finished()`, a measurable share of a proxied call's CPU; a listener removed
   * when the exchange closes does the same job.
   */
  signal?: AbortSignal,
  /** May be sent again over a new connection when a reused one drops (default: GET only). */
  idempotent = opts.method === 'GET',
): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const attempt = (agent: http.Agent | false) => {
      const args: IdentifiedArgs = {
        ...opts,
        // Not `agent: false`: Node then makes a plain http.Agent of its own, whose connections
        // would skip the check. A pool of one, closed after the exchange, does what it did.
        agent: agent === false ? new IdentifiedAgent() : agent,
        agentIdentity: identity,
        identifyTimeoutMs: lim.connectTimeoutMs,
      };
      const req = http.request(url, args);
      if (signal) {
        if (signal.aborted) req.destroy(abortError());
        else {
          const onAbort = () => req.destroy(abortError());
          signal.addEventListener('abort', onAbort, { once: true });
          req.once('close', () => signal.removeEventListener('abort', onAbort));
        }
      }
      let connected = false;
      let answered = false;
      const connectTimer = setTimeout(() => {
        req.destroy(new Failure('connect_timeout', 'connect timeout'));
      }, lim.connectTimeoutMs);
      const onConnect = () => {
        connected = true;
        clearTimeout(connectTimer);
      };
      req.on('socket', (socket) => {
        socket.setNoDelay(true);
        if (socket.connecting) {
          // Not the pool's idle-socket timer while connecting: the connect timer rules until then.
          socket.setTimeout(0);
          socket.once('connect', onConnect);
        } else onConnect();
      });
      // Per request (Node removes its socket listener when the exchange ends), armed once connected.
      req.setTimeout(lim.idleTimeoutMs, () => {
        req.destroy(new Failure(connected ? 'timeout' : 'connect_timeout', 'idle timeout'));
      });
      req.on('response', (res) => {
        answered = true;
        clearTimeout(connectTimer);
        resolve(res);
      });
      req.on('error', (err) => {
        clearTimeout(connectTimer);
        const code = (err as NodeJS.ErrnoException).code;
        // A kept-alive connection dropped as it was reused: most often the agent closed it idle and
        // never read the request, but a crash after reading it looks the same. So only a read goes
        // once more, over a new connection; anything else could be done twice.
        if (idempotent && req.reusedSocket && !answered && code !== undefined && STALE_SOCKET.has(code)) {
          attempt(false);
          return;
        }
        if (err instanceof Failure) reject(err);
        else reject(new Failure('unreachable', code ?? err.message, connected));
      });
      req.end(payload ?? undefined);
    };
    attempt(opts.agent === false ? false : upstreamAgent);
  });
}

/**
 * The liveness probe: can the workspace generation's agent be reached at `endpoint` now? Over a new
 * connection, verified like any other: a peer that answers /health but cannot prove it is that
 * agent (another tenant's at a reused address) counts as unreachable.
 */
export async function probe(endpoint: string, identity: AgentIdentity, timeoutMs: number): Promise<boolean> {
  try {
    const res = await request(new URL('/health', endpoint), { method: 'GET', agent: false, identity }, null, {
      connectTimeoutMs: timeoutMs,
      idleTimeoutMs: timeoutMs,
    });
    res.resume();
    return (res.statusCode ?? 500) < 500;
  } catch {
    return false;
  }
}

export function readAll(res: http.IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= max) chunks.push(c);
    });
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
    // Destroyed before its end (the caller left and the request was cut): no `end` will come.
    res.on('close', () => {
      if (!res.complete) reject(new Error('the answer was cut'));
    });
  });
}

export const truncate = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** Text parts of `params.message` (A2A), joined; '' when there are none. */
export function messageText(params: unknown): string {
  if (typeof params !== 'object' || params === null) return '';
  return partsText((params as { message?: unknown }).message);
}

export function partsText(message: unknown): string {
  if (typeof message !== 'object' || message === null) return '';
  const parts = (message as { parts?: unknown }).parts;
  if (!Array.isArray(parts)) return '';
  return parts
    .map((p: unknown) => (typeof p === 'object' && p !== null ? (p as { text?: unknown }).text : undefined))
    .filter((t): t is string => typeof t === 'string')
    .join(' ');
}

/**
 * The payload of an A2A result: protocol 1.0 wraps it in its kind (`{message}`, `{task}`,
 * `{statusUpdate}`, `{artifactUpdate}`), 0.3 gives it bare (with a `kind` field).
 */
function unwrapResult(result: object): Record<string, unknown> {
  const r = result as Record<string, unknown>;
  for (const key of ['message', 'task', 'statusUpdate', 'artifactUpdate']) {
    const inner = r[key];
    if (Object.keys(r).length === 1 && typeof inner === 'object' && inner !== null) {
      return inner as Record<string, unknown>;
    }
  }
  return r;
}

/**
 * The text of a JSON-RPC answer: result message parts, a status message, an artifact's or the
 * last artifact's parts, or the error message.
 */
export function resultText(rpc: unknown): string {
  if (typeof rpc !== 'object' || rpc === null) return '';
  const { result, error } = rpc as { result?: unknown; error?: unknown };
  if (typeof result === 'object' && result !== null) {
    const r = unwrapResult(result) as {
      text?: unknown;
      status?: { message?: unknown };
      artifact?: unknown;
      artifacts?: unknown;
    };
    const artifacts = Array.isArray(r.artifacts) ? (r.artifacts as unknown[]) : [];
    const fromParts =
      partsText(r) || partsText(r.status?.message) || partsText(r.artifact) || partsText(artifacts.at(-1));
    if (fromParts) return fromParts;
    if (typeof r.text === 'string') return r.text;
  }
  if (typeof error === 'object' && error !== null) {
    const msg = (error as { message?: unknown }).message;
    if (typeof msg === 'string') return `error: ${msg}`;
  }
  return '';
}

export function jsonReplyText(text: string): string {
  try {
    return resultText(JSON.parse(text));
  } catch {
    return '';
  }
}

/** The last event's text of an SSE answer (the final state of a streamed reply). */
export function streamText(text: string): string {
  let last = '';
  for (const m of text.matchAll(/^data: ?(.*)$/gm)) {
    const t = jsonReplyText(m[1]!);
    if (t) last = t;
  }
  return last;
}

/**
 * Whether an agent's answer is an event stream, read from the type it is served with: never from
 * the JSON-RPC method (an agent may stream any method's answer, or answer a stream request with one
 * JSON error), so the proxy streams it through and reads its text event by event.
 */
export function isEventStream(contentType: string | undefined): boolean {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase() === 'text/event-stream';
}

/** The reply text of a whole answer, by its content type. */
export function answerText(contentType: string | undefined, text: string): string {
  return isEventStream(contentType) ? streamText(text) : jsonReplyText(text);
}

/**
 * Names the calling workspace in the forwarded message (`params.message.metadata.peer`), replacing
 * whatever the caller put there; `base` is the platform's public URL (its agent-card link).
 */
export function injectPeer(
  body: Record<string, unknown>,
  peer: Pick<WorkspaceRow, 'id' | 'name'>,
  base: string,
): void {
  const m = messageOf(body);
  if (!m) return;
  // Set by the platform, never by the caller: whatever the caller put there is replaced.
  m.metadata = {
    ...(isRecord(m.metadata) ? m.metadata : {}),
    peer: {
      id: peer.id,
      name: peer.name,
      role: 'peer',
      agentCardUrl: `${base}/v1/workspaces/${peer.id}/agent-card`,
    },
  };
}

/**
 * Removes the `metadata.peer` a caller that is not a workspace put in its message: only the
 * platform names a peer, and an agent must not take a user's call for another workspace's (of
 * any org). True when there was one (the message is then forwarded as re-serialized).
 */
export function dropCallerPeer(body: Record<string, unknown>): boolean {
  const m = messageOf(body);
  if (!m || !isRecord(m.metadata) || !Object.hasOwn(m.metadata, 'peer')) return false;
  const { peer: _claimed, ...rest } = m.metadata;
  m.metadata = rest;
  return true;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A JSON-RPC request's `params.message`, when it is an object. */
function messageOf(body: Record<string, unknown>): Record<string, unknown> | null {
  const params = body.params;
  if (!isRecord(params)) return null;
  return isRecord(params.message) ? params.message : null;
}

/** What the shared path needs (the API's deps and the worker's activity deps both have it). */
export interface ProxyDeps {
  db: Queryable;
  backends: Record<BackendKind, WorkspaceBackend>;
  log: ProxyLog;
  /** The bound on backend reads these calls share (absent: made on first use, see backendReads). */
  reads?: BackendReads;
}

/** pino's call shape (the activity side adapts Temporal's activity logger to it). */
export interface ProxyLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Re-reads the endpoint of the workspace's current generation and records it when it changed.
 * Returns the endpoint to use: the backend's answer, or the recorded one when the backend has none
 * (stopped, missing) or could not be asked (a read must never fail the caller's request).
 */
export async function refreshEndpoint(
  deps: ProxyDeps,
  w: Pick<WorkspaceRow, 'id' | 'backend' | 'generation' | 'endpoint'>,
): Promise<string | null> {
  let fresh: string | null;
  try {
    fresh = (await deps.backends[w.backend].describe(w.id, w.generation))?.endpoint ?? null;
  } catch (err) {
    deps.log.warn({ err, workspaceId: w.id }, 'could not re-read the workspace endpoint');
    return w.endpoint;
  }
  if (fresh === null || fresh === w.endpoint) return w.endpoint;
  if (await workspaces.refreshEndpoint(deps.db, w.id, w.generation, fresh)) {
    deps.log.info({ workspaceId: w.id, from: w.endpoint, to: fresh }, 'workspace endpoint changed');
  }
  return fresh;
}

/**
 * Calls the agent at `tried.endpoint`. When it was not reached at all, the resource may answer
 * elsewhere now (docker restart → new host port): the backend's address is re-read (at most once
 * per interval for the workspace: the agent can make its calls fail, see backend-reads.ts) and,
 * when it moved, the call is made once more there (a call that may have reached the agent only
 * when it is a read). `tried.endpoint` ends as the address last tried.
 */
export async function reachAgent<T>(
  deps: ProxyDeps,
  w: Pick<WorkspaceRow, 'id' | 'backend' | 'generation' | 'endpoint'>,
  tried: { endpoint: string },
  call: (at: string) => Promise<T>,
  opts: {
    /** The caller's: once it aborted, a failure is the caller's leaving, not the agent's address. */
    signal?: AbortSignal;
    /** A read: sent again at a moved address even when the first try may have reached the agent. */
    idempotent?: boolean;
  } = {},
): Promise<T> {
  try {
    return await call(tried.endpoint);
  } catch (err) {
    if (!(err instanceof Failure) || err.kind === 'timeout' || opts.signal?.aborted) throw err;
    // The agent may have read it before its connection dropped: not sent a second time.
    if (err.mayHaveReached && !opts.idempotent) throw err;
    if (!backendReads(deps).due(w, 'forward')) throw err;
    const fresh = await refreshEndpoint(deps, w);
    if (!fresh || fresh === tried.endpoint) throw err;
    tried.endpoint = fresh;
    return call(fresh);
  }
}

export interface CallRecord {
  /** The called workspace. */
  workspaceId: string;
  /** The calling workspace, when a workspace called (it gets an `outbound` row too). */
  callerId: string | null;
  /** `a2a` for proxied calls, `schedule` for scheduled runs. */
  type?: ActivityType;
  method: string | null;
  status: number;
  durationMs: number;
  /** Already redacted and truncated. */
  requestText: string;
  responseText: string | null;
  note?: string;
  /** Put before the summary (a scheduled run names its schedule). */
  summaryPrefix?: string;
  /** The redaction of both ends' secrets. */
  clean: (s: string) => string;
}

/**
 * Writes the activity rows of one call (redacted, truncated). Answers whether they are committed; a
 * failed write is logged, not thrown (the proxy then cuts the answer it holds: the caller never has
 * a whole answer whose call is not logged).
 */
export async function logCall(deps: Pick<ProxyDeps, 'db' | 'log'>, c: CallRecord): Promise<boolean> {
  const body = c.note ? `${c.note}${c.requestText ? `: ${c.requestText}` : ''}` : c.requestText || c.method;
  const summary = truncate(c.clean(`${c.summaryPrefix ?? ''}${body ?? ''}`), SUMMARY_CHARS);
  const row = (workspaceId: string, peerId: string | null, direction: 'inbound' | 'outbound') =>
    ({
      workspaceId,
      peerId,
      direction,
      type: c.type,
      // The caller's own string: bounded like the excerpts (a method is a short name).
      method: c.method === null ? null : truncate(c.clean(c.method), SUMMARY_CHARS),
      status: c.status,
      durationMs: c.durationMs,
      summary,
      requestText: c.requestText,
      responseText: c.responseText === null ? null : truncate(c.clean(c.responseText), EXCERPT_CHARS),
    }) satisfies NewA2AActivity;
  const rows = [row(c.workspaceId, c.callerId, 'inbound')];
  if (c.callerId && c.callerId !== c.workspaceId) rows.push(row(c.callerId, c.workspaceId, 'outbound'));
  // Group commit: concurrent calls share one INSERT; this call's rows are committed when it resolves.
  try {
    await activityBatcher(deps.db).write(rows);
    return true;
  } catch (err) {
    deps.log.error({ err, workspaceId: c.workspaceId }, 'could not write the activity row');
    return false;
  }
}

/** The outcome of one whole (non-streamed) call through the proxy path. */
export interface Delivery {
  /** The HTTP status a proxy caller would have got (200, 409 not online, 502, 504). */
  status: number;
  /** The agent answered a JSON-RPC result (not an error object). */
  ok: boolean;
  /** The reply text (redacted; as much as the proxy captures of an answer), or why there is none. */
  reply: string | null;
  error: string | null;
}

/**
 * Sends one JSON-RPC request to the workspace's agent and reads the whole answer, as the proxy
 * does: an activity row is written whatever the outcome (except "not online": nothing was sent).
 * `onUnreachable` runs the liveness check after a failed forward.
 */
export async function deliver(
  deps: ProxyDeps,
  w: WorkspaceRow,
  body: { method: string; params?: unknown } & Record<string, unknown>,
  opts: {
    /** The generation's agent credential: sent only to an agent that proved it holds it. */
    credential: string;
    clean: (s: string) => string;
    limits: A2ALimits;
    type: ActivityType;
    summaryPrefix?: string;
    onUnreachable?: (endpoint: string) => Promise<void>;
    /** The calling workspace: named as the peer (`publicUrl`: its card's base), logged both ways. */
    caller?: { workspace: WorkspaceRow; publicUrl: string };
    /**
     * Aborted, the agent's request is cut: a TimeoutError reason is the call's deadline (504),
     * anything else the caller leaving (499).
     */
    signal?: AbortSignal;
  },
): Promise<Delivery> {
  if (!SERVING.has(w.status) || !w.endpoint) {
    return { status: 409, ok: false, reply: null, error: `workspace is ${w.status}` };
  }
  if (opts.caller) injectPeer(body, opts.caller.workspace, opts.caller.publicUrl);
  const started = performance.now();
  const requestText = truncate(opts.clean(messageText(body.params)), EXCERPT_CHARS);
  const log = (status: number, responseText: string | null, note?: string) =>
    logCall(deps, {
      workspaceId: w.id,
      callerId: opts.caller?.workspace.id ?? null,
      type: opts.type,
      method: body.method,
      status,
      durationMs: performance.now() - started,
      requestText,
      responseText,
      note,
      summaryPrefix: opts.summaryPrefix,
      clean: opts.clean,
    });
  const payload = Buffer.from(JSON.stringify(body));
  const tried = { endpoint: w.endpoint };
  const identity = { workspaceId: w.id, generation: w.generation, credential: opts.credential };
  const { signal } = opts;
  // Cut by the signal: the call's own deadline ran out (504, as an idle agent), or the caller left.
  const left = async (): Promise<Delivery> => {
    if ((signal?.reason as { name?: string } | undefined)?.name === 'TimeoutError') {
      await log(504, null, 'no whole answer within the call deadline');
      return { status: 504, ok: false, reply: null, error: 'the agent did not answer in time' };
    }
    await log(CALLER_LEFT, null, 'caller left');
    return { status: CALLER_LEFT, ok: false, reply: null, error: 'the caller left' };
  };
  let upstream: http.IncomingMessage;
  try {
    const idempotent = IDEMPOTENT_A2A_METHODS.has(body.method);
    upstream = await reachAgent(
      deps,
      w,
      tried,
      (at) => forward(at, payload, 'application/json', identity, opts.limits, signal, {}, idempotent),
      { idempotent, signal },
    );
  } catch (err) {
    if (signal?.aborted) return left();
    if (err instanceof Failure && err.kind === 'timeout') {
      await log(504, null, 'agent timed out');
      return { status: 504, ok: false, reply: null, error: 'the agent did not answer in time' };
    }
    const message = err instanceof Failure ? err.message : 'agent unreachable';
    await opts.onUnreachable?.(tried.endpoint);
    await log(502, null, 'agent unreachable');
    return { status: 502, ok: false, reply: null, error: `could not reach the workspace agent (${message})` };
  }
  const status = upstream.statusCode ?? 502;
  if (status >= 500) {
    upstream.resume();
    await opts.onUnreachable?.(tried.endpoint);
    await log(502, null, `agent error ${status}`);
    return { status: 502, ok: false, reply: null, error: `the workspace agent answered ${status}` };
  }
  let text: string;
  try {
    text = await readAll(upstream, CAPTURE_BYTES);
  } catch {
    if (signal?.aborted) return left();
    await log(502, null, 'stream cut');
    return { status: 502, ok: false, reply: null, error: 'the agent cut its answer short' };
  }
  const isStream = isEventStream(upstream.headers['content-type']);
  const reply = answerText(upstream.headers['content-type'], text);
  if (!(await log(status, reply))) {
    // As the proxy route cuts such an answer: no reply is handed over whose call is not logged.
    return {
      status: 502,
      ok: false,
      reply: null,
      error: 'the call could not be logged; its answer is withheld',
    };
  }
  const rpcError = !isStream && hasRpcError(text);
  const ok = status < 300 && !rpcError;
  // The whole reply for the caller (an MCP peer reads what the agent said, not the log's summary);
  // an error's text is for a message or a run record: bounded.
  const clean = opts.clean(reply);
  return {
    status,
    ok,
    reply: clean,
    error: ok
      ? null
      : rpcError
        ? truncate(clean, EXCERPT_CHARS) || 'the agent answered an error'
        : `the agent answered ${status}`,
  };
}

function hasRpcError(text: string): boolean {
  try {
    const rpc = JSON.parse(text) as unknown;
    return typeof rpc === 'object' && rpc !== null && 'error' in rpc;
  } catch {
    return true; // not a JSON-RPC answer at all
  }
}
