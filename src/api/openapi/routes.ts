/**
 * The route table: one entry per operation the API serves (src/api/app.ts, routes/ops.ts, and the
 * terminal WebSocket of terminal.ts). Request schemas are the ones the routes parse with; response
 * schemas are src/api/responses.ts. test/unit/openapi.test.ts walks the Express router and fails when
 * this table and the mounted routes differ.
 */
import { z } from 'zod';
import { PLUGIN_NAME } from '../../plugins/schema.js';
import { SWEEP_NAMES } from '../../worker/schedules.js';
import * as res from '../responses.js';
import { activityQuery, chatQuery } from '../routes/activity.js';
import { budgetBody } from '../routes/budget.js';
import { memoryBody, memoryListQuery } from '../routes/memories.js';
import { installPluginBody } from '../routes/plugins.js';
import { createScheduleBody, patchScheduleBody } from '../routes/schedules.js';
import { secretBody } from '../routes/secrets.js';
import {
  SECRET_KEY_PATTERN,
  bootEventBody,
  bootLogQuery,
  configureBody,
  createOrgBody,
  createWorkspaceBody,
  fileContentQuery,
  fileListQuery,
  heartbeatBody,
  idSchema,
  listQuery,
  orgListQuery,
  patchWorkspaceBody,
  registerBody,
  workspaceIdParam,
} from '../schemas.js';
import type { Answer, Auth, Operation } from './operation.js';

const json = (schema: z.ZodType) => ({ 'application/json': schema });
const ok = (description: string, schema: z.ZodType): Answer => ({ description, content: json(schema) });
const noContent: Answer = { description: 'done; no body' };
const jsonBody = (schema: z.ZodType, description?: string) => ({
  content: json(schema),
  required: true,
  ...(description ? { description } : {}),
});

// Who may call what (api.md › Auth).
const ADMIN: readonly Auth[] = ['adminToken'];
const MANAGE: readonly Auth[] = ['orgKey', 'adminToken'];
const MANAGE_OR_SELF: readonly Auth[] = ['orgKey', 'adminToken', 'workspaceToken'];
const AGENT: readonly Auth[] = ['workspaceToken'];

const workspace = z.object({ id: workspaceIdParam.meta({ description: 'workspace id' }) });
const org = z.object({ id: idSchema.meta({ description: 'org id' }) });
const secretKey = z.string().regex(SECRET_KEY_PATTERN).meta({ description: '[A-Z_][A-Z0-9_]{0,127}' });
const binary = z.string().meta({ format: 'binary' });
const eventStream = z.string().meta({
  description: 'Server-sent events; each `data:` line is one TransitionEvent (JSON), `id:` its id',
});

const tag = {
  ops: 'Operations',
  orgs: 'Orgs',
  sweeps: 'Sweeps',
  catalog: 'Catalogs',
  workspaces: 'Workspaces',
  files: 'Files',
  a2a: 'A2A',
  activity: 'Activity',
  secrets: 'Secrets',
  memories: 'Memories',
  budget: 'Budget',
  schedules: 'Schedules',
  plugins: 'Plugins',
  registry: 'Registry',
  mcp: 'MCP',
  console: 'Console',
};

const operationsRoutes: Operation[] = [
  {
    method: 'get',
    path: '/healthz',
    operationId: 'health',
    tag: tag.ops,
    summary: 'The process is up',
    auth: [],
    responses: { 200: ok('up', res.healthResponse) },
  },
  {
    method: 'get',
    path: '/readyz',
    operationId: 'ready',
    tag: tag.ops,
    summary: 'Database, Temporal, a polling worker and each enabled backend answer',
    auth: [],
    responses: {
      200: ok('ready', res.readyResponse),
      503: ok('not ready: checks names the part that failed', res.readyResponse),
    },
  },
  {
    method: 'get',
    path: '/metrics',
    operationId: 'metrics',
    tag: tag.ops,
    summary: 'Prometheus metrics',
    auth: [],
    responses: {
      200: { description: 'text exposition format', content: { 'text/plain': z.string() } },
    },
  },
  {
    method: 'get',
    path: '/openapi.json',
    operationId: 'openApiDocument',
    tag: tag.ops,
    summary: 'This document (OpenAPI 3.1)',
    auth: [],
    responses: { 200: ok('the document', z.record(z.string(), z.unknown())) },
  },
  {
    method: 'get',
    path: '/docs',
    operationId: 'apiDocs',
    tag: tag.ops,
    summary: 'Swagger UI for this document',
    auth: [],
    responses: { 200: { description: 'HTML page', content: { 'text/html': z.string() } } },
  },
];

