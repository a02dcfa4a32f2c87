/**
 * The terminal WebSocket (`GET /v1/workspaces/:id/terminal`), attached to the API's HTTP server.
 *
 * The token comes in `Authorization`, else as the `wo.bearer.<token>` subprotocol (what browsers can
 * send), else as `?token=`.
 * The socket is always accepted first and then closed with a contract code when the call is not
 * allowed: 4401 (missing/invalid token), 4404 (unknown workspace, or another org's), 4409 (not
 * online/degraded), 4429 (the key over its request rate, which the terminal's openings count in
 * with its HTTP calls, or the workspace at TERMINAL_MAX_SESSIONS open sessions: each is a shell
 * holding processes in the workspace). Binary frames both ways carry raw terminal bytes; text frames carry JSON control
 * messages (`{"type":"resize","cols":N,"rows":N}`). The server pings every connection and drops one
 * that stops answering, so idle sessions survive proxies and dead peers do not keep a shell open.
 *
 * Every session is registered in `terminal_sessions` before the backend opens it and removed once it
 * is closed; the process marks its sessions alive every refresh period. A process that dies (SIGKILL,
 * crash) closes nothing, and dockerd keeps an exec running when its client goes: the reaper of any
 * API process (this one too, after a restart) finds rows left unmarked past their stale threshold,
 * claims each one, kills the session's processes through the backend and deletes the row.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { BackendError, type TerminalSession, type TerminalSize } from '../backends/backend.js';
import { orgIdForApiKey } from '../db/orgs.js';
import { tokenKind } from './auth.js';
import {
  claimStaleTerminalSessions,
  deleteTerminalSession,
  insertTerminalSession,
  touchTerminalSessions,
  type TerminalSessionRow,
} from '../db/terminal-sessions.js';
import { getWorkspace } from '../db/workspaces.js';
import { hashToken, safeEqual } from '../security/tokens.js';
import type { ApiDeps, TerminalSessionSettings } from './deps.js';
import { keyRateLimitOf, rateLimitKey } from './limits.js';
import { workspaceIdParam } from './schemas.js';

export interface TerminalOptions {
  /** Interval of server pings; a socket that has not answered the previous ping is dropped. */
  pingIntervalMs?: number;
  /** Open sessions per workspace before the next is refused 4429 (default TERMINAL_MAX_SESSIONS). */
  maxSessionsPerWorkspace?: number;
}

export const DEFAULT_TERMINAL_SESSION_SETTINGS: TerminalSessionSettings = {
  refreshMs: 20_000,
  staleMs: 90_000,
  reapIntervalMs: 30_000,
};
/** The first reaping round after the start: soon, so a restarted API cleans up after its own crash. */
const FIRST_REAP_MAX_MS = 5_000;

export const CLOSE_AUTH = 4401;
export const CLOSE_NOT_FOUND = 4404;
export const CLOSE_NOT_ONLINE = 4409;
export const CLOSE_RATE_LIMITED = 4429;
/** Open sessions per workspace (per API process); the next one is refused 4429. */
export const TERMINAL_MAX_SESSIONS = 32;
/** Too many frames (or bytes) sent before the session opened. */
export const CLOSE_INPUT_OVERFLOW = 1008;

/** Frames / bytes kept while the session opens (auth + backend); past either the socket closes. */
export const PENDING_MAX_FRAMES = 256;
export const PENDING_MAX_BYTES = 1 << 20;
/** Socket reads pause while this many input frames wait for the shell; resume at the lower mark. */
const INPUT_PAUSE_FRAMES = 64;
const INPUT_RESUME_FRAMES = 16;

const frameBytes = (data: RawData): number =>
  Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer | ArrayBuffer).byteLength;

const PATH = /^\/v1\/workspaces\/([^/]+)\/terminal\/?$/;
const DEFAULT_SIZE: TerminalSize = { cols: 80, rows: 24 };
const MAX_DIMENSION = 1000;
/** Output is paused while this much is queued on the socket, resumed once it drains below LOW. */
const HIGH_WATER = 1 << 20;
const LOW_WATER = 1 << 18;

class Refused extends Error {
  constructor(
    readonly code: number,
    reason: string,
  ) {
    super(reason);
  }
}

