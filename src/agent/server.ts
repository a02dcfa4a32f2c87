import { randomUUID, timingSafeEqual } from 'node:crypto';
import {
  createServer,
  type IncomingMessage as HttpRequest,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AgentHooks } from './bundle.js';
import {
  agentCard,
  echoMessage,
  parseRpc,
  readMessage,
  rpcError,
  rpcResult,
  streamChunk,
  RPC_INVALID_PARAMS,
  RPC_METHOD_NOT_FOUND,
  type Identity,
  type IncomingMessage,
  type RpcRequest,
} from './a2a.js';
import { log, errorText } from './log.js';
import type { AgentStats } from './stats.js';

const MAX_BODY_BYTES = 10 * 1024 * 1024;

export interface ServerDeps {
  identity: Identity;
  hooks: AgentHooks;
  stats: AgentStats;
  /** The URL the agent card advertises (informational: the platform proxies to its own record). */
  cardUrl: string;
  /** The per-generation credential the platform's A2A proxy presents (from the bundle). */
  credential: string;
  /** `POST /plugins/reload`: the platform changed /configs/plugins; report the new set now. */
  onReload?: () => void;
}

/** Same name as the platform's AGENT_CREDENTIAL_HEADER (src/security/agent-credential.ts). */
export const CREDENTIAL_HEADER = 'x-wo-agent-credential';

/**
 * Only the platform's proxy may call the agent: a neighbour that reaches this address directly
 * would bypass org scoping, peer identity and the activity log. No credential → refuse everything.
 */
function authorized(req: HttpRequest, expected: string): boolean {
  const presented = req.headers[CREDENTIAL_HEADER];
  if (typeof presented !== 'string' || expected === '') return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

class BodyTooLarge extends Error {}

function readBody(req: HttpRequest): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new BodyTooLarge());
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * `message/stream`: n SSE events spaced `streamIntervalMs` apart, each written as soon as it is
 * produced (no buffering), so a proxy test can see the first chunk before the last exists.
 */
function streamReply(deps: ServerDeps, res: ServerResponse, rpc: RpcRequest, msg: IncomingMessage) {
  const { identity, hooks, stats } = deps;
  const n = hooks.streamChunks;
  const ids = { taskId: randomUUID(), contextId: msg.contextId ?? randomUUID() };
  stats.taskStarted();
  res.socket?.setNoDelay(true);
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  res.flushHeaders();

  let i = 0;
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  const finish = (failed: boolean) => {
    if (done) return;
    done = true;
    if (timer) clearTimeout(timer);
    stats.taskEnded(failed);
  };
  // A caller that hangs up mid-stream ends the task; nothing is left ticking.
  res.on('close', () => finish(i < n));

  const next = () => {
    i++;
    res.write(`data: ${JSON.stringify(rpcResult(rpc.id, streamChunk(identity, msg, ids, i, n)))}\n\n`);
    if (i >= n) {
      finish(false);
      res.end();
      return;
    }
    timer = setTimeout(next, hooks.streamIntervalMs);
  };
  next();
}

async function handleRpc(deps: ServerDeps, req: HttpRequest, res: ServerResponse): Promise<void> {
  let body: string;
  try {
    body = await readBody(req);
  } catch (err) {
    deps.stats.rejected();
    if (err instanceof BodyTooLarge) sendJson(res, 413, rpcError(null, -32600, 'request body too large'));
    return;
  }
  const parsed = parseRpc(body);
  if ('error' in parsed) {
    deps.stats.rejected();
    sendJson(res, 200, parsed.error);
    return;
  }
  const rpc = parsed.request;
  if (rpc.method !== 'message/send' && rpc.method !== 'message/stream') {
    deps.stats.rejected();
    sendJson(res, 200, rpcError(rpc.id, RPC_METHOD_NOT_FOUND, `Method not found: ${rpc.method}`));
    return;
  }
  const msg = readMessage(rpc.params);
  if (msg === null) {
    deps.stats.rejected();
    sendJson(res, 200, rpcError(rpc.id, RPC_INVALID_PARAMS, 'Invalid params: need params.message.parts[]'));
    return;
  }
  deps.stats.charge(deps.hooks.centsPerTask);
  if (rpc.method === 'message/stream') {
    streamReply(deps, res, rpc, msg);
    return;
  }
  deps.stats.taskStarted();
  sendJson(res, 200, rpcResult(rpc.id, echoMessage(deps.identity, msg)));
  deps.stats.taskEnded(false);
}

export function createA2AServer(deps: ServerDeps): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const route = `${req.method ?? ''} ${path}`;
    const run = async () => {
      // The liveness probe: open, and says nothing about the workspace.
      if (route === 'GET /health') return sendJson(res, 200, { ok: true });
      if (!authorized(req, deps.credential)) {
        req.resume();
        return sendJson(
          res,
          401,
          rpcError(null, -32001, 'Unauthorized: call this agent through the platform'),
        );
      }
      switch (route) {
        case 'GET /.well-known/agent.json':
          return sendJson(res, 200, agentCard(deps.identity, deps.cardUrl));
        case 'POST /':
          return handleRpc(deps, req, res);
        case 'POST /plugins/reload':
          req.resume();
          deps.onReload?.();
          return sendJson(res, 202, { ok: true });
        default:
          return sendJson(res, 404, { error: { code: 'not_found', message: `no route ${route}` } });
      }
    };
    run().catch((err: unknown) => {
      log(`A2A request ${route} failed: ${errorText(err)}`);
      if (!res.headersSent) sendJson(res, 500, rpcError(null, -32603, 'Internal error'));
      else res.destroy();
    });
  });
}

/** Listens on all interfaces (the backend publishes the port); rejects on EADDRINUSE and the like. */
export function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
}