const orgRoutes: Operation[] = [
  {
    method: 'post',
    path: '/v1/orgs',
    operationId: 'createOrg',
    tag: tag.orgs,
    summary: 'Create an org and its API key',
    auth: ADMIN,
    body: jsonBody(createOrgBody),
    responses: { 201: ok('created; the key is shown only here', res.orgCreatedResponse) },
    errors: [403],
  },
  {
    method: 'get',
    path: '/v1/orgs',
    operationId: 'listOrgs',
    tag: tag.orgs,
    summary: 'Orgs that are not deleted, newest first, paged',
    auth: ADMIN,
    params: { query: orgListQuery },
    responses: { 200: ok('a page; nextCursor null on the last', res.orgListResponse) },
    errors: [400, 403],
  },
  {
    method: 'get',
    path: '/v1/orgs/{id}',
    operationId: 'getOrg',
    tag: tag.orgs,
    summary: 'One org (404 once deleted)',
    auth: ADMIN,
    params: { path: org },
    responses: { 200: ok('the org', res.orgResponse) },
    errors: [403, 404],
  },
  {
    method: 'delete',
    path: '/v1/orgs/{id}',
    operationId: 'deleteOrg',
    tag: tag.orgs,
    summary: 'Revoke its keys and delete its workspaces (cascade workflow)',
    description: 'Repeating it answers 202 again and restarts the cascade.',
    auth: ADMIN,
    params: { path: org },
    responses: { 202: ok('keys revoked, cascade started', res.orgDeleteResponse) },
    errors: [403, 404, 503],
  },
  {
    method: 'get',
    path: '/v1/orgs/{id}/secrets',
    operationId: 'listOrgSecrets',
    tag: tag.secrets,
    summary: "The org's default secret keys (never values)",
    auth: ADMIN,
    params: { path: org },
    responses: { 200: ok('keys', res.secretKeysResponse) },
    errors: [403, 404],
  },
  {
    method: 'put',
    path: '/v1/orgs/{id}/secrets/{key}',
    operationId: 'putOrgSecret',
    tag: tag.secrets,
    summary: 'Store an org-wide default secret (a workspace secret of the same key wins)',
    auth: ADMIN,
    params: { path: org.extend({ key: secretKey }) },
    body: jsonBody(secretBody),
    responses: { 204: noContent },
    errors: [403, 404],
  },
  {
    method: 'delete',
    path: '/v1/orgs/{id}/secrets/{key}',
    operationId: 'deleteOrgSecret',
    tag: tag.secrets,
    summary: 'Delete an org-wide default secret',
    auth: ADMIN,
    params: { path: org.extend({ key: secretKey }) },
    responses: { 204: noContent },
    errors: [400, 403, 404],
  },
  {
    method: 'get',
    path: '/v1/admin/sweeps',
    operationId: 'listSweeps',
    tag: tag.sweeps,
    summary: 'The sweep Schedules with their interval and last result',
    auth: ADMIN,
    responses: { 200: ok('sweeps', res.sweepListResponse) },
    errors: [403, 503],
  },
  {
    method: 'post',
    path: '/v1/admin/sweeps/{name}/run',
    operationId: 'runSweep',
    tag: tag.sweeps,
    summary: 'Run one sweep now and answer its result',
    auth: ADMIN,
    params: { path: z.object({ name: z.enum(SWEEP_NAMES) }) },
    responses: { 200: ok("the sweep's result (counts and ids)", res.sweepResultResponse) },
    errors: [403, 404, 503],
  },
  {
    method: 'get',
    path: '/v1/templates',
    operationId: 'listTemplates',
    tag: tag.catalog,
    summary: 'The template catalog',
    auth: MANAGE,
    responses: { 200: ok('templates', res.templateListResponse) },
    errors: [403],
  },
  {
    method: 'get',
    path: '/v1/plugins',
    operationId: 'listPluginCatalog',
    tag: tag.catalog,
    summary: 'The plugin catalog (local://<name> sources)',
    auth: MANAGE,
    responses: { 200: ok('plugins', res.pluginCatalogResponse) },
    errors: [403],
  },
];