/**
 * Browsers cannot set headers on a WebSocket: they offer `wo.terminal` plus `wo.bearer.<token>` as
 * subprotocols (the token stays out of URLs and logs of the path). Only `wo.terminal` is ever echoed.
 */
export const TERMINAL_SUBPROTOCOL = 'wo.terminal';
const BEARER_SUBPROTOCOL = 'wo.bearer.';

function tokenOf(req: IncomingMessage, url: URL): string | null {
  const h = req.headers.authorization;
  if (h) {
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    return m ? m[1]! : null;
  }
  const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  const sub = offered.find((p) => p.startsWith(BEARER_SUBPROTOCOL));
  if (sub) return sub.slice(BEARER_SUBPROTOCOL.length) || null;
  return url.searchParams.get('token') || null;
}

/** The subprotocol answered: `wo.terminal` when offered, else any but a bearer one (never echoed). */
function pickProtocol(offered: Set<string>): string | false {
  if (offered.has(TERMINAL_SUBPROTOCOL)) return TERMINAL_SUBPROTOCOL;
  return [...offered].find((p) => !p.startsWith(BEARER_SUBPROTOCOL)) ?? false;
}

/**
 * The upgrade request's URL and terminal workspace id: id null = not the terminal path, undefined =
 * the terminal path with an undecodable id. Null overall when the request target is not a path
 * (`//`, `http://…`, garbage): parsed defensively, since a throw here would escape every handler.
 */
function parseUpgradeTarget(raw: string | undefined): { url: URL; id: string | null | undefined } | null {
  if (!raw || !raw.startsWith('/') || raw.startsWith('//')) return null;
  let url: URL;
  try {
    url = new URL(raw, 'http://localhost');
  } catch {
    return null;
  }
  const m = PATH.exec(url.pathname);
  if (!m) return { url, id: null };
  try {
    return { url, id: decodeURIComponent(m[1]!) };
  } catch {
    return { url, id: undefined };
  }
}

/** Answers an upgrade we will not take with a plain HTTP status, then drops the socket. */
function refuseUpgrade(socket: Duplex, status: string): void {
  if (socket.destroyed) return;
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  // end() waits for the peer; a peer that never reads must not keep the socket.
  setTimeout(() => socket.destroy(), 1000).unref();
}

const validDimension = (n: unknown): n is number =>
  typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= MAX_DIMENSION;

function sizeFromQuery(url: URL): TerminalSize {
  const cols = Number(url.searchParams.get('cols'));
  const rows = Number(url.searchParams.get('rows'));
  return validDimension(cols) && validDimension(rows) ? { cols, rows } : DEFAULT_SIZE;
}

/** The resize message, or null when a text frame is not a valid control message. */
function parseControl(text: string): { type: 'resize'; size: TerminalSize } | { type: 'other' } | null {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return null;
  const m = msg as Record<string, unknown>;
  if (typeof m.type !== 'string') return null;
  if (m.type !== 'resize') return { type: 'other' };
  if (!validDimension(m.cols) || !validDimension(m.rows)) return null;
  return { type: 'resize', size: { cols: m.cols, rows: m.rows } };
}

const truncate = (reason: string): string => {
  // A close reason is at most 123 bytes.
  const b = Buffer.from(reason);
  return b.length <= 123
    ? reason
    : b
        .subarray(0, 120)
        .toString('utf8')
        .replace(/\uFFFD$/, '') + '…';
};

