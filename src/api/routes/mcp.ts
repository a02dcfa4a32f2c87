/**
 * MCP for workspaces (`/v1/mcp`): an agent's runtime reaches its peers through tools, with its
 * workspace token. Streamable HTTP on the official SDK, stateless (one server per request, bound to
 * the calling workspace): nothing to keep between calls, so any API replica answers any call.
 *
 * - `list_peers`: the org's other workspaces (id, name, role = template or runtime, status);
 * - `send_message`: one `message/send` to a peer through the A2A proxy's shared path, so the peer
 *   sees who called (`metadata.peer`) and both workspaces get their activity row;
 * - `chat_history`: the calling workspace's turns with a peer, from those rows.
 */
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { deliver } from '../../a2a/proxy.js';
import { listActivity } from '../../db/activity.js';
import { presentedAgentCredential } from '../../db/agent-credentials.js';
import { redactorFor } from '../../db/secrets.js';
import * as workspaces from '../../db/workspaces.js';
import type { WorkspaceRow } from '../../db/workspaces.js';
import { a2aLimits, checkLiveness, workspaceOfToken } from '../a2a-calls.js';
import { principalOf } from '../auth.js';
import { AppError } from '../../app/errors.js';
import { requireBudget } from '../../app/budget.js';
import type { ApiDeps } from '../deps.js';
import { HttpError, fromApp } from '../errors.js';
import { text, workspaceIdParam } from '../schemas.js';

/** How many peers `list_peers` names at most (an org's fleet, not a paging API). */
const MAX_PEERS = 500;
const MAX_TEXT = 100_000;
/** Longest a send_message may take, its peer's answer included (as a scheduled run). */
const SEND_TIMEOUT_MS = 10 * 60_000;

const result = (structured: Record<string, unknown>): CallToolResult => ({
  content: [{ type: 'text', text: JSON.stringify(structured) }],
  structuredContent: structured,
});
const toolError = (message: string): CallToolResult => ({
  content: [{ type: 'text', text: message }],
  isError: true,
});

// Storable text only (no NUL or lone surrogate): the peer is looked up in PostgreSQL.
const peerArg = text({ min: 1, max: 200 }).describe('the peer workspace: its id, or its name in this org');