const W = '/v1/workspaces/{id}';

const lifecycle = (['restart', 'stop', 'start'] as const).map((name): Operation => ({
  method: 'post',
  path: `${W}/${name}`,
  operationId: `${name}Workspace`,
  tag: tag.workspaces,
  summary: `${name[0]!.toUpperCase()}${name.slice(1)} the workspace (through its workflow)`,
  description:
    name === 'stop'
      ? 'Always accepted when the workspace exists.'
      : 'Accepted on offline, degraded, failed and stopped workspaces; 402 over budget (nothing changes).',
  auth: MANAGE,
  params: { path: workspace },
  responses: { 202: ok('accepted', res.acceptedResponse) },
  errors: name === 'stop' ? [403, 404, 409, 503] : [402, 403, 404, 409, 503],
}));

const workspaceRoutes: Operation[] = [
  {
    method: 'post',
    path: '/v1/workspaces',
    operationId: 'createWorkspace',
    tag: tag.workspaces,
    summary: 'Create a workspace (provisioned by its workflow)',
    auth: MANAGE,
    body: jsonBody(createWorkspaceBody),
    responses: { 202: ok('accepted; follow GET …/events or poll GET …', res.workspaceCreatedResponse) },
    errors: [403, 503],
  },
  {
    method: 'get',
    path: '/v1/workspaces',
    operationId: 'listWorkspaces',
    tag: tag.workspaces,
    summary: "The caller's workspaces, paged",
    auth: MANAGE,
    params: { query: listQuery },
    responses: { 200: ok('a page; nextCursor null on the last', res.workspaceListResponse) },
    errors: [400, 403],
  },
  {
    method: 'get',
    path: W,
    operationId: 'getWorkspace',
    tag: tag.workspaces,
    summary: 'One workspace',
    auth: MANAGE,
    params: { path: workspace },
    responses: { 200: ok('the workspace', res.workspaceResponse) },
    errors: [403, 404],
  },
  {
    method: 'patch',
    path: W,
    operationId: 'patchWorkspace',
    tag: tag.workspaces,
    summary: "Set the workspace's own restart policy (null: back to the default)",
    auth: MANAGE,
    params: { path: workspace },
    body: jsonBody(patchWorkspaceBody),
    responses: { 200: ok('the workspace, with the policy in force', res.workspaceResponse) },
    errors: [403, 404, 409, 503],
  },
  {
    method: 'delete',
    path: W,
    operationId: 'deleteWorkspace',
    tag: tag.workspaces,
    summary: 'Delete the workspace and its backend resources (through its workflow)',
    auth: MANAGE,
    params: { path: workspace },
    responses: { 202: ok('accepted; later GET shows deleted', res.acceptedResponse) },
    errors: [403, 404, 503],
  },
  {
    method: 'patch',
    path: `${W}/config`,
    operationId: 'configureWorkspace',
    tag: tag.workspaces,
    summary: 'Save a new runtime/config (restart: true applies it now)',
    description: 'With restart: true, 402 over budget (nothing saved, as a restart would be).',
    auth: MANAGE,
    params: { path: workspace },
    body: jsonBody(configureBody),
    responses: { 200: ok('saved, before any restart starts', res.configureResponse) },
    errors: [402, 403, 404, 409, 503],
  },
  ...lifecycle,
  {
    method: 'get',
    path: `${W}/boot-log`,
    operationId: 'getBootLog',
    tag: tag.workspaces,
    summary: 'Boot events and console of a generation (redacted, capped)',
    auth: MANAGE,
    params: { path: workspace, query: bootLogQuery },
    responses: { 200: ok('the boot log', res.bootLogResponse) },
    errors: [400, 403, 404],
  },
  {
    method: 'get',
    path: `${W}/events`,
    operationId: 'streamWorkspaceEvents',
    tag: tag.workspaces,
    summary: 'Status transitions as server-sent events',
    description: 'Each `data:` line is a TransitionEvent; the stream ends after `deleted`.',
    auth: MANAGE,
    params: { path: workspace },
    responses: {
      200: { description: 'the event stream', content: { 'text/event-stream': eventStream } },
    },
    errors: [403, 404],
  },
  {
    method: 'get',
    path: `${W}/terminal`,
    operationId: 'openTerminal',
    tag: tag.workspaces,
    summary: 'Interactive terminal (WebSocket upgrade)',
    description:
      'A WebSocket: binary frames both ways are raw terminal bytes; text frames are JSON control ' +
      'messages `{"type":"resize","cols":N,"rows":N}`. The socket is accepted, then closed with 4401 ' +
      '(auth), 4404 (unknown workspace), 4409 (not online), 4429 (the key over its request rate, which ' +
      'terminal openings count in, or the workspace at its limit of open sessions) or 1008 (input ' +
      'overflow before the session opens).',
    auth: MANAGE,
    params: {
      path: workspace,
      query: z.object({
        token: z
          .string()
          .optional()
          .meta({ description: 'the bearer token, for clients that cannot set headers' }),
      }),
    },
    upgrade: true,
    responses: {
      101: { description: 'switching protocols: the WebSocket is open' },
      400: { description: 'not a WebSocket upgrade, or an id that is not valid %-encoding (no body)' },
      503: { description: 'the server is shutting down (no body)' },
    },
  },
];

