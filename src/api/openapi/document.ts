/** The OpenAPI 3.1 document, generated with zod-openapi from the route table's zod schemas. */
import { z } from 'zod';
import {
  createDocument,
  type ZodOpenApiOperationObject,
  type ZodOpenApiPathsObject,
  type ZodOpenApiResponseObject,
  type ZodOpenApiResponsesObject,
} from 'zod-openapi';
import { errorResponse } from '../responses.js';
import type { Answer, Auth, Operation } from './operation.js';
import { ROUTES } from './routes.js';

/** Error statuses with the codes they carry (every one has the Error body). */
const ERRORS: Record<number, string> = {
  400: 'invalid input: `invalid_request` with `field` (or a malformed %-escape in the path), or `invalid_json`',
  401: '`unauthorized`: missing or invalid token',
  402: '`budget_exceeded`: the workspace is at its budget',
  403: '`forbidden` (this token may not), `quota_exceeded`, or `stale_generation`',
  404: "`not_found` (also another org's workspace)",
  409: '`conflict`, `not_online` (with Retry-After), `stale_generation`, `config_mismatch`, …',
  413: '`payload_too_large` or `file_too_large`',
  415: '`unsupported_media_type`: a body encoding or charset that cannot be read',
  429: '`rate_limited`, `too_many_streams` or `too_many_uploads`, with Retry-After',
  502: '`agent_unreachable`, `agent_error` or `backend_error`',
  503: '`temporal_unavailable`, `backend_unavailable` or `database_unavailable`, with Retry-After',
  504: '`agent_timeout`',
  507: "`insufficient_storage`: the workspace's disk is full; nothing was written",
};
const RETRY_AFTER = new Set([409, 429, 503]);

const SECURITY: Record<Auth, { description: string }> = {
  adminToken: { description: 'The admin token (ADMIN_TOKEN)' },
  orgKey: { description: "An org's API key (wo_org_…): sees only its org's workspaces" },
  workspaceToken: { description: "A workspace's token (wo_ws_…), minted per generation for its agent" },
  bootstrapToken: { description: 'A bootstrap token (wo_boot_…): only GET /v1/registry/bootstrap' },
};

/** The error statuses an operation documents: its own, plus those every such route can answer. */
export function errorStatuses(op: Operation): number[] {
  const out = new Set(op.errors ?? []);
  if (op.upgrade) return [...out];
  if (op.auth.length > 0) {
    out.add(401);
    out.add(429);
    // Authentication reads the database: with it away, `database_unavailable`.
    out.add(503);
  }
  if (op.body?.content['application/json']) {
    out.add(400);
    out.add(413);
    out.add(415);
  }
  // A query is validated; a path parameter can be a %-escape express cannot decode.
  if (op.params?.query || op.params?.path) out.add(400);
  return [...out].sort((a, b) => a - b);
}

function answer(a: Answer): ZodOpenApiResponseObject {
  return {
    description: a.description,
    ...(a.content
      ? { content: Object.fromEntries(Object.entries(a.content).map(([t, schema]) => [t, { schema }])) }
      : {}),
    ...(a.headers
      ? {
          headers: z.object(
            Object.fromEntries(
              Object.entries(a.headers).map(([h, description]) => [
                h,
                z.string().optional().meta({ description }),
              ]),
            ),
          ),
        }
      : {}),
  };
}

function operation(op: Operation): ZodOpenApiOperationObject {
  const responses: ZodOpenApiResponsesObject = {};
  // Keys are status codes; the library's key type is a template literal a number cannot be checked as.
  const put = (status: number | string, r: ZodOpenApiResponseObject) => {
    (responses as Record<string, ZodOpenApiResponseObject>)[String(status)] = r;
  };
  for (const [status, a] of Object.entries(op.responses)) put(status, answer(a));
  for (const status of errorStatuses(op)) {
    // An answer the operation documents itself (MCP's JSON-RPC errors) wins over the generic one.
    if (op.responses[status]) continue;
    put(
      status,
      answer({
        description: ERRORS[status] ?? 'error',
        content: { 'application/json': errorResponse },
        ...(RETRY_AFTER.has(status) ? { headers: { 'Retry-After': 'seconds to wait (when given)' } } : {}),
      }),
    );
  }
  // Anything else the Express app answers (500 `internal`, never a stack trace) has the same shape.
  if (!op.upgrade) {
    put(
      'default',
      answer({ description: 'any other error', content: { 'application/json': errorResponse } }),
    );
  }
  return {
    operationId: op.operationId,
    tags: [op.tag],
    summary: op.summary,
    ...(op.description ? { description: op.description } : {}),
    security: op.auth.map((a) => ({ [a]: [] })),
    ...(op.params ? { requestParams: op.params } : {}),
    ...(op.body
      ? {
          requestBody: {
            required: op.body.required ?? true,
            ...(op.body.description ? { description: op.body.description } : {}),
            content: Object.fromEntries(
              Object.entries(op.body.content).map(([t, schema]) => [t, { schema }]),
            ),
          },
        }
      : {}),
    responses,
  };
}

function build(routes: readonly Operation[]) {
  const paths: ZodOpenApiPathsObject = {};
  for (const op of routes) {
    const item = (paths[op.path] ??= {});
    if (item[op.method]) throw new Error(`two operations for ${op.method.toUpperCase()} ${op.path}`);
    item[op.method] = operation(op);
  }
  return createDocument(
    {
      openapi: '3.1.0',
      info: {
        title: 'workspace-orchestrator',
        version: '1',
        description:
          'Runs AI-agent workspaces on Docker and EC2; every lifecycle operation is a Temporal workflow. ' +
          'Errors are `{"error": {"code", "message", "field?"}}`.',
      },
      components: {
        securitySchemes: Object.fromEntries(
          Object.entries(SECURITY).map(([name, s]) => [name, { type: 'http', scheme: 'bearer', ...s }]),
        ),
      },
      paths,
    },
    // Only schemas with a meta id (Workspace, Error, …) become components; the rest stay inline.
    { reused: 'inline' },
  );
}

let cached: ReturnType<typeof build> | undefined;

/** The document (built once: the table is static). */
export function openApiDocument(): ReturnType<typeof build> {
  cached ??= build(ROUTES);
  return cached;
}
