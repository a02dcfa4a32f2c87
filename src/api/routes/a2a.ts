/**
 * A2A proxy (`/v1/workspaces/:id/a2a`, `/agent-card`). Forwards only to the endpoint the backend
 * recorded for the workspace's current generation (never a URL an agent card claims), streams the
 * answer through chunk by chunk, and logs every call to the activity table (redacted).
 *
 * A failed forward (connection refused/reset/connect timeout, or a 5xx from the agent) answers 502 and
 * runs a liveness check: the backend's view of the resource plus one probe of the agent's /health,
 * signalled to the entity workflow, which folds it into degraded/offline. A successful forward to a
 * degraded workspace signals it reachable again.
 */
import type http from 'node:http';
import { AGENT_CARD_PATH } from '@a2a-js/sdk';
import { Router, type Request, type Response } from 'express';
import { a2aLimits, checkLiveness, workspaceOfToken } from '../a2a-calls.js';
import { refuseOverBudget } from '../../app/budget.js';
import * as shared from '../../a2a/proxy.js';
import {
  A2A_DEFAULTS,
  CALLER_LEFT,
  CAPTURE_BYTES,
  EXCERPT_CHARS,
  Failure,
  IDEMPOTENT_A2A_METHODS,
  SERVING,
  a2aHeaders,
  answerText,
  forward,
  dropCallerPeer,
  injectPeer,
  isEventStream,
  logCall,
  messageText,
  readAll,
  request,
  truncate,
  type A2ALimits,
} from '../../a2a/proxy.js';
import { cachedRedactorFor } from '../../db/secrets.js';
import { ProxyViews, type ProxyView } from '../../db/proxy-view.js';
import { presentedAgentCredential } from '../../db/agent-credentials.js';
import { AGENT_CREDENTIAL_HEADER } from '../../security/agent-credential.js';
import { principalOf } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { HttpError, badRequest, conflict, hasNonJsonBody, nonJsonBody } from '../errors.js';
import { InFlight } from '../inflight.js';
import { PROXY, loadsProxyWorkspace, ownProxyWorkspaceOf, proxyWorkspaceOf } from '../workspace-param.js';

export { A2A_DEFAULTS };

type Limits = A2ALimits;

interface Caller {
  /** The calling workspace, when the caller authenticated with a workspace token. */
  workspace: Pick<ProxyView, 'id' | 'name'> | null;
  /** Org scope: null = admin. */
  orgId: string | null;
}