const filesRoutes: Operation[] = [
  {
    method: 'get',
    path: `${W}/files`,
    operationId: 'listFiles',
    tag: tag.files,
    summary: 'List a folder of the workspace',
    auth: MANAGE,
    params: { path: workspace, query: fileListQuery },
    responses: { 200: ok('entries; truncated when cut at the cap', res.fileListResponse) },
    errors: [400, 403, 404, 409, 502, 503],
  },
  {
    method: 'get',
    path: `${W}/files/content`,
    operationId: 'readFile',
    tag: tag.files,
    summary: "Read a file's bytes (streamed)",
    auth: MANAGE,
    params: { path: workspace, query: fileContentQuery },
    responses: { 200: { description: 'the bytes', content: { 'application/octet-stream': binary } } },
    errors: [400, 403, 404, 409, 413, 502, 503],
  },
  {
    method: 'put',
    path: `${W}/files/content`,
    operationId: 'writeFile',
    tag: tag.files,
    summary: 'Write a file (≤ 10 MiB); parent folders are created',
    auth: MANAGE,
    params: { path: workspace, query: fileContentQuery },
    body: { content: { 'application/octet-stream': binary }, required: true, description: 'raw bytes' },
    responses: { 204: noContent },
    errors: [400, 403, 404, 409, 413, 502, 503, 507],
  },
  {
    method: 'delete',
    path: `${W}/files/content`,
    operationId: 'deleteFile',
    tag: tag.files,
    summary: 'Delete a file',
    auth: MANAGE,
    params: { path: workspace, query: fileContentQuery },
    responses: { 204: noContent },
    errors: [400, 403, 404, 409, 502, 503],
  },
];

/** A JSON-RPC 2.0 request, any method (the proxy checks jsonrpc and method, forwards the rest). */
const jsonRpcRequest = z.looseObject({
  jsonrpc: z.literal('2.0'),
  method: z.string(),
  id: z.union([z.string(), z.number(), z.null()]).optional(),
  params: z.unknown().optional(),
});

