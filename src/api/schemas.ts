/**
 * Request and response shapes, defined once; the routes parse with these and /openapi.json is
 * generated from them.
 */
import { z } from 'zod';
import { WORKSPACE_STATUSES } from '../workflows/messages.js';

// ---- Edge primitives: whatever passes these can reach PostgreSQL (text, int4, timestamptz, jsonb)
// without a data error. Every route builds its schemas from them.

/** PostgreSQL `integer` (int4) range; `bigint` columns are bounded by JS's safe integers. */
export const INT4_MAX = 2_147_483_647;
export const INT4_MIN = -2_147_483_648;

// NUL cannot be stored in text or jsonb; an unpaired UTF-16 surrogate is not valid UTF-8 (jsonb
// refuses it, text silently mangles it).
// eslint-disable-next-line no-control-regex -- NUL is exactly what this refuses
const BAD_TEXT = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
export const isStorableText = (s: string): boolean => !BAD_TEXT.test(s);
const STORABLE_MESSAGE = 'must not contain NUL characters or unpaired surrogates';

/** A string that PostgreSQL can store: no NUL, no unpaired surrogate, at most `max` characters. */
export function text(opts: { min?: number; max: number; trim?: boolean }) {
  const base = opts.trim ? z.string().trim() : z.string();
  return base
    .min(opts.min ?? 0)
    .max(opts.max)
    .refine(isStorableText, STORABLE_MESSAGE);
}

/** An integer that fits the int4 column it is stored in. */
export const int4 = (min = 0, max = INT4_MAX) => z.number().int().min(min).max(max);

/** A query-string integer (`?limit=10`): digits only, in range. */
export const queryInt = (min: number, max: number) => {
  // One message for every way out of range (-1, 1.5, 1e9, text): the range itself.
  const message = `must be a whole number from ${min} to ${max}`;
  return z
    .string()
    .regex(/^\d{1,10}$/, message)
    .transform(Number)
    .pipe(z.number().int().min(min, message).max(max, message));
};

/** Lower-case hex, as newId() mints them. */
export const ID_PATTERN = /^[a-f0-9]{16}$/;
export const idSchema = z.string().regex(ID_PATTERN, 'must be an id (16 lower-case hex digits)');

const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|([+-])(\d{2}):?(\d{2}))$/;

/**
 * True when `s` is an ISO-8601 timestamp with a zone that names an instant that exists: the date and
 * time fields survive a round trip through Date (2024-02-30 and 25:00 do not), the year is 1..9999
 * and the offset is one PostgreSQL accepts.
 */
export function isRealTimestamp(s: string): boolean {
  const m = ISO.exec(s);
  if (!m) return false;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (y < 1) return false;
  const t = new Date(Date.UTC(2000, mo - 1, d, h, mi, sec));
  t.setUTCFullYear(y);
  if (
    t.getUTCFullYear() !== y ||
    t.getUTCMonth() !== mo - 1 ||
    t.getUTCDate() !== d ||
    t.getUTCHours() !== h ||
    t.getUTCMinutes() !== mi ||
    t.getUTCSeconds() !== sec
  )
    return false;
  if (m[8] !== 'Z' && (Number(m[10]) > 15 || Number(m[11]) > 59)) return false;
  return true;
}

export const isoTimestamp = z
  .string()
  .max(40)
  .refine(isRealTimestamp, 'must be an existing ISO-8601 timestamp with a time zone');

const MAX_JSON_DEPTH = 32;

/** The first problem that would make jsonb refuse a value (NUL, lone surrogate, depth), or null. */
export function jsonProblem(value: unknown, depth = 0): string | null {
  if (depth > MAX_JSON_DEPTH) return `nested deeper than ${MAX_JSON_DEPTH} levels`;
  if (typeof value === 'string') return isStorableText(value) ? null : STORABLE_MESSAGE;
  if (typeof value === 'number') return Number.isFinite(value) ? null : 'numbers must be finite';
  if (Array.isArray(value)) {
    for (const v of value) {
      const p = jsonProblem(v, depth + 1);
      if (p) return p;
    }
    return null;
  }
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (!isStorableText(k)) return `keys ${STORABLE_MESSAGE}`;
      const p = jsonProblem(v, depth + 1);
      if (p) return p;
    }
  }
  return null;
}

/** Arbitrary JSON that jsonb will store. */
export const storableJson = z.unknown().superRefine((v, ctx) => {
  const p = jsonProblem(v);
  if (p) ctx.addIssue({ code: 'custom', message: p });
});

export const SECRET_KEY_PATTERN = /^[A-Z_][A-Z0-9_]{0,127}$/;
const MAX_CONFIG_BYTES = 64 * 1024;

const configObject = z.record(z.string(), z.unknown()).superRefine((c, ctx) => {
  // The size is measured only once the depth is known to be bounded: JSON.stringify recurses, and a
  // value nested thousands deep would overflow the stack (a 500 for the caller's error).
  const p = jsonProblem(c);
  if (p) ctx.addIssue({ code: 'custom', message: p });
  else if (JSON.stringify(c).length > MAX_CONFIG_BYTES) {
    ctx.addIssue({ code: 'custom', message: `config must be at most ${MAX_CONFIG_BYTES} bytes` });
  }
});

export const createOrgBody = z.strictObject({ name: text({ min: 1, max: 100, trim: true }) });