export function a2aRouter(deps: ApiDeps): Router {
  const { db } = deps;
  const r = Router();
  // The called workspace, the caller's own and the budget: one query, or none while the cached
  // views are known fresh (src/db/proxy-view.ts). The budget is looked at only after the access
  // rule passed, so it tells nothing about a workspace the caller cannot see.
  const views = deps.proxyViews ?? new ProxyViews(db);
  loadsProxyWorkspace(r, (ids, barrier) => views.get(ids, barrier));
  const limits = (): Limits => a2aLimits(deps);

  async function callerOf(res: Response): Promise<Caller> {
    const p = principalOf(res);
    if (p.kind === 'admin') return { workspace: null, orgId: null };
    if (p.kind === 'org') return { workspace: null, orgId: p.orgId };
    if (p.kind === 'workspace') {
      const w = await workspaceOfToken(db, p, ownProxyWorkspaceOf(res));
      return { workspace: w, orgId: w.orgId };
    }
    throw new HttpError(403, 'forbidden', 'this token cannot call agents');
  }

  function requireServing(w: ProxyView): string {
    // Gone for good: no Retry-After inviting a retry that can never succeed.
    if (w.status === 'deleted' || w.status === 'deleting') {
      throw conflict(`workspace is ${w.status}`, 'deleted');
    }
    if (!SERVING.has(w.status) || !w.endpoint) {
      throw new HttpError(409, 'not_online', `workspace is ${w.status}; retry when it is online`, {
        retryAfterSeconds: limits().retryAfterSeconds,
      });
    }
    return w.endpoint;
  }

  /** Backend status + one /health probe (of the agent proving it is `w`'s) → degraded/offline. */
  const livenessCheck = (w: ProxyView, endpoint: string, credential: string) =>
    checkLiveness(deps, w, endpoint, credential);

  async function recovered(w: ProxyView): Promise<void> {
    if (w.status !== 'degraded') return;
    await deps.entity
      .signalLiveness(w.id, { generation: w.generation, reachable: true, resourceStatus: 'running' })
      .catch((err: unknown) => deps.log.warn({ err, workspaceId: w.id }, 'liveness signal failed'));
  }

  const reachAgent = <T>(
    w: ProxyView,
    tried: { endpoint: string },
    call: (at: string) => Promise<T>,
    opts?: { signal?: AbortSignal; idempotent?: boolean },
  ) => shared.reachAgent(deps, w, tried, call, opts);

  // From configuration only: a caller's Host header must not steer the URLs peers are told.
  const publicBase = (): string => deps.settings.publicUrl;

  const inflight = deps.inflight ?? new InFlight();
  r.post('/:id/a2a', (req, res) => inflight.run(() => proxyCall(req, res)));

  const leftNote = () => (inflight.closing ? 'cut by shutdown' : 'caller left');

  async function proxyCall(req: Request, res: Response): Promise<void> {
    const started = performance.now();
    // A caller gone before its answer ended stops the agent's request (an abort builds a
    // DOMException: not on every call's normal close). Watched from the handler's first line: a
    // caller that left meanwhile (during auth or the lookup) has no `close` event still to come.
    const abort = new AbortController();
    if (res.destroyed) return;
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const caller = await callerOf(res);
    const w = proxyWorkspaceOf(res, PROXY);
    const lim = limits();
    // Independent reads run while the body arrives; each is awaited where its check always was, so
    // the order of refusals (413, 400, 402, 409) is unchanged.
    // Both ends' secrets: the caller's may be echoed back, the callee's may be in the answer.
    const redactor = early(
      cachedRedactorFor(deps.db, deps.secrets, w.id, ...(caller.workspace ? [caller.workspace.id] : [])),
    );
    const presented = early(presentedAgentCredential(db, deps.secrets, w.id, w.generation));
    const read = await readJsonBody(req, lim.maxBodyBytes, abort.signal);
    // Left before its request was whole: nothing was sent anywhere, no answer can be given.
    if (read === null) return;
    const { body, raw } = read;
    refuseOverBudget(w.budget);
    const endpoint = requireServing(w);

    const method = typeof body.method === 'string' ? body.method : null;
    if (body.jsonrpc !== '2.0' || method === null) {
      throw badRequest('body: need a JSON-RPC 2.0 request with a method', 'method');
    }
    // The caller's own bytes, unless the platform named the calling workspace in them or took out a
    // peer the caller claimed.
    const rewritten = caller.workspace
      ? (injectPeer(body, caller.workspace, publicBase()), true)
      : dropCallerPeer(body);
    const payload = rewritten ? reserialized(body) : raw;
    const clean = await redactor();
    const requestText = truncate(clean(messageText(body.params)), EXCERPT_CHARS);

    const log = (status: number, responseText: string | null, note?: string) =>
      logCall(deps, {
        workspaceId: w.id,
        callerId: caller.workspace?.id ?? null,
        method,
        status,
        durationMs: performance.now() - started,
        requestText,
        responseText,
        note,
        clean,
      });

    const identity = { workspaceId: w.id, generation: w.generation, credential: await presented() };
    if (abort.signal.aborted) return;
    let upstream: http.IncomingMessage;
    const tried = { endpoint };
    const idempotent = IDEMPOTENT_A2A_METHODS.has(method);
    try {
      upstream = await reachAgent(
        w,
        tried,
        (at) =>
          forward(
            at,
            payload,
            req.get('accept'),
            identity,
            lim,
            abort.signal,
            a2aHeaders((h) => req.get(h)),
            idempotent,
          ),
        { signal: abort.signal, idempotent },
      );
    } catch (err) {
      if (abort.signal.aborted) {
        // Not the agent's failure: no liveness check, no endpoint re-read, nothing to answer.
        await log(CALLER_LEFT, null, leftNote());
        return;
      }
      if (err instanceof Failure && err.kind === 'timeout') {
        await log(504, null, 'agent timed out');
        throw new HttpError(504, 'agent_timeout', 'the agent did not answer in time');
      }
      const message = err instanceof Failure ? err.message : 'agent unreachable';
      await livenessCheck(w, tried.endpoint, identity.credential);
      await log(502, null, 'agent unreachable');
      throw new HttpError(502, 'agent_unreachable', `could not reach the workspace agent (${message})`);
    }

    const status = upstream.statusCode ?? 502;
    if (status >= 500) {
      upstream.resume();
      await livenessCheck(w, tried.endpoint, identity.credential);
      await log(502, null, `agent error ${status}`);
      throw new HttpError(502, 'agent_error', `the workspace agent answered ${status}`);
    }
    if (status === 401 || status === 407) {
      // The agent refused the platform's credential: the caller's own token was fine, and an
      // answer of 401 would tell it otherwise.
      upstream.resume();
      await log(502, null, `agent refused the platform's credential (${status})`);
      throw new HttpError(
        502,
        'agent_error',
        `the workspace agent refused the platform's credential (${status})`,
      );
    }

    // Stream through, each chunk as it arrives. An event stream's headers go at once (a client
    // waits on them before any event); any other answer's go with its first chunk (one write less).
    const contentType = answerType(upstream.headers['content-type']);
    const isStream = isEventStream(contentType);
    res.status(status);
    res.set('content-type', contentType);
    // The answer is the agent's bytes served from the API's origin: never sniffed as anything else.
    res.set('x-content-type-options', 'nosniff');
    if (isStream) {
      res.set('cache-control', 'no-cache');
      res.set('x-accel-buffering', 'no');
    }
    if (isStream) res.flushHeaders();
    res.socket?.setNoDelay(true);
    // Any other answer of a declared length keeps that length, and its last bytes wait for the
    // activity row (the caller has the whole answer only once the call is logged), then go with
    // the end in one write: no chunked end marker written on its own after the row.
    const length = isStream ? null : declaredLength(upstream.headers['content-length']);
    if (length !== null) res.set('content-length', String(length));
    let passed = 0;
    let last: Buffer | undefined;
    const captured: Buffer[] = [];
    let capturedBytes = 0;
    let failed = false;
    let stalled = false;
    await new Promise<void>((resolve) => {
      upstream.on('data', (chunk: Buffer) => {
        if (capturedBytes < CAPTURE_BYTES) {
          captured.push(chunk);
          capturedBytes += chunk.length;
        }
        // The parser hands on no more than the declared length: this chunk ends the answer.
        if (length !== null && passed + chunk.length >= length) {
          last = last ? Buffer.concat([last, chunk]) : chunk;
          return;
        }
        passed += chunk.length;
        if (!res.write(chunk)) {
          // Backpressure: the caller reads slower than the agent writes. Stop reading the agent
          // (its own writes then back up) until the caller catches up; the wait is the caller's,
          // not the agent's silence, so the agent's idle timeout is off meanwhile, and the same
          // bound applies to the caller instead: one that reads nothing for as long is cut, so it
          // does not hold the agent's connection for ever.
          upstream.pause();
          upstream.socket?.setTimeout(0);
          const stall = setTimeout(() => {
            stalled = true;
            res.destroy();
          }, lim.idleTimeoutMs);
          const onClose = () => clearTimeout(stall);
          res.once('close', onClose);
          res.once('drain', () => {
            clearTimeout(stall);
            res.off('close', onClose);
            upstream.socket?.setTimeout(lim.idleTimeoutMs);
            upstream.resume();
          });
        }
      });
      // The response ends once its activity row is written (a caller that reads the log next sees it).
      upstream.on('end', () => resolve());
      // A cut answer: the caller's is cut too, unless nothing of it went yet (a JSON answer's
      // headers wait for its first bytes): then it gets a clean 502 below. An event stream's is
      // cut below, after a last event that says why.
      const cut = () => {
        failed = true;
        if (res.headersSent && !isStream) res.destroy();
      };
      upstream.on('error', () => {
        cut();
        resolve();
      });
      upstream.on('close', () => {
        if (!upstream.complete) cut();
        resolve();
      });
    });
    const text = Buffer.concat(captured).toString('utf8');
    const reply = answerText(contentType, text);
    const gone = abort.signal.aborted;
    const logged = await log(
      gone ? CALLER_LEFT : failed ? 502 : status,
      reply,
      gone ? (stalled ? 'caller stopped reading' : leftNote()) : failed ? 'stream cut' : undefined,
    );
    if (gone) return;
    if (failed) {
      if (res.headersSent) {
        // A JSON-RPC error for the request, as the stream's last event (a client reading events
        // gets a reason, not only a dropped connection), then the answer is cut as the agent's was.
        if (isStream && !res.destroyed) res.write(streamCutEvent(body.id), () => res.destroy());
        else res.destroy();
        return;
      }
      res.removeHeader('content-length');
      throw new HttpError(502, 'agent_error', 'the workspace agent cut its answer before any of it arrived');
    }
    if (!logged) {
      // The row could not be written: the caller does not get the end of an answer that is not
      // logged (its last bytes, or the chunked end marker, are withheld and the answer is cut).
      res.destroy();
      return;
    }
    res.end(last);
    await recovered(w);
  }

  r.get('/:id/agent-card', async (req, res) => {
    // The caller's checks (401, stale generation) come before the workspace's.
    await callerOf(res);
    const w = proxyWorkspaceOf(res, PROXY);
    const endpoint = requireServing(w);
    const lim = limits();
    let upstream: http.IncomingMessage;
    const tried = { endpoint };
    const credential = await presentedAgentCredential(deps.db, deps.secrets, w.id, w.generation);
    const identity = { workspaceId: w.id, generation: w.generation, credential };
    // The caller's A2A-Version picks the card's shape (1.0, or 0.3 when absent), as at the agent.
    const headers = { ...a2aHeaders((h) => req.get(h)), [AGENT_CREDENTIAL_HEADER]: credential };
    try {
      upstream = await reachAgent(
        w,
        tried,
        async (at) => {
          const current = await request(
            new URL(`/${AGENT_CARD_PATH}`, at),
            { method: 'GET', headers, identity },
            null,
            lim,
          );
          if (current.statusCode !== 404) return current;
          // An agent of protocol ≤ 0.2 publishes its card at the older well-known path.
          current.resume();
          return request(
            new URL('/.well-known/agent.json', at),
            { method: 'GET', headers, identity },
            null,
            lim,
          );
        },
        // A card is a read: it may be fetched again at a moved address.
        { idempotent: true },
      );
    } catch (err) {
      if (err instanceof Failure && err.kind === 'timeout') {
        throw new HttpError(504, 'agent_timeout', 'the agent did not answer in time');
      }
      await livenessCheck(w, tried.endpoint, credential);
      throw new HttpError(502, 'agent_unreachable', 'could not reach the workspace agent');
    }
    const text = await readAll(upstream, CAPTURE_BYTES);
    if ((upstream.statusCode ?? 502) >= 500) await livenessCheck(w, tried.endpoint, credential);
    let card: unknown;
    try {
      card = JSON.parse(text);
    } catch {
      card = undefined;
    }
    if ((upstream.statusCode ?? 502) !== 200 || typeof card !== 'object' || card === null) {
      throw new HttpError(
        502,
        'agent_error',
        `the workspace agent answered ${upstream.statusCode} for its card`,
      );
    }
    // Callers reach the agent only through this proxy: the card says so.
    res.set('vary', 'A2A-Version');
    res.json(proxiedCard(card as Record<string, unknown>, `${publicBase()}/v1/workspaces/${w.id}/a2a`));
  });

  return r;
}