const a2aRoutes: Operation[] = [
  {
    method: 'post',
    path: `${W}/a2a`,
    operationId: 'sendA2A',
    tag: tag.a2a,
    summary: "Forward a JSON-RPC request to the workspace's agent",
    description:
      'Streaming answers (text/event-stream) are passed through as they arrive. A workspace token ' +
      'calls as that workspace: the message then carries params.message.metadata.peer.',
    auth: MANAGE_OR_SELF,
    params: { path: workspace },
    body: jsonBody(jsonRpcRequest),
    responses: {
      200: {
        description: "the agent's answer",
        content: {
          'application/json': res.jsonRpcResponse,
          'text/event-stream': z.string().meta({ description: "the agent's event stream" }),
          'application/octet-stream': binary.meta({ description: 'any other type the agent answered' }),
        },
      },
    },
    errors: [400, 402, 403, 404, 409, 413, 502, 504],
  },
  {
    method: 'get',
    path: `${W}/agent-card`,
    operationId: 'getAgentCard',
    tag: tag.a2a,
    summary: "The agent's card, its url pointing at this proxy",
    auth: MANAGE_OR_SELF,
    params: { path: workspace },
    responses: { 200: ok('the card', res.agentCardResponse) },
    errors: [403, 404, 409, 502, 504],
  },
  {
    method: 'get',
    path: `${W}/activity`,
    operationId: 'listActivity',
    tag: tag.activity,
    summary: 'Activity log, newest first',
    auth: MANAGE_OR_SELF,
    params: { path: workspace, query: activityQuery },
    responses: { 200: ok('a page; nextBeforeTs null on the last', res.activityListResponse) },
    errors: [400, 403, 404],
  },
  {
    method: 'get',
    path: `${W}/chat-history`,
    operationId: 'getChatHistory',
    tag: tag.activity,
    summary: 'The A2A turns with one peer, newest first',
    auth: MANAGE_OR_SELF,
    params: { path: workspace, query: chatQuery },
    responses: { 200: ok('a page', res.chatHistoryResponse) },
    errors: [400, 403, 404],
  },
];

