/**
 * Response shapes: what the routes (and present.ts) send, as zod schemas. /openapi.json documents
 * them and test/support/openapi-check.ts validates real answers against them, so a field a route
 * adds without saying so here fails the tests. Strict objects for that reason.
 */
import { z } from 'zod';
import { WORKSPACE_STATUSES } from '../workflows/messages.js';
import { SWEEP_NAMES } from '../worker/schedules.js';
import { workspaceSchema } from './schemas.js';

const timestamp = z.string().meta({ format: 'date-time' });
const backend = z.enum(['docker', 'ec2']);
const status = z.enum(WORKSPACE_STATUSES);

/** Every error answer: `{error: {code, message, field?}}` (field: the offending input of a 400). */
export const errorResponse = z
  .strictObject({
    error: z.strictObject({
      code: z.string().meta({ description: 'machine-readable, e.g. invalid_request, not_found' }),
      message: z.string(),
      field: z.string().optional().meta({ description: 'the offending field (400s)' }),
    }),
  })
  .meta({ id: 'Error' });

export const workspaceResponse = workspaceSchema.meta({ id: 'Workspace' });

// ---- Operations

export const healthResponse = z.strictObject({ ok: z.literal(true) });
export const readyResponse = z.strictObject({
  ok: z.boolean(),
  checks: z.record(z.string(), z.string()).meta({ description: '"ok", or why the part failed' }),
});

// ---- Orgs and secrets

export const orgResponse = z.strictObject({ id: z.string(), name: z.string(), createdAt: timestamp }).meta({
  id: 'Org',
});
export const orgCreatedResponse = z.strictObject({
  id: z.string(),
  name: z.string(),
  apiKey: z.string().meta({ description: 'shown once' }),
});
export const orgListResponse = z.strictObject({
  items: z.array(orgResponse),
  nextCursor: z.string().nullable(),
});
export const orgDeleteResponse = z.strictObject({
  accepted: z.literal(true),
  id: z.string(),
  workflowId: z.string(),
});

export const secretKeysResponse = z.strictObject({
  items: z.array(z.strictObject({ key: z.string(), updatedAt: timestamp })),
});

// ---- Sweeps

/** A sweep's result: its own figures (api-additions.md › Added codes); counts in every kind. */
export const sweepResultResponse = z
  .looseObject({
    startedAt: timestamp,
    finishedAt: timestamp,
    counts: z.record(z.string(), z.number()),
  })
  .meta({ id: 'SweepResult' });

export const sweepListResponse = z.strictObject({
  items: z.array(
    z.strictObject({
      name: z.enum(SWEEP_NAMES),
      scheduleId: z.string(),
      intervalMs: z.number().nullable(),
      paused: z.boolean(),
      nextRunAt: timestamp.nullable(),
      lastRun: z
        .strictObject({
          workflowId: z.string(),
          runId: z.string(),
          startedAt: timestamp,
          status: z.string(),
          result: sweepResultResponse.nullable(),
        })
        .nullable(),
    }),
  ),
});

// ---- Catalogs

export const templateListResponse = z.strictObject({
  items: z.array(
    z.strictObject({
      name: z.string(),
      runtime: z.string(),
      description: z.string().optional(),
      plugins: z.array(z.string()),
    }),
  ),
});

export const pluginCatalogResponse = z.strictObject({
  items: z.array(
    z.strictObject({
      name: z.string(),
      version: z.string(),
      description: z.string().optional(),
      source: z.string().meta({ description: 'local://<name>' }),
      sha256: z.string(),
    }),
  ),
});

export const workspacePluginResponse = z
  .strictObject({
    name: z.string(),
    version: z.string(),
    status: z.enum(['pending', 'installing', 'installed', 'uninstalling', 'failed']),
    installedAt: timestamp.optional(),
    reason: z.string().optional().meta({ description: 'why it failed' }),
    sha256: z.string(),
    source: z.string().meta({ description: 'local://<name> or upload' }),
  })
  .meta({ id: 'WorkspacePlugin' });
export const workspacePluginListResponse = z.strictObject({ items: z.array(workspacePluginResponse) });

// ---- Workspaces

export const workspaceCreatedResponse = z.strictObject({
  id: z.string(),
  status: z.literal('provisioning'),
  workflowId: z.string(),
});
export const workspaceListResponse = z.strictObject({
  items: z.array(workspaceResponse),
  nextCursor: z.string().nullable(),
});
export const configureResponse = z.strictObject({
  generation: z.number().int().meta({ description: 'the generation that will run this config' }),
  configHash: z.string(),
});
/** A lifecycle request the entity accepted (restart, stop, start, delete). */
export const acceptedResponse = z.strictObject({ accepted: z.literal(true), status });

/** One `data:` line of `GET …/events` (the SSE `id:` is the transition's id). */
export const transitionEventSchema = z
  .strictObject({
    status,
    phase: z.string().nullable(),
    ts: timestamp,
    generation: z.number().int(),
    message: z.string().optional(),
  })
  .meta({ id: 'TransitionEvent' });

