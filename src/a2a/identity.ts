/**
 * The platform's half of the agent identity check (src/security/agent-identity.ts): every new
 * connection to an agent first asks it to prove it is the workspace generation the call is meant
 * for, before any byte that matters (the caller's body, the agent credential) is written on it.
 *
 * A recorded endpoint can be another tenant's agent by now (a host port freed by a dockerd restart
 * and given to a new container, an instance's private IP given to another instance); without the
 * check, a call to workspace A would hand A's caller's message and A's credential to B's agent and
 * B's answer to A's caller. A connection that fails it is destroyed and reported as an error of
 * the connection (nothing was sent), so the proxy treats it exactly as an agent that moved: it
 * re-reads the endpoint and otherwise answers 502 agent_unreachable after a liveness check.
 *
 * The check runs inside the http.Agent's `createConnection`, so a request gets its socket only once
 * it is verified; the pool's key (`getName`) carries the workspace and generation, so a verified
 * socket is only ever reused for the workspace generation it was verified for. A kept-alive
 * connection stays with the process that answered (its death closes it), so one check per new
 * connection is enough.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import {
  GENERATION_HEADER,
  IDENTITY_PATH,
  NONCE_HEADER,
  PROOF_HEADER,
  WORKSPACE_HEADER,
  WORKSPACE_PATTERN,
  identityProof,
  proofMatches,
} from '../security/agent-identity.js';

/** Who a call means to reach: the workspace generation and the credential its agent holds. */
export interface AgentIdentity {
  workspaceId: string;
  generation: number;
  credential: string;
}

/** Request options as they reach the pool and `createConnection` (http.request passes them on). */
export interface IdentifiedArgs extends http.ClientRequestArgs {
  agentIdentity?: AgentIdentity;
  /** Connect plus answer, in ms (default IDENTIFY_TIMEOUT_MS). */
  identifyTimeoutMs?: number;
}

export const IDENTIFY_TIMEOUT_MS = 10_000;
/** A genuine answer is a status line and a few headers; anything longer is not one. */
export const MAX_ANSWER_BYTES = 4_096;

/** The peer did not prove it is the expected agent (or could not be asked): nothing was sent to it. */
export class IdentityError extends Error {
  constructor(reason: string) {
    super(`agent identity not proven: ${reason}`);
    this.name = 'IdentityError';
  }
}

type OnCreate = (err: Error | null, socket: Duplex) => void;

/**
 * Connects to `options.host:port` and runs the check; `cb` gets the verified socket (still open,
 * nothing buffered on it), or the connection's own error (ECONNREFUSED…) / an IdentityError, the
 * socket then destroyed. The `createConnection` of IdentifiedAgent (the `createConnection` option
 * of a request is ignored by Node whenever an agent is involved, `agent: false` included).
 */
export function identifiedConnection(options: http.ClientRequestArgs, cb: OnCreate): undefined {
  const { agentIdentity: id, identifyTimeoutMs = IDENTIFY_TIMEOUT_MS } = options as IdentifiedArgs;
  // Fail closed: a request that names no identity never gets a connection through this path.
  if (!id || !WORKSPACE_PATTERN.test(id.workspaceId) || !Number.isSafeInteger(id.generation)) {
    process.nextTick(() => cb(new IdentityError('no valid identity to check'), undefined as never));
    return undefined;
  }
  const host = options.host ?? 'localhost';
  const port = Number(options.port ?? 80);
  const socket = net.connect({
    host,
    port,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    ...(options.family ? { family: options.family } : {}),
    noDelay: true,
  });
  const nonce = randomBytes(32).toString('base64url');
  const authority = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
  // Written at once: the socket sends it as soon as it is connected. Nothing else is written
  // before the answer is judged.
  socket.write(
    `GET ${IDENTITY_PATH} HTTP/1.1\r\nhost: ${authority}\r\n${NONCE_HEADER}: ${nonce}\r\n` +
      `${WORKSPACE_HEADER}: ${id.workspaceId}\r\n${GENERATION_HEADER}: ${id.generation}\r\n\r\n`,
  );
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  const finish = (err: Error | null) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('error', finish);
    socket.off('close', onClose);
    if (err) {
      socket.destroy();
      cb(err, undefined as never);
    } else cb(null, socket);
  };
  const timer = setTimeout(
    () => finish(new IdentityError(`no answer within ${identifyTimeoutMs} ms`)),
    identifyTimeoutMs,
  );
  const onClose = () => finish(new IdentityError('the connection closed before an answer'));
  const onData = (chunk: Buffer) => {
    chunks.push(chunk);
    size += chunk.length;
    const verdict = judge(Buffer.concat(chunks, size), nonce, id);
    if (verdict === 'more') return;
    finish(verdict === 'proven' ? null : new IdentityError(verdict));
  };
  socket.on('data', onData);
  socket.on('error', finish);
  socket.on('close', onClose);
  return undefined;
}

/** 'proven', 'more' (the answer is not whole yet), or why the answer proves nothing. */
export function judge(answer: Buffer, nonce: string, id: AgentIdentity): 'proven' | 'more' | string {
  const end = answer.indexOf('\r\n\r\n');
  if (end < 0) return answer.length > MAX_ANSWER_BYTES ? 'an answer too long' : 'more';
  if (end + 4 > MAX_ANSWER_BYTES) return 'an answer too long';
  // The genuine agent sends nothing it was not asked for: any byte after the answer would be read
  // as the start of the next request's answer.
  if (answer.length > end + 4) return 'bytes after the answer';
  const [statusLine = '', ...lines] = answer.subarray(0, end).toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(statusLine);
  if (!status) return 'not an HTTP answer';
  if (status[1] !== '204') return `answered ${status[1]}`;
  const proofs: string[] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) return 'a malformed header';
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === PROOF_HEADER) proofs.push(value);
    // A body (or a close) would leave the connection unusable for the request that follows.
    else if (name === 'transfer-encoding' || (name === 'content-length' && value !== '0')) {
      return 'an answer with a body';
    } else if (name === 'connection' && /(^|,)\s*close\s*(,|$)/i.test(value)) {
      return 'the agent closes the connection';
    }
  }
  if (proofs.length !== 1) return 'no proof';
  const expected = identityProof(id.credential, nonce, id.workspaceId, id.generation);
  return proofMatches(expected, proofs[0]!) ? 'proven' : 'a wrong proof';
}

/**
 * A kept-alive pool whose connections are verified before use and keyed by the workspace
 * generation they were verified for: one pool (one set of limits) for every agent, as before, but a
 * socket proven to be A's never carries a call meant for B.
 */
export class IdentifiedAgent extends http.Agent {
  override getName(options?: http.ClientRequestArgs): string {
    const id = (options as IdentifiedArgs | undefined)?.agentIdentity;
    return `${super.getName(options)}|${id ? `${id.workspaceId}.${id.generation}` : '-'}`;
  }

  override createConnection(options: http.ClientRequestArgs, cb?: OnCreate): undefined {
    return identifiedConnection(options, cb ?? (() => undefined));
  }
}