const dataRoutes: Operation[] = [
  {
    method: 'get',
    path: `${W}/secrets`,
    operationId: 'listSecrets',
    tag: tag.secrets,
    summary: "The workspace's secret keys (never values)",
    auth: MANAGE,
    params: { path: workspace },
    responses: { 200: ok('keys', res.secretKeysResponse) },
    errors: [403, 404],
  },
  {
    method: 'put',
    path: `${W}/secrets/{key}`,
    operationId: 'putSecret',
    tag: tag.secrets,
    summary: 'Store a secret (delivered at the next (re)start)',
    auth: MANAGE,
    params: { path: workspace.extend({ key: secretKey }) },
    body: jsonBody(secretBody),
    responses: { 204: noContent },
    errors: [403, 404, 409],
  },
  {
    method: 'delete',
    path: `${W}/secrets/{key}`,
    operationId: 'deleteSecret',
    tag: tag.secrets,
    summary: 'Delete a secret',
    auth: MANAGE,
    params: { path: workspace.extend({ key: secretKey }) },
    responses: { 204: noContent },
    errors: [400, 403, 404, 409],
  },
  {
    method: 'get',
    path: `${W}/memories`,
    operationId: 'listMemories',
    tag: tag.memories,
    summary: 'Memories, newest first',
    auth: MANAGE_OR_SELF,
    params: { path: workspace, query: memoryListQuery },
    responses: { 200: ok('a page; nextCursor null on the last', res.memoryListResponse) },
    errors: [400, 403, 404],
  },
  {
    method: 'post',
    path: `${W}/memories`,
    operationId: 'createMemory',
    tag: tag.memories,
    summary: 'Store a memory (redacted before storage)',
    auth: MANAGE_OR_SELF,
    params: { path: workspace },
    body: jsonBody(memoryBody),
    responses: { 201: ok('the memory', res.memoryResponse) },
    errors: [403, 404, 409],
  },
  {
    method: 'delete',
    path: `${W}/memories/{memoryId}`,
    operationId: 'deleteMemory',
    tag: tag.memories,
    summary: 'Delete a memory',
    auth: MANAGE_OR_SELF,
    params: { path: workspace.extend({ memoryId: idSchema }) },
    responses: { 204: noContent },
    errors: [403, 404],
  },
  {
    method: 'get',
    path: `${W}/budget`,
    operationId: 'getBudget',
    tag: tag.budget,
    summary: 'Limit and spend (a workspace token may read its own)',
    auth: MANAGE_OR_SELF,
    params: { path: workspace },
    responses: { 200: ok('the budget', res.budgetResponse) },
    errors: [403, 404],
  },
  {
    method: 'patch',
    path: `${W}/budget`,
    operationId: 'setBudget',
    tag: tag.budget,
    summary: 'Set the limit (null: no limit)',
    auth: MANAGE,
    params: { path: workspace },
    body: jsonBody(budgetBody),
    responses: { 200: ok('the budget', res.budgetResponse) },
    errors: [403, 404, 409],
  },
  {
    method: 'get',
    path: `${W}/schedules`,
    operationId: 'listSchedules',
    tag: tag.schedules,
    summary: 'Schedules, oldest first (repairs missing Temporal mirrors)',
    auth: MANAGE,
    params: { path: workspace },
    responses: { 200: ok('schedules', res.scheduleListResponse) },
    errors: [403, 404],
  },
  {
    method: 'post',
    path: `${W}/schedules`,
    operationId: 'createSchedule',
    tag: tag.schedules,
    summary: 'Create a schedule (a prompt sent on a cron)',
    auth: MANAGE,
    params: { path: workspace },
    body: jsonBody(createScheduleBody),
    responses: { 201: ok('the schedule', res.scheduleResponse) },
    errors: [403, 404, 409, 503],
  },
  {
    method: 'get',
    path: `${W}/schedules/{sid}`,
    operationId: 'getSchedule',
    tag: tag.schedules,
    summary: 'One schedule',
    auth: MANAGE,
    params: { path: workspace.extend({ sid: idSchema }) },
    responses: { 200: ok('the schedule', res.scheduleResponse) },
    errors: [403, 404],
  },
  {
    method: 'patch',
    path: `${W}/schedules/{sid}`,
    operationId: 'patchSchedule',
    tag: tag.schedules,
    summary: 'Change a schedule (enabled: false pauses it)',
    auth: MANAGE,
    params: { path: workspace.extend({ sid: idSchema }) },
    body: jsonBody(patchScheduleBody),
    responses: { 200: ok('the schedule', res.scheduleResponse) },
    errors: [403, 404, 409, 503],
  },
  {
    method: 'delete',
    path: `${W}/schedules/{sid}`,
    operationId: 'deleteSchedule',
    tag: tag.schedules,
    summary: 'Delete a schedule and its Temporal Schedule',
    auth: MANAGE,
    params: { path: workspace.extend({ sid: idSchema }) },
    responses: { 204: noContent },
    errors: [403, 404, 503],
  },
  {
    method: 'post',
    path: `${W}/schedules/{sid}/run`,
    operationId: 'runSchedule',
    tag: tag.schedules,
    summary: 'Run a schedule once now (also when paused)',
    auth: MANAGE,
    params: { path: workspace.extend({ sid: idSchema }) },
    responses: { 202: ok('started; its outcome shows as lastRun', res.scheduleRunResponse) },
    errors: [403, 404, 409, 503],
  },
  {
    method: 'get',
    path: `${W}/plugins`,
    operationId: 'listWorkspacePlugins',
    tag: tag.plugins,
    summary: "The workspace's plugins and their status",
    auth: MANAGE,
    params: { path: workspace },
    responses: { 200: ok('plugins', res.workspacePluginListResponse) },
    errors: [403, 404],
  },
  {
    method: 'post',
    path: `${W}/plugins`,
    operationId: 'installPlugin',
    tag: tag.plugins,
    summary: 'Install a plugin from the catalog or an uploaded archive (validated whole first)',
    auth: MANAGE,
    params: { path: workspace },
    body: jsonBody(installPluginBody, 'local://<name>, or a base64 .tar.gz upload (≤ 2 MiB)'),
    responses: { 202: ok('stored; the plugin workflow installs it', res.workspacePluginResponse) },
    errors: [403, 404, 409, 503],
  },
  {
    method: 'delete',
    path: `${W}/plugins/{name}`,
    operationId: 'uninstallPlugin',
    tag: tag.plugins,
    summary: 'Uninstall a plugin',
    auth: MANAGE,
    params: { path: workspace.extend({ name: z.string().regex(PLUGIN_NAME) }) },
    responses: { 202: ok('the plugin workflow removes it', res.workspacePluginResponse) },
    errors: [403, 404, 409, 503],
  },
];