export const bootLogResponse = z.strictObject({
  backend,
  events: z.array(
    z.strictObject({
      ts: timestamp,
      phase: z.string(),
      generation: z.number().int(),
      message: z.string().optional(),
      durationMs: z.number().nullable(),
    }),
  ),
  console: z.string(),
  consoleGeneration: z.number().int(),
  consoleTruncated: z.boolean(),
});

// ---- Data plane

export const fileListResponse = z.strictObject({
  items: z.array(
    z.strictObject({
      path: z.string(),
      type: z.enum(['file', 'dir']),
      size: z.number(),
      mtime: timestamp,
    }),
  ),
  truncated: z.boolean(),
});

/** The agent's card as it serves it, with `url` pointing at this proxy. */
export const agentCardResponse = z.looseObject({ url: z.string() }).meta({ id: 'AgentCard' });

/** A JSON-RPC 2.0 answer of the agent, passed through. */
export const jsonRpcResponse = z.looseObject({
  jsonrpc: z.literal('2.0'),
  id: z.union([z.string(), z.number(), z.null()]).optional(),
  result: z.unknown().optional(),
  error: z.unknown().optional(),
});

export const activityListResponse = z.strictObject({
  items: z.array(
    z.strictObject({
      id: z.string(),
      ts: timestamp,
      type: z.string(),
      peerId: z.string().optional(),
      direction: z.string().optional(),
      method: z.string().optional(),
      summary: z.string(),
      status: z
        .union([z.number().int(), z.string()])
        .meta({ description: 'HTTP status of a2a/schedule rows' }),
      durationMs: z.number().optional(),
    }),
  ),
  nextBeforeTs: timestamp.nullable(),
});

export const chatHistoryResponse = z.strictObject({
  items: z.array(
    z.strictObject({
      id: z.string(),
      ts: timestamp,
      peerId: z.string().nullable(),
      direction: z.string().nullable(),
      method: z.string().nullable(),
      status: z.number().int(),
      durationMs: z.number().nullable(),
      request: z.string(),
      response: z.string(),
    }),
  ),
  nextBeforeTs: timestamp.nullable(),
});

export const memoryResponse = z
  .strictObject({ id: z.string(), content: z.string(), scope: z.string(), createdAt: timestamp })
  .meta({ id: 'Memory' });
export const memoryListResponse = z.strictObject({
  items: z.array(memoryResponse),
  nextCursor: z.string().nullable(),
});

export const budgetResponse = z.strictObject({
  limitCents: z.number().int().nullable(),
  spentCents: z.number().int(),
});

export const scheduleResponse = z
  .strictObject({
    id: z.string(),
    workspaceId: z.string(),
    cron: z.string(),
    timezone: z.string(),
    prompt: z.string(),
    enabled: z.boolean(),
    createdAt: timestamp,
    updatedAt: timestamp,
    lastRun: z
      .strictObject({
        at: timestamp,
        status: z.enum(['ok', 'failed', 'skipped']),
        error: z.string().optional(),
        durationMs: z.number().optional(),
      })
      .nullable(),
    nextRunAt: timestamp.nullable().optional().meta({ description: 'list only; null when paused' }),
    mirror: z.literal('unknown').optional().meta({ description: 'list only: Temporal could not be asked' }),
  })
  .meta({ id: 'Schedule' });
export const scheduleListResponse = z.strictObject({ items: z.array(scheduleResponse) });
export const scheduleRunResponse = z.strictObject({ id: z.string(), triggered: z.literal(true) });

// ---- Registry (the agent)

const fileBundle = z.strictObject({ path: z.string(), contentBase64: z.string() });

export const bootstrapResponse = z.strictObject({
  workspaceId: z.string(),
  orgId: z.string(),
  name: z.string(),
  runtime: z.string(),
  generation: z.number().int(),
  configHash: z.string(),
  config: z.record(z.string(), z.unknown()),
  configYaml: z.string(),
  files: z.array(fileBundle),
  plugins: z.array(
    z.strictObject({
      name: z.string(),
      version: z.string(),
      installId: z.string(),
      files: z.array(fileBundle),
    }),
  ),
  secrets: z.record(z.string(), z.string()),
  workspaceToken: z.string(),
  agentCredential: z.string(),
  heartbeatIntervalMs: z.number().int(),
});
export const registerResponse = z.strictObject({
  ok: z.literal(true),
  generation: z.number().int(),
  configHash: z.string(),
});
export const okResponse = z.strictObject({ ok: z.literal(true) });

// ---- Console

export const consoleConfigResponse = z.strictObject({
  temporalUiUrl: z.string().nullable(),
  temporalNamespace: z.string().nullable(),
  workflowIdTemplate: z.string().meta({ description: 'a workflow id with {id} for the workspace id' }),
});
