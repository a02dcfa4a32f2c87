/**
 * Caps on the API's open client connections. Every accepted socket costs a file descriptor before
 * any authentication, so without a cap one client opening idle connections took them all: past
 * the process's limit, nothing could open a database connection, a docker socket or a file, and a
 * process that also ran the worker died (Temporal's workflow sandbox aborts when it cannot open its
 * event loop). Past either cap a new connection is answered `503 too_many_connections` with
 * `Retry-After` and closed, never handed to HTTP parsing, so no request on it runs.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { CappedCounts } from './capped-counts.js';
import { rawJsonAnswer } from './client-errors.js';
import { connectionsOpen, connectionsRefused } from './metrics.js';

export interface ConnectionLimits {
  /** Open connections this process serves at once (terminal sockets and streams included). */
  max: number;
  /** Open connections one TCP peer address may hold; null: no per-peer cap. */
  perClient: number | null;
}

/** Ceiling of the derived default: past it memory, not descriptors, is what runs out. */
const DEFAULT_MAX_CEILING = 10_000;
/** Used when the descriptor limit cannot be read (not Linux). */
const DEFAULT_MAX_UNKNOWN = 4_096;

/**
 * A third of the process's soft descriptor limit (at most 10,000): a proxied call or a terminal
 * holds a second descriptor upstream for each client one, and the database pool, the docker
 * socket, files and (in a one-process deployment) the worker need theirs.
 */
export function defaultMaxConnections(limits: string | null = readLimits()): number {
  const soft = limits?.match(/^Max open files\s+(\d+|unlimited)/m)?.[1];
  if (soft === undefined) return DEFAULT_MAX_UNKNOWN;
  if (soft === 'unlimited') return DEFAULT_MAX_CEILING;
  return Math.max(16, Math.min(DEFAULT_MAX_CEILING, Math.floor(Number(soft) / 3)));
}

/**
 * The HTTP server's header timeout (API_HEADERS_TIMEOUT_MS) and how often Node enforces it: every
 * 30 s by default, which would let a 15 s limit hold a connection for up to 45 s. Node wants both
 * as whole milliseconds.
 */
export function headerTimeouts(headersTimeoutMs: number): {
  headersTimeout: number;
  connectionsCheckingInterval: number;
} {
  return {
    headersTimeout: headersTimeoutMs,
    connectionsCheckingInterval: Math.min(5_000, Math.max(250, Math.floor(headersTimeoutMs / 4))),
  };
}

/** The caps as configured (API_MAX_CONNECTIONS, API_MAX_CONNECTIONS_PER_CLIENT: see src/config.ts). */
export function resolveConnectionLimits(
  config: {
    API_MAX_CONNECTIONS: number | string;
    API_MAX_CONNECTIONS_PER_CLIENT: number | string;
    TRUST_PROXY: unknown;
  },
  limits?: string | null,
): ConnectionLimits {
  const max =
    typeof config.API_MAX_CONNECTIONS === 'number'
      ? config.API_MAX_CONNECTIONS
      : defaultMaxConnections(limits);
  const per = config.API_MAX_CONNECTIONS_PER_CLIENT;
  let perClient: number | null;
  if (typeof per === 'number') perClient = per;
  else if (per === 'off' || config.TRUST_PROXY !== false) perClient = null;
  else perClient = Math.max(1, Math.floor(max / 4));
  return { max, perClient };
}

function readLimits(): string | null {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
}

const REFUSAL = rawJsonAnswer(503, 'too_many_connections', 'too many open connections; retry shortly', [
  'Retry-After: 1',
]);
/** A refused peer that keeps its end open is cut after this. */
const REFUSED_LINGER_MS = 2_000;
/**
 * Refused sockets waiting for their peer's close at once. Each holds a descriptor, so past this a
 * refusal is a close without the answer: a burst of connections cannot spend the descriptors the
 * cap keeps for the process's own work.
 */
const MAX_LINGERING = 64;
/** At most one warning per reason this often (a flood would otherwise log each connection). */
const WARN_EVERY_MS = 10_000;

/**
 * Puts the caps in front of `server`'s HTTP handling: its own 'connection' listener is wrapped, so a
 * refused socket never reaches the HTTP parser (a request already sent on it is read and dropped).
 * Answers the count of the connections it holds.
 */
export function limitConnections(server: Server, limits: ConnectionLimits, log: Logger): CappedCounts {
  const handlers = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  const held = new CappedCounts(limits.max, limits.perClient);
  const lastWarned = { max: 0, per_client: 0 };
  const skipped = { max: 0, per_client: 0 };

  let lingering = 0;
  const refuse = (socket: Socket, reason: 'max' | 'per_client', peer: string) => {
    connectionsRefused.inc({ reason });
    skipped[reason]++;
    const now = Date.now();
    if (now - lastWarned[reason] >= WARN_EVERY_MS) {
      log.warn(
        { reason, peer, refusedSinceLastWarning: skipped[reason], open: held.held, limits },
        'connection refused at the cap',
      );
      lastWarned[reason] = now;
      skipped[reason] = 0;
    }
    socket.on('error', () => undefined);
    if (lingering >= MAX_LINGERING) return void socket.destroy();
    lingering++;
    socket.once('close', () => lingering--);
    socket.setTimeout(REFUSED_LINGER_MS, () => socket.destroy());
    socket.end(REFUSAL);
    // Whatever the peer sends is read and dropped, so its writes do not stall the close.
    socket.resume();
  };

  server.on('connection', (socket: Socket) => {
    const peer = socket.remoteAddress ?? 'unknown';
    const release = held.take(peer);
    if (release === 'max') return refuse(socket, 'max', peer);
    if (release === 'per_key') return refuse(socket, 'per_client', peer);
    connectionsOpen.inc();
    socket.once('close', () => {
      release();
      connectionsOpen.dec();
    });
    for (const handler of handlers) handler.call(server, socket);
  });
  return held;
}
