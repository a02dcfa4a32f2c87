/**
 * Request and response shapes, defined once; the routes parse with these and /openapi.json is
 * generated from them.
 */
import { z } from 'zod';
import { WORKSPACE_STATUSES } from '../workflows/messages.js';

export const SECRET_KEY_PATTERN = /^[A-Z_][A-Z0-9_]{0,127}$/;
const MAX_CONFIG_BYTES = 64 * 1024;

const configObject = z
  .record(z.string(), z.unknown())
  .refine(
    (c) => JSON.stringify(c).length <= MAX_CONFIG_BYTES,
    `config must be at most ${MAX_CONFIG_BYTES} bytes`,
  );

export const createOrgBody = z.object({ name: z.string().trim().min(1).max(100) });

export const createWorkspaceBody = z.object({
  name: z.string().trim().min(1, 'name is required').max(100, 'name must be at most 100 characters'),
  backend: z.enum(['docker', 'ec2'], { message: 'backend must be "docker" or "ec2"' }),
  template: z.string().min(1).max(100).optional(),
  runtime: z.string().min(1).max(64).optional(),
  config: configObject.optional(),
  secrets: z
    .record(
      z.string().regex(SECRET_KEY_PATTERN, 'secret keys must match [A-Z_][A-Z0-9_]{0,127}'),
      z.string().max(65536),
    )
    .optional(),
  budgetLimitCents: z.number().int().min(0).optional(),
  initialMemories: z
    .array(z.object({ content: z.string().min(1).max(10000), scope: z.string().min(1).max(32).optional() }))
    .max(100)
    .optional(),
  parentId: z.string().min(1).max(64).optional(),
  /** Admin only: the org the workspace belongs to (an org key always creates in its own org). */
  orgId: z.string().min(1).max(64).optional(),
});

export const configureBody = z.object({
  runtime: z.string().min(1).max(64).optional(),
  config: configObject.optional(),
  restart: z.boolean().optional(),
});

export const listQuery = z.object({
  status: z.enum(WORKSPACE_STATUSES).optional(),
  backend: z.enum(['docker', 'ec2']).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(200).optional(),
});

export const workspaceIdParam = z.string().regex(/^[a-f0-9]{16}$/);

export const workspaceSchema = z.object({
  id: z.string(),
  orgId: z.string(),
  name: z.string(),
  backend: z.enum(['docker', 'ec2']),
  runtime: z.string(),
  status: z.enum(WORKSPACE_STATUSES),
  phase: z.string().optional(),
  generation: z.number().int(),
  configHash: z.string(),
  instanceId: z.string().optional(),
  endpoint: z.string().optional(),
  lastHeartbeatAt: z.string().optional(),
  error: z.string().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type WorkspaceJson = z.infer<typeof workspaceSchema>;

// Registry (the agent inside a workspace calls these).
export const registerBody = z.object({
  workspaceId: z.string().min(1),
  generation: z.number().int().min(1),
  configHash: z.string().min(1),
  agentCard: z.unknown().optional(),
});

export const heartbeatBody = z.object({
  workspaceId: z.string().min(1),
  generation: z.number().int().min(1),
  configHash: z.string().min(1),
  activeTasks: z.number().int().min(0).default(0),
  errorRate: z.number().min(0).default(0),
  uptimeSeconds: z.number().min(0).default(0),
  spentCents: z.number().int().min(0).optional(),
  runtimeState: z.string().max(64).default('ok'),
});

/** The boot phases the reference agent reports, in order; `platform-health-ok` proves readiness. */
export const BOOT_PHASES = [
  'boot',
  'config-materialized',
  'plugins-installed',
  'agent-started',
  'platform-health-ok',
] as const;
export const bootEventBody = z.object({
  workspaceId: z.string().min(1),
  generation: z.number().int().min(1),
  phase: z.string().min(1).max(64),
  message: z.string().max(4000).optional(),
  ts: z.iso.datetime({ offset: true }).optional(),
});