const registryRoutes: Operation[] = [
  {
    method: 'get',
    path: '/v1/registry/bootstrap',
    operationId: 'bootstrap',
    tag: tag.registry,
    summary: "The agent's boot bundle (bootstrap token, or the generation's workspace token)",
    auth: ['bootstrapToken', 'workspaceToken'],
    responses: { 200: ok('the bundle', res.bootstrapResponse) },
    errors: [403, 409],
  },
  {
    method: 'post',
    path: '/v1/registry/register',
    operationId: 'register',
    tag: tag.registry,
    summary: 'The agent registers its generation and config hash',
    auth: AGENT,
    body: jsonBody(registerBody),
    responses: { 200: ok('registered', res.registerResponse) },
    errors: [403, 409],
  },
  {
    method: 'post',
    path: '/v1/registry/boot-events',
    operationId: 'reportBootEvent',
    tag: tag.registry,
    summary: 'The agent reports a boot phase (platform-health-ok: ready)',
    auth: AGENT,
    body: jsonBody(bootEventBody),
    responses: { 200: ok('recorded', res.okResponse) },
    errors: [403, 409],
  },
  {
    method: 'post',
    path: '/v1/registry/heartbeat',
    operationId: 'heartbeat',
    tag: tag.registry,
    summary: 'The agent reports it runs (and its spend and plugins)',
    auth: AGENT,
    body: jsonBody(heartbeatBody),
    responses: { 200: ok('recorded', res.okResponse) },
    errors: [403, 409],
  },
];

/** The MCP endpoint's own errors are JSON-RPC errors (the SDK's), the edge's the Error shape. */
const mcpError = z.union([res.errorResponse, res.jsonRpcResponse]);
const mcpPostOnly = (method: 'get' | 'delete'): Operation => ({
  method,
  path: '/v1/mcp',
  operationId: method === 'get' ? 'mcpStream' : 'mcpEndSession',
  tag: tag.mcp,
  summary: 'Not offered: the MCP endpoint is stateless (POST only)',
  auth: AGENT,
  responses: {
    405: {
      description: '`method_not_allowed`, with Allow: POST',
      content: json(res.errorResponse),
      headers: { Allow: 'POST' },
    },
  },
  errors: [403],
});

const mcpRoutes: Operation[] = [
  {
    method: 'post',
    path: '/v1/mcp',
    operationId: 'mcp',
    tag: tag.mcp,
    summary: 'MCP (Streamable HTTP, stateless): tools list_peers, send_message, chat_history',
    description:
      "The calling workspace's tools for reaching its org's other workspaces; send_message goes " +
      'through the A2A proxy (peer metadata, activity rows). Clients send ' +
      '`Accept: application/json, text/event-stream`.',
    auth: AGENT,
    body: jsonBody(jsonRpcRequest, 'one JSON-RPC 2.0 message'),
    responses: {
      200: ok('the JSON-RPC answer', res.jsonRpcResponse),
      202: { description: 'a notification, accepted; no body' },
      400: { description: 'not a JSON-RPC message (either shape)', content: json(mcpError) },
      406: { description: 'the Accept header does not take JSON', content: json(res.jsonRpcResponse) },
      415: { description: 'not application/json (either shape)', content: json(mcpError) },
    },
    errors: [402, 403],
  },
  mcpPostOnly('get'),
  mcpPostOnly('delete'),
  {
    method: 'get',
    path: '/ui',
    operationId: 'console',
    tag: tag.console,
    summary: 'The web console (its pages ask for an API key and keep it in the browser tab)',
    auth: [],
    responses: { 200: { description: 'HTML page', content: { 'text/html': z.string() } } },
  },
  {
    method: 'get',
    path: '/ui/config.json',
    operationId: 'consoleConfig',
    tag: tag.console,
    summary: "The web console's settings (the /ui pages read it with the user's key)",
    auth: MANAGE_OR_SELF,
    responses: { 200: ok('settings', res.consoleConfigResponse) },
  },
];

export const ROUTES: readonly Operation[] = [
  ...operationsRoutes,
  ...orgRoutes,
  ...workspaceRoutes,
  ...filesRoutes,
  ...a2aRoutes,
  ...dataRoutes,
  ...registryRoutes,
  ...mcpRoutes,
];
