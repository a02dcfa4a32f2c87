import { timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { AGENT_CARD_PATH } from '@a2a-js/sdk';
import { UserBuilder, agentCardHandler, jsonRpcHandler } from '@a2a-js/sdk/server/express';
import express, { type ErrorRequestHandler, type Request, type RequestHandler } from 'express';
import type { AgentHooks } from './bundle.js';
import { echoRequestHandler, type Identity } from './a2a.js';
import { answerIdentity } from './identity.js';
import { IDENTITY_PATH } from '../security/agent-identity.js';
import { log, errorText } from './log.js';
import type { AgentStats } from './stats.js';

const MAX_BODY = '10mb';

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

const rpcError = (code: number, message: string) => ({ jsonrpc: '2.0', id: null, error: { code, message } });

/**
 * Only the platform's proxy may call the agent: a neighbour that reaches this address directly
 * would bypass org scoping, peer identity and the activity log. No credential → refuse everything.
 */
function authorized(req: Request, expected: string): boolean {
  const presented = req.headers[CREDENTIAL_HEADER];
  if (typeof presented !== 'string' || expected === '') return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Body errors the SDK's own parser would answer, answered here because the body is parsed here
 * (with the agent's larger limit): bad JSON → -32700, too large → 413. Both count as rejected.
 */
function bodyErrors(stats: AgentStats): ErrorRequestHandler {
  return (err: unknown, _req, res, next) => {
    const e = err as { type?: string; status?: number };
    if (e.type === 'entity.too.large') {
      stats.rejected();
      res.status(413).json(rpcError(-32600, 'request body too large'));
      return;
    }
    if (e.type === 'entity.parse.failed') {
      stats.rejected();
      res.status(200).json(rpcError(-32700, 'Parse error: body is not valid JSON'));
      return;
    }
    next(err);
  };
}

/**
 * Counts answers that are JSON-RPC errors (unknown method, bad params) as rejected requests for
 * the heartbeat's error rate: the SDK answers them without reaching the executor.
 */
function countRejected(stats: AgentStats): RequestHandler {
  return (_req, res, next) => {
    const json = res.json.bind(res);
    res.json = (body: unknown) => {
      if (typeof body === 'object' && body !== null && 'error' in body) stats.rejected();
      return json(body);
    };
    next();
  };
}

export function createA2AServer(deps: ServerDeps): Server {
  const handler = echoRequestHandler(deps.identity, deps.hooks, deps.stats, deps.cardUrl);
  const app = express();
  app.disable('x-powered-by');
  // The liveness probe: open, and says nothing about the workspace.
  app.get('/health', (_req, res) => {
    res.json({ ok: true });
  });
  // The platform's identity check, on every new connection before anything else is sent on it:
  // open (the credential is what the platform will not send before this answer proves us).
  const me = {
    workspaceId: deps.identity.workspaceId,
    generation: deps.identity.generation,
    credential: deps.credential,
  };
  app.get(IDENTITY_PATH, (req, res) => answerIdentity(req, res, me));
  app.use((req, res, next) => {
    if (authorized(req, deps.credential)) return next();
    req.resume();
    res.status(401).json(rpcError(-32001, 'Unauthorized: call this agent through the platform'));
  });
  const card = agentCardHandler({ agentCardProvider: handler, legacyCompat: { enabled: true } });
  // The current well-known path, and the one of protocol ≤ 0.2 that older callers still ask.
  app.use(`/${AGENT_CARD_PATH}`, card);
  app.use('/.well-known/agent.json', card);
  app.post(
    '/',
    express.json({ limit: MAX_BODY, type: () => true }),
    bodyErrors(deps.stats),
    countRejected(deps.stats),
    jsonRpcHandler({
      requestHandler: handler,
      userBuilder: UserBuilder.noAuthentication,
      legacyCompat: { enabled: true },
    }),
  );
  app.post('/plugins/reload', (req, res) => {
    req.resume();
    deps.onReload?.();
    res.status(202).json({ ok: true });
  });
  app.use((req, res) => {
    res.status(404).json({ error: { code: 'not_found', message: `no route ${req.method} ${req.path}` } });
  });
  const last: ErrorRequestHandler = (err: unknown, req, res, _next) => {
    log(`A2A request ${req.method} ${req.path} failed: ${errorText(err)}`);
    if (!res.headersSent) res.status(500).json(rpcError(-32603, 'Internal error'));
    else res.destroy();
  };
  app.use(last);
  const server = createServer(app);
  // A stream's events go out as soon as they are written (no Nagle delay between chunks).
  server.on('connection', (socket) => socket.setNoDelay(true));
  return server;
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