/**
 * A read started now and awaited later: its failure is observed at once (no unhandled rejection when
 * an earlier check answers first) and rethrown where it is awaited.
 */
function early<T>(p: Promise<T>): () => Promise<T> {
  p.catch(() => undefined);
  return () => p;
}

/** The status of the activity row of a call whose caller left before its answer ended (as nginx's). */

/** The request's JSON body; null when the caller left before it was whole (`left` aborted). */
function readJsonBody(
  req: Request,
  max: number,
  left: AbortSignal,
): Promise<{ body: Record<string, unknown>; raw: Buffer } | null> {
  const declared = Number(req.get('content-length') ?? 0);
  if (declared > max) {
    req.resume();
    return Promise.reject(new HttpError(413, 'payload_too_large', `request body over ${max} bytes`));
  }
  // The body is forwarded as its bytes: one in a content coding would be misread (a gzipped
  // request refused as not JSON, a mislabelled one passed on), so it is refused as such (RFC 9110).
  const coding = (req.get('content-encoding') ?? 'identity').trim().toLowerCase();
  if (coding !== 'identity' && coding !== '') {
    req.resume();
    return Promise.reject(
      new HttpError(
        415,
        'unsupported_media_type',
        `content-encoding ${coding}: the A2A proxy takes identity bodies only`,
      ),
    );
  }
  // JSON-RPC over HTTP is application/json; a body declared otherwise (curl -d's form type,
  // text/plain, none) is refused as the management routes refuse it, not passed on to the agent.
  if (hasNonJsonBody(req)) {
    req.resume();
    return Promise.reject(nonJsonBody());
  }
  // A destroyed request emits neither `end` nor `error` to listeners added now.
  if (left.aborted) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    left.addEventListener('abort', () => resolve(null), { once: true });
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) over = true;
      else chunks.push(c);
    });
    req.on('end', () => {
      if (over) return reject(new HttpError(413, 'payload_too_large', `request body over ${max} bytes`));
      let parsed: unknown;
      const raw = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      try {
        parsed = JSON.parse(raw.toString('utf8'));
      } catch {
        return reject(
          new HttpError(400, 'invalid_json', 'request body is not valid JSON', { field: 'body' }),
        );
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        return reject(badRequest('body: expected one JSON-RPC request object', 'body'));
      }
      resolve({ body: parsed as Record<string, unknown>, raw });
    });
    req.on('error', reject);
  });
}