export function attachTerminal(
  server: Server,
  deps: ApiDeps,
  opts: TerminalOptions = {},
): { close(): Promise<void> } {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20, handleProtocols: pickProtocol });
  /** Open sessions and their registry ids. */
  const sessions = new Map<TerminalSession, { sessionId: string; workspaceId: string }>();
  const registry = { ...DEFAULT_TERMINAL_SESSION_SETTINGS, ...deps.settings.terminalSessions };
  /** Registry rows this process keeps alive: from before the backend opens a session to its close. */
  const registered = new Set<string>();
  /** Sessions open or opening, per workspace (see TERMINAL_MAX_SESSIONS). */
  const perWorkspace = new Map<string, number>();
  const maxSessions = opts.maxSessionsPerWorkspace ?? TERMINAL_MAX_SESSIONS;
  const rateLimit = keyRateLimitOf(deps, deps.settings.rateLimitPerMinute);
  const alive = new WeakMap<WebSocket, boolean>();
  const log = deps.log.child({ component: 'terminal' });
  let shuttingDown = false;

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Node removes its own error listener from an upgraded socket: without ours, a reset by the
    // peer (or any write error) would be an uncaught exception.
    socket.on('error', (err) => log.debug({ err }, 'upgrade socket error'));
    const target = parseUpgradeTarget(req.url);
    if (!target) {
      refuseUpgrade(socket, '400 Bad Request');
      return;
    }
    const { url, id } = target;
    if (id === null || shuttingDown) {
      // Someone else's upgrade: leave it alone, unless nobody else is listening for it.
      if (server.listenerCount('upgrade') <= 1 || (id !== null && shuttingDown)) {
        refuseUpgrade(socket, id !== null ? '503 Service Unavailable' : '404 Not Found');
      }
      return;
    }
    if (id === undefined) {
      // The terminal path with an id that is not valid %-encoding.
      refuseUpgrade(socket, '400 Bad Request');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      // Protocol errors (bad frames, oversized payloads) arrive here; ws then closes the socket.
      ws.on('error', (err) => log.debug({ err, workspaceId: id }, 'terminal socket error'));
      alive.set(ws, true);
      ws.on('pong', () => alive.set(ws, true));
      // Any frame read proves the peer is there, as a pong would (a pong may sit unread behind them).
      ws.on('message', () => alive.set(ws, true));
      serve(ws, req, url, id).catch((err: unknown) => {
        log.error({ err }, 'terminal session failed');
        close(ws, 1011, 'internal error');
      });
    });
  };
  server.on('upgrade', onUpgrade);

  const close = (ws: WebSocket, code: number, reason: string): void => {
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, truncate(reason));
  };

  async function authorize(req: IncomingMessage, url: URL, id: string) {
    const token = tokenOf(req, url);
    if (!token) throw new Refused(CLOSE_AUTH, 'missing bearer token');
    let scope: string | null;
    let rateKey: string;
    if (safeEqual(token, deps.settings.adminToken)) {
      scope = null;
      rateKey = rateLimitKey({ kind: 'admin' }, token);
    } else if (token.startsWith('wo_org_')) {
      const orgId = await orgIdForApiKey(deps.db, token);
      if (!orgId) throw new Refused(CLOSE_AUTH, 'invalid token');
      scope = orgId;
      rateKey = rateLimitKey({ kind: 'org', orgId }, token, hashToken(token));
    } else if (['ws', 'boot'].includes(tokenKind(token) ?? '')) {
      // Said so (the prefix tells the kind anyway): "invalid" sent callers looking for a typo.
      throw new Refused(
        CLOSE_AUTH,
        'workspace tokens cannot open terminals: use an org key or the admin token',
      );
    } else throw new Refused(CLOSE_AUTH, 'invalid token');
    const over = await rateLimit.charge(rateKey);
    if (over) {
      throw new Refused(
        CLOSE_RATE_LIMITED,
        `over ${deps.settings.rateLimitPerMinute} requests per minute for this key; retry in ${over.retryAfterSeconds} s`,
      );
    }
    const w = workspaceIdParam.safeParse(id).success ? await getWorkspace(deps.db, id, scope) : null;
    if (!w) throw new Refused(CLOSE_NOT_FOUND, `workspace ${id} not found`);
    if (w.status !== 'online' && w.status !== 'degraded') {
      throw new Refused(CLOSE_NOT_ONLINE, `workspace ${id} is ${w.status}`);
    }
    return w;
  }

  async function serve(ws: WebSocket, req: IncomingMessage, url: URL, id: string): Promise<void> {
    // Frames that arrive while the session opens are kept and replayed in order, up to a bound:
    // past it the socket is closed (1008) rather than buffering for an unauthenticated peer.
    const pending: { data: RawData; isBinary: boolean }[] = [];
    let pendingBytes = 0;
    let overflowed = false;
    let handle: ((data: RawData, isBinary: boolean) => void) | null = null;
    ws.on('message', (data, isBinary) => {
      if (handle) return handle(data, isBinary);
      if (overflowed) return;
      pendingBytes += frameBytes(data);
      if (pending.length >= PENDING_MAX_FRAMES || pendingBytes > PENDING_MAX_BYTES) {
        overflowed = true;
        pending.length = 0;
        return close(ws, CLOSE_INPUT_OVERFLOW, 'too much input before the session opened');
      }
      pending.push({ data, isBinary });
    });
    let socketClosed = false;
    ws.once('close', () => {
      socketClosed = true;
    });

    let session: TerminalSession;
    let held: string | null = null;
    const sessionId = randomUUID();
    let row: TerminalSessionRow | null = null;
    const release = (): void => {
      if (held === null) return;
      const n = (perWorkspace.get(held) ?? 1) - 1;
      if (n > 0) perWorkspace.set(held, n);
      else perWorkspace.delete(held);
      held = null;
    };
    try {
      const w = await authorize(req, url, id);
      if (socketClosed || overflowed) return;
      // Counted from here (not once open), so that a burst of openings cannot pass the cap together.
      const open = perWorkspace.get(w.id) ?? 0;
      if (open >= maxSessions) {
        throw new Refused(CLOSE_RATE_LIMITED, `workspace ${w.id} has ${open} terminal sessions open`);
      }
      perWorkspace.set(w.id, open + 1);
      held = w.id;
      // Registered first: a crash before the shell starts leaves a row (reaped, finding nothing),
      // never a shell nobody knows of. No row, no shell: a failed insert fails the opening.
      row = { id: sessionId, workspaceId: w.id, generation: w.generation, backend: w.backend };
      await insertTerminalSession(deps.db, row, registry.staleMs);
      registered.add(sessionId);
      session = await deps.backends[w.backend].openTerminal(
        w.id,
        w.generation,
        sizeFromQuery(url),
        sessionId,
      );
    } catch (err) {
      release();
      if (row && registered.has(sessionId)) {
        registered.delete(sessionId);
        // Nothing can run where there is no running resource: the row goes now. Otherwise a shell
        // may have started before the failure: the row is left unrefreshed, for the reaper.
        if (err instanceof BackendError && (err.code === 'not_found' || err.code === 'not_running')) {
          unregister(sessionId);
        }
      }
      if (err instanceof Refused) return close(ws, err.code, err.message);
      if (err instanceof BackendError && (err.code === 'not_found' || err.code === 'not_running')) {
        return close(ws, CLOSE_NOT_ONLINE, `workspace ${id} has no running resource`);
      }
      log.warn({ err, workspaceId: id }, 'opening a terminal failed');
      return close(ws, 1011, `terminal unavailable: ${(err as Error).message}`);
    }
    sessions.set(session, { sessionId, workspaceId: id });
    const done = (): void => {
      sessions.delete(session);
      release();
      void closeSession(session, sessionId, id);
    };
    if (socketClosed || overflowed || shuttingDown) return done();
    ws.once('close', done);

    // Shell → socket, paused while the socket's send queue is full.
    const output = session.output;
    output.on('data', (chunk: Buffer | string) => {
      if (ws.readyState !== ws.OPEN) return;
      ws.send(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, { binary: true }, () => {
        if (output.isPaused() && ws.bufferedAmount < LOW_WATER) output.resume();
      });
      if (ws.bufferedAmount > HIGH_WATER) output.pause();
    });
    output.on('error', () => undefined);
    void session.exited.then((code) =>
      close(ws, 1000, code === null ? 'shell exited' : `shell exited ${code}`),
    );

    // Socket → shell, in order (a resize takes effect before the bytes sent after it), with
    // backpressure: reading from the socket pauses while frames queue up here or the shell's
    // input is backed up, so a fast sender cannot make the server buffer without bound.
    let queue = Promise.resolve();
    let queued = 0;
    const settle = (): void => {
      queued--;
      if (ws.isPaused && queued <= INPUT_RESUME_FRAMES && ws.readyState === ws.OPEN) {
        // A pong that arrived while reading was paused is still unread: a full round from here.
        alive.set(ws, true);
        ws.resume();
      }
    };
    handle = (data, isBinary) => {
      if (++queued > INPUT_PAUSE_FRAMES && !ws.isPaused) ws.pause();
      queue = queue
        .then(() => handleFrame(data, isBinary))
        .catch((err: unknown) => log.warn({ err, workspaceId: id }, 'terminal input failed'))
        .finally(settle);
    };
    const handleFrame = async (data: RawData, isBinary: boolean): Promise<void> => {
      if (socketClosed) return;
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
      if (isBinary) {
        if (!session.write(buf)) await session.drained();
        return;
      }
      const msg = parseControl(buf.toString('utf8'));
      if (!msg) return close(ws, 1007, 'invalid control message');
      if (msg.type === 'resize') {
        await session.resize(msg.size).catch((err: unknown) => {
          log.warn({ err, workspaceId: id }, 'terminal resize failed');
        });
      }
      // Unknown control message types are ignored (forward compatible).
    };
    for (const p of pending.splice(0)) handle(p.data, p.isBinary);
  }

  /** Deletes a session's row; a failure leaves it to go stale, and the reaper finds nothing to kill. */
  const unregister = (sessionId: string): Promise<void> =>
    deleteTerminalSession(deps.db, sessionId).catch((err: unknown) =>
      log.warn({ err, sessionId }, 'terminal session row not deleted'),
    );

  /** Closes a session, then drops its row; a close that failed leaves the row for the reaper. */
  const closeSession = async (session: TerminalSession, sessionId: string, workspaceId: string) => {
    try {
      await session.close();
    } catch (err) {
      log.warn({ err, workspaceId }, 'closing a terminal failed');
      registered.delete(sessionId);
      return;
    }
    registered.delete(sessionId);
    await unregister(sessionId);
  };

  // Every session of this process marked alive at once; a failure is only logged (the next round
  // retries, and the stale threshold is at least two rounds).
  const refresher = setInterval(() => {
    if (registered.size === 0) return;
    touchTerminalSessions(deps.db, [...registered]).catch((err: unknown) =>
      log.warn({ err, sessions: registered.size }, 'terminal sessions not marked alive'),
    );
  }, registry.refreshMs);
  refresher.unref();

  let reaping: Promise<void> | null = null;
  const reapOne = async (row: TerminalSessionRow): Promise<void> => {
    // Our own, judged stale because our refreshes failed for a while: alive here, and the claim
    // has marked it alive again.
    if (registered.has(row.id)) return;
    try {
      await deps.backends[row.backend].killTerminalSession(row.workspaceId, row.generation, row.id);
      await deleteTerminalSession(deps.db, row.id);
      log.info({ sessionId: row.id, workspaceId: row.workspaceId }, 'orphaned terminal session reaped');
    } catch (err) {
      // The claim's lease runs out after one stale period: then any reaper tries again.
      log.warn(
        { err, sessionId: row.id, workspaceId: row.workspaceId },
        'orphaned terminal session not reaped',
      );
    }
  };
  const reap = (): Promise<void> =>
    (reaping ??= (async () => {
      try {
        const claimed = await claimStaleTerminalSessions(deps.db);
        await Promise.all(claimed.map(reapOne));
      } catch (err) {
        log.warn({ err }, 'terminal reaper round failed');
      } finally {
        reaping = null;
      }
    })());
  const reaper = setInterval(() => void reap(), registry.reapIntervalMs);
  reaper.unref();
  const firstReap = setTimeout(() => void reap(), Math.min(FIRST_REAP_MAX_MS, registry.reapIntervalMs));
  firstReap.unref();

  const pinger = setInterval(() => {
    for (const ws of wss.clients) {
      // Reading is paused for backpressure (the shell is not taking input): the peer's pong cannot
      // be read, so this round does not judge it (it gets a full round once reading resumes). The
      // ping is still written: a peer that went away (reset) fails the write, which closes the
      // socket and its session.
      if (ws.isPaused) {
        alive.set(ws, true);
        ws.ping();
        continue;
      }
      if (!alive.get(ws)) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      ws.ping();
    }
  }, opts.pingIntervalMs ?? 20_000);
  pinger.unref();

  return {
    async close() {
      shuttingDown = true;
      clearInterval(pinger);
      clearInterval(reaper);
      clearTimeout(firstReap);
      server.off('upgrade', onUpgrade);
      for (const ws of wss.clients) close(ws, 1001, 'server shutting down');
      await Promise.allSettled([...sessions].map(([s, r]) => closeSession(s, r.sessionId, r.workspaceId)));
      sessions.clear();
      clearInterval(refresher);
      await reaping;
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