export function mcpRouter(deps: ApiDeps): Router {
  const r = Router();

  async function callerOf(res: Response): Promise<WorkspaceRow> {
    const p = principalOf(res);
    if (p.kind !== 'workspace') throw new HttpError(403, 'forbidden', 'MCP needs a workspace token');
    // A deleted org's workspace tokens are already refused by authenticate (lookupWorkspaceToken).
    return workspaceOfToken(deps.db, p);
  }

  /**
   * A workspace of the caller's org other than the caller, by id or by name (names are not unique:
   * the newest live one of that name that is not the caller).
   */
  async function peerOf(caller: WorkspaceRow, ref: string): Promise<WorkspaceRow | null> {
    let w: WorkspaceRow | null = null;
    if (workspaceIdParam.safeParse(ref).success)
      w = await workspaces.getWorkspace(deps.db, ref, caller.orgId);
    if (!w) {
      const { rows } = await deps.db.query<{ id: string }>(
        `SELECT id FROM workspaces WHERE org_id = $1 AND name = $2 AND id <> $3 AND status <> 'deleted'
         ORDER BY created_at DESC LIMIT 1`,
        [caller.orgId, ref, caller.id],
      );
      if (rows[0]) w = await workspaces.getWorkspace(deps.db, rows[0].id, caller.orgId);
    }
    return w && w.id !== caller.id && w.status !== 'deleted' ? w : null;
  }

  function serverFor(caller: WorkspaceRow): McpServer {
    const server = new McpServer({ name: 'workspace-orchestrator', version: '1.0.0' });
    // The SDK answers a thrown error with its message: a database or decryption error must reach
    // the log, and the agent only "internal error" (as the HTTP API's 500s). Refusals meant for
    // clients (AppError, HttpError) keep their message.
    const guarded =
      <A extends unknown[]>(tool: string, fn: (...args: A) => Promise<CallToolResult>) =>
      async (...args: A): Promise<CallToolResult> => {
        try {
          return await fn(...args);
        } catch (err) {
          const known = err instanceof HttpError ? err : fromApp(err);
          if (known) return toolError(known.message);
          deps.log.error({ err, tool, workspaceId: caller.id }, 'MCP tool failed');
          return toolError('internal error');
        }
      };

    server.registerTool(
      'list_peers',
      {
        description: "The other workspaces of this workspace's org: id, name, role and status.",
        inputSchema: {},
        annotations: { readOnlyHint: true },
      },
      guarded('list_peers', async () => {
        // Live ones only, in SQL: an org's deleted rows stay, and newer ones would fill the page.
        const { rows } = await deps.db.query<{
          id: string;
          name: string;
          template: string | null;
          runtime: string;
          status: string;
        }>(
          `SELECT id, name, template, runtime, status FROM workspaces
           WHERE org_id = $1 AND id <> $2 AND status <> 'deleted'
           ORDER BY created_at DESC, id DESC LIMIT $3`,
          [caller.orgId, caller.id, MAX_PEERS],
        );
        const peers = rows.map((w) => ({
          id: w.id,
          name: w.name,
          role: w.template ?? w.runtime,
          status: w.status,
        }));
        return result({ peers });
      }),
    );

    server.registerTool(
      'send_message',
      {
        description:
          "Sends a text message to a peer workspace's agent (A2A message/send through the platform) " +
          'and returns its reply.',
        inputSchema: { peer: peerArg, text: text({ min: 1, max: MAX_TEXT }).describe('the message') },
      },
      guarded('send_message', async ({ peer, text }, extra) => {
        const target = await peerOf(caller, peer);
        if (!target) return toolError(`no peer workspace ${JSON.stringify(peer)} in this org`);
        try {
          await requireBudget(deps.db, target.id);
        } catch (err) {
          if (err instanceof AppError) return toolError(err.message);
          throw err;
        }
        const body = {
          jsonrpc: '2.0',
          id: randomUUID(),
          method: 'message/send',
          params: {
            message: { role: 'user', messageId: randomUUID(), parts: [{ kind: 'text', text }] },
          },
        };
        const credential = await presentedAgentCredential(
          deps.db,
          deps.secrets,
          target.id,
          target.generation,
        );
        const outcome = await deliver(deps, target, body, {
          credential,
          // Both ends' secrets: the caller's may be echoed back, the callee's may be in the answer.
          clean: await redactorFor(deps.db, deps.secrets, target.id, caller.id),
          limits: a2aLimits(deps),
          type: 'a2a',
          caller: { workspace: caller, publicUrl: deps.settings.publicUrl },
          onUnreachable: (endpoint) => checkLiveness(deps, target, endpoint, credential),
          // The MCP client gone (the SDK aborts a request whose HTTP response closed), or a peer
          // that keeps the call open for too long: the peer's request is cut, the row says so.
          signal: AbortSignal.any([
            extra.signal,
            AbortSignal.timeout(deps.settings.mcpSendTimeoutMs ?? SEND_TIMEOUT_MS),
          ]),
        });
        if (!outcome.ok) return toolError(outcome.error ?? `the peer answered ${outcome.status}`);
        return result({
          peer: { id: target.id, name: target.name },
          status: outcome.status,
          reply: outcome.reply,
        });
      }),
    );

    server.registerTool(
      'chat_history',
      {
        description: 'The prior A2A turns between this workspace and a peer, newest first.',
        inputSchema: {
          peer: peerArg,
          limit: z.number().int().min(1).max(500).optional().describe('how many turns (default 50)'),
        },
        annotations: { readOnlyHint: true },
      },
      guarded('chat_history', async ({ peer, limit }) => {
        const other = await peerOf(caller, peer);
        if (!other) return toolError(`no peer workspace ${JSON.stringify(peer)} in this org`);
        const page = await listActivity(deps.db, {
          workspaceId: caller.id,
          peerId: other.id,
          type: 'a2a',
          limit: limit ?? 50,
        });
        const turns = page.items.map((a) => ({
          ts: a.ts,
          direction: a.direction,
          method: a.method,
          status: Number(a.status),
          request: a.requestText ?? '',
          response: a.responseText ?? '',
        }));
        return result({ peer: { id: other.id, name: other.name }, turns });
      }),
    );
    return server;
  }

  r.post('/', async (req, res) => {
    const caller = await callerOf(res);
    // One message per request: a batch (the SDK takes up to 100) would let one request, counted
    // once by the per-key rate limit, fan out into that many concurrent tool calls (A2A sends).
    if (Array.isArray(req.body)) {
      res.status(400).json({
        jsonrpc: '2.0',
        error: { code: -32600, message: 'Invalid Request: JSON-RPC batches are not supported' },
        id: null,
      });
      return;
    }
    const server = serverFor(caller);
    // Stateless, JSON answers: each call is one request and one response.
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });

  // Stateless: no stream of server-initiated messages to open (GET), no session to end (DELETE).
  const postOnly = async (_req: Request, res: Response) => {
    await callerOf(res);
    res.set('allow', 'POST');
    throw new HttpError(405, 'method_not_allowed', 'this MCP endpoint is stateless: POST only');
  };
  r.get('/', postOnly);
  r.delete('/', postOnly);
  return r;
}