/**
 * A request body changed by the proxy, as bytes. JSON.parse takes any depth, JSON.stringify does
 * not: a body nested thousands deep overflows the stack, which is the caller's error, not ours.
 */
function reserialized(body: Record<string, unknown>): Buffer {
  try {
    return Buffer.from(JSON.stringify(body));
  } catch (err) {
    if (err instanceof RangeError) throw badRequest('body: nested too deep to forward', 'body');
    throw err;
  }
}

/**
 * The event that ends a stream the agent cut: a JSON-RPC error for the request's id. The blank
 * lines first end an event the cut left half written (a client drops it), and are nothing otherwise.
 */
function streamCutEvent(id: unknown): string {
  const error = { code: -32603, message: 'the workspace agent cut its answer' };
  return `\n\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: id ?? null, error })}\n\n`;
}

/** An answer's Content-Length, when it is one (the parser has refused a malformed or conflicting one). */
function declaredLength(header: string | undefined): number | null {
  if (header === undefined || !/^\d+$/.test(header)) return null;
  const n = Number(header);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * The type an agent's answer is served with: JSON-RPC answers are JSON or an event stream; any
 * other type the agent claims (HTML, or a malformed one) is passed on as opaque bytes.
 */
export function answerType(claimed: string | undefined): string {
  const type = (claimed ?? 'application/json').split(';')[0]!.trim().toLowerCase();
  if (type === 'text/event-stream') return type;
  if (type === 'application/json' || type.endsWith('+json')) return 'application/json; charset=utf-8';
  return 'application/octet-stream';
}

/**
 * The agent's card as callers must use it: every interface it lists points at the proxy (never at
 * the agent's own address, which only the proxy may call), and only JSON-RPC interfaces are kept,
 * the one binding the proxy forwards. Both card shapes: protocol 1.0 (`supportedInterfaces`) and
 * 0.3 (`url`, `preferredTransport`, `additionalInterfaces`).
 */
export function proxiedCard(card: Record<string, unknown>, url: string): Record<string, unknown> {
  const jsonRpc = (i: unknown, key: 'protocolBinding' | 'transport') =>
    typeof i === 'object' &&
    i !== null &&
    String((i as Record<string, unknown>)[key] ?? 'JSONRPC') === 'JSONRPC';
  const repoint = (list: unknown, key: 'protocolBinding' | 'transport') =>
    Array.isArray(list)
      ? list.filter((i) => jsonRpc(i, key)).map((i) => ({ ...(i as Record<string, unknown>), url }))
      : list;
  const out: Record<string, unknown> = { ...card };
  if ('supportedInterfaces' in card)
    out.supportedInterfaces = repoint(card.supportedInterfaces, 'protocolBinding');
  if ('additionalInterfaces' in card)
    out.additionalInterfaces = repoint(card.additionalInterfaces, 'transport');
  // A 1.0-only card has no top-level url; any other card (0.3, or older) gets the proxy's.
  if ('url' in card || !('supportedInterfaces' in card)) out.url = url;
  if ('preferredTransport' in card) out.preferredTransport = 'JSONRPC';
  return out;
}