export const createWorkspaceBody = z.strictObject({
  name: z
    .string()
    .trim()
    .min(1, 'name is required')
    .max(100, 'name must be at most 100 characters')
    .refine(isStorableText, STORABLE_MESSAGE),
  backend: z.enum(['docker', 'ec2'], { message: 'backend must be "docker" or "ec2"' }),
  template: text({ min: 1, max: 100 }).optional(),
  runtime: text({ min: 1, max: 64 }).optional(),
  config: configObject.optional(),
  secrets: z
    .record(
      z.string().regex(SECRET_KEY_PATTERN, 'secret keys must match [A-Z_][A-Z0-9_]{0,127}'),
      text({ max: 65536 }),
    )
    .optional(),
  budgetLimitCents: int4().optional(),
  /** `never`: an offline or degraded workspace waits for the user instead of restarting itself. */
  restartPolicy: z.enum(['always', 'never']).optional(),
  initialMemories: z
    .array(
      z.strictObject({ content: text({ min: 1, max: 10000 }), scope: text({ min: 1, max: 32 }).optional() }),
    )
    .max(100)
    .optional(),
  parentId: idSchema.optional(),
  /** Admin only: the org the workspace belongs to (an org key always creates in its own org). */
  orgId: idSchema.optional(),
});

export const configureBody = z.strictObject({
  runtime: text({ min: 1, max: 64 }).optional(),
  config: configObject.optional(),
  restart: z.boolean().optional(),
});

/** PATCH /v1/workspaces/:id: settings of the workspace itself (null: back to the template/default). */
export const patchWorkspaceBody = z.strictObject({
  restartPolicy: z
    .enum(['always', 'never'], { message: 'restartPolicy must be "always", "never" or null' })
    .nullable()
    .optional(),
});

export const listQuery = z.object({
  status: z.enum(WORKSPACE_STATUSES).optional(),
  backend: z.enum(['docker', 'ec2']).optional(),
  limit: queryInt(1, 200).default(50),
  cursor: z.string().max(200).optional(),
});

/**
 * GET /v1/orgs: newest first, paged as workspaces are when `limit` is given; without it every org
 * (api.md's `{items}`: a client written against it is not handed a silent first page).
 */
export const orgListQuery = z.object({
  limit: queryInt(1, 200).optional(),
  cursor: z.string().max(200).optional(),
});

export const workspaceIdParam = idSchema;

/** GET /v1/workspaces/:id/boot-log: one generation's events and console (default: all events, current console). */
export const bootLogQuery = z.object({
  generation: queryInt(1, INT4_MAX).optional(),
  /** `false`: the events alone; the backend's console (docker logs, EC2 GetConsoleOutput) is not read. */
  console: z.enum(['true', 'false']).optional(),
});

export const workspaceSchema = z.strictObject({
  id: z.string(),
  orgId: z.string(),
  name: z.string(),
  backend: z.enum(['docker', 'ec2']),
  runtime: z.string(),
  status: z.enum(WORKSPACE_STATUSES),
  phase: z.string().optional(),
  generation: z.number().int(),
  /** The last saved config's hash. */
  configHash: z.string(),
  /**
   * The config hash the current generation booted with: differs from `configHash` after a save
   * without restart, until a restart applies it. Absent before the first generation is prepared.
   */
  bootConfigHash: z.string().optional(),
  instanceId: z.string().optional(),
  endpoint: z.string().optional(),
  lastHeartbeatAt: z.string().optional(),
  /** Automatic restarts in the current streak (the restart policy; reset after a healthy period). */
  restartCount: z.number().int().optional(),
  lastRestartReason: z.string().optional(),
  /** The restart policy in force: the workspace's own, else its template's, else the default. */
  restartPolicy: z.enum(['always', 'never']).optional(),
  /** Why it is `failed`, or why a stop is still being tried again (`stopping`). */
  error: z.string().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type WorkspaceJson = z.infer<typeof workspaceSchema>;

// Registry (the agent inside a workspace calls these).
export const registerBody = z.object({
  workspaceId: idSchema,
  generation: int4(1),
  configHash: text({ min: 1, max: 128 }),
  agentCard: storableJson.optional(),
});

export const heartbeatBody = z.object({
  workspaceId: idSchema,
  generation: int4(1),
  configHash: text({ min: 1, max: 128 }),
  activeTasks: int4().default(0),
  errorRate: z.number().min(0).max(1e9).default(0),
  uptimeSeconds: z.number().min(0).max(1e12).default(0),
  spentCents: int4().optional(),
  runtimeState: text({ max: 64 }).default('ok'),
  /** The plugin folders the agent sees (`/configs/plugins/<name>`), with their install ids. */
  plugins: z
    .array(z.object({ name: text({ min: 1, max: 64 }), installId: text({ max: 64 }).optional() }))
    .max(200)
    .optional(),
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
  workspaceId: idSchema,
  generation: int4(1),
  phase: text({ min: 1, max: 64 }),
  message: text({ max: 4000 }).optional(),
  ts: isoTimestamp.optional(),
});

// Files (`/v1/workspaces/:id/files…`): the query the files routes read (root, path, depth).
export const FILE_ROOTS = ['/configs', '/workspace'] as const;
export const FILE_LIST_MAX_DEPTH = 5;
// The files routes parse their query with these; a repeated parameter (an array) is refused.
const fileRoot = z.enum(FILE_ROOTS, { error: `must be one of ${FILE_ROOTS.join(', ')}` });
const once = z.string({ error: 'must be given once, as a string' });
const depthError = `must be an integer from 1 to ${FILE_LIST_MAX_DEPTH}`;
export const fileListQuery = z.object({
  root: fileRoot,
  path: once.optional(),
  depth: once
    .regex(/^\d{1,10}$/, depthError)
    .transform(Number)
    .pipe(z.number().int().min(1, depthError).max(FILE_LIST_MAX_DEPTH, depthError))
    .default(1),
});
export const fileContentQuery = z.object({
  root: fileRoot,
  path: once.min(1, 'required'),
});
