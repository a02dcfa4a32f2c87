/**
 * Update / signal / query definitions of the workspace entity workflow and their input types.
 * Imported by the workflow and by the API (which starts and updates workflows), so it depends on
 * nothing but @temporalio/workflow's definition helpers.
 */
import type { defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

export const WORKSPACE_STATUSES = [
  'provisioning',
  'online',
  'degraded',
  'offline',
  'stopping',
  'stopped',
  'restarting',
  'failed',
  'deleting',
  'deleted',
] as const;
export type WorkspaceStatus = (typeof WORKSPACE_STATUSES)[number];

export type BackendName = 'docker' | 'ec2';

export const workspaceWorkflowId = (workspaceId: string): string => `workspace:${workspaceId}`;

// Keyword search attributes, registered on the server (`./dev` passes --search-attribute).
// (plain objects of the SDK's key shape: workflow code takes nothing at runtime but the workflow SDK).
type KeywordKey = ReturnType<typeof defineSearchAttributeKey<'KEYWORD'>>;
const keyword = (name: string): KeywordKey => ({ name, type: 'KEYWORD' });
export const WorkspaceIdKey = keyword('WorkspaceId');
export const OrgIdKey = keyword('OrgId');
export const WorkspaceBackendKey = keyword('WorkspaceBackend');
export const WorkspaceStatusKey = keyword('WorkspaceStatus');
// For operators' queries (docs/operations.md): stuck in a status since, automatically restarted.
export const WorkspaceStatusSinceKey: ReturnType<typeof defineSearchAttributeKey<'DATETIME'>> = {
  name: 'WorkspaceStatusSince',
  type: 'DATETIME',
};
export const WorkspaceRestartsKey: ReturnType<typeof defineSearchAttributeKey<'INT'>> = {
  name: 'WorkspaceRestarts',
  type: 'INT',
};

export interface WorkspaceWorkflowInput {
  workspaceId: string;
  orgId: string;
  backend: BackendName;
  /** How long a boot may take to prove readiness before the generation is failed and torn down. */
  bootDeadlineMs: number;
  /** Continue-as-new also when history grows past this (the server's suggestion applies too). */
  continueAsNewAfterEvents?: number;
  /** The restart policy (decide.ts restartPlan); absent fields take the defaults there. */
  restartPolicy?: RestartPolicyInput;
  /** Present only when continued-as-new: the state carried over, plain JSON. */
  carried?: CarriedState;
}

export interface RestartPolicyInput {
  policy?: 'always' | 'never';
  max?: number;
  windowMs?: number;
  degradedAfterMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  healthyResetMs?: number;
}

/** One automatic restart, kept for the `failed` reason and carried through continue-as-new. */
export interface AutoRestart {
  atMs: number;
  /** The generation that went down (the restart boots the next one). */
  generation: number;
  reason: string;
}

/**
 * Everything the entity needs to resume after continue-as-new. The fields after `latestSavedVersion`
 * were added later: a run continued by older code carries none of them, so they are optional.
 */
export interface CarriedState {
  status: WorkspaceStatus;
  generation: number;
  configHash: string | null;
  desired: 'running' | 'stopped';
  restartPending: boolean;
  error: string | null;
  latestSavedVersion: number;
  phase?: string | null;
  startPending?: boolean;
  halted?: boolean;
  health?: AgentHealth | null;
  liveness?: AgentLiveness | null;
  healthPending?: boolean;
  /**
   * A delete still retrying when its run's history grew long: the next run goes on deleting (no
   * Update may undo it), and its backoff goes on from this many failed attempts.
   */
  deleting?: { attempts: number };
  /** The restart policy's state: restarts of the current streak, and when the status last changed. */
  restartHistory?: AutoRestart[];
  lastRestartReason?: string | null;
  statusSinceMs?: number;
  /** An automatic restart held until then: the backend could not be read when it was due. */
  restartHeldUntilMs?: number | null;
  /** A stop the backend refused: its failed attempts, and when the next one is due. */
  stopAttempts?: number;
  stopRetryAtMs?: number | null;
  /** Why the platform asked for the stop in progress (none: the user's own stop). */
  stopCause?: StopCause | null;
  /** The config version the current generation booted with (absent: unknown, from older code). */
  generationConfigVersion?: number | null;
  /** A start accepted before the stop requested began (it comes after that stop). */
  startAfterStop?: boolean;
}

export interface WorkspaceState {
  workspaceId: string;
  status: WorkspaceStatus;
  generation: number;
  configHash: string | null;
  desired: 'running' | 'stopped';
  restartPending: boolean;
  error: string | null;
  phase: string | null;
  /** True while an operation (provision, restart, stop, start, delete) is running. */
  busy: boolean;
  deleteRequested: boolean;
  /** A start was asked of a workspace that is not stopped (offline, degraded, failed). */
  startPending: boolean;
  /**
   * The last operation failed after its retries: the entity waits for a new request (restart, stop,
   * start, delete) instead of retrying the same goal in a loop.
   */
  halted: boolean;
  /** Automatic restarts of the current streak, and why the last one happened (restart policy). */
  restartCount?: number;
  lastRestartReason?: string | null;
}

/**
 * When the caller stops waiting for its Update (epoch ms): an entity that only gets it later (its
 * worker down, or busy) refuses it unseen, so a caller's "unavailable, nothing was changed" stays
 * true. Absent: no deadline (Updates from before it, and the platform's own).
 */
export interface RequestDeadline {
  notAfterMs?: number;
  /**
   * When the caller stops waiting for the answer (epoch ms): an Update whose change would only be
   * made after it completes `Expired` instead and changes nothing (the entity makes the change in the
   * task after the one that took the Update, and looks at the clock there).
   */
  answerByMs?: number;
}

export interface ConfigureInput extends RequestDeadline {
  runtime?: string;
  config?: Record<string, unknown>;
  restart?: boolean;
}
export interface ConfigureResult {
  /** The generation that will run this config. */
  generation: number;
  configHash: string;
}

export interface Accepted {
  accepted: true;
  status: WorkspaceStatus;
}

export interface AgentReady {
  generation: number;
  configHash: string;
}

export interface AgentHealth {
  generation: number;
  /** `ok`, or anything else the agent reports (e.g. `wedged`), which degrades the workspace. */
  runtimeState: string;
}

/** What the platform saw when it last tried to reach the agent (A2A proxy, health sweep). */
export interface AgentLiveness {
  generation: number;
  /** The agent answered. */
  reachable: boolean;
  /** The backend's view of the resource at that moment. */
  resourceStatus: 'running' | 'stopped' | 'missing' | 'unknown';
}

/** PATCH /v1/workspaces/:id `restartPolicy`: what the entity applies from its next decision on. */
export interface RestartPolicyChange extends RequestDeadline {
  /** The policy in force from now (the override, else the template's, else the server default). */
  policy: 'always' | 'never';
  /** What the workspace row keeps: its own choice, or null for "the template's / the default". */
  override: 'always' | 'never' | null;
}

export const configureUpdate = defineUpdate<ConfigureResult, [ConfigureInput]>('configure');
export const restartPolicyUpdate = defineUpdate<{ restartPolicy: 'always' | 'never' }, [RestartPolicyChange]>(
  'restartPolicy',
);
/**
 * The lifecycle Updates take no argument, or a RequestDeadline (the API's, sent by name): typed
 * without one, so that callers with no deadline (the platform's own, tests) call them as before.
 */
export const restartUpdate = defineUpdate<Accepted, []>('restart');
/**
 * A stop the platform asks for itself: its phase and message go with `stopping` and `stopped`, so the
 * workspace says why it stopped (the user's own stop carries none).
 */
export interface StopCause {
  phase: 'over-budget';
  message: string;
}

export const stopUpdate = defineUpdate<Accepted, []>('stop');
/** The platform's own stop (the budget sweep's), with its cause. */
export const platformStopUpdate = defineUpdate<Accepted, [StopCause]>('platformStop');
export const startUpdate = defineUpdate<Accepted, []>('start');
export const deleteUpdate = defineUpdate<Accepted, []>('delete');

/** Sent by the registry when the agent proves it booted generation+config and the platform is healthy. */
export const agentReadySignal = defineSignal<[AgentReady]>('agentReady');
/** Sent by the registry only when the reported runtime state changes (never per heartbeat). */
export const agentHealthSignal = defineSignal<[AgentHealth]>('agentHealth');

/** Sent when a liveness check changes its verdict: unreachable agent → degraded, no resource → offline. */
export const agentLivenessSignal = defineSignal<[AgentLiveness]>('agentLiveness');

export const stateQuery = defineQuery<WorkspaceState>('state');

/**
 * `ApplicationFailure.type`s an Update fails with; the API maps them by type (never by message):
 * Conflict and Deleted → 409, InvalidInput → 400 (details[0] is `{field}`).
 */
export const FailureType = {
  Conflict: 'Conflict',
  Deleted: 'Deleted',
  InvalidInput: 'InvalidInput',
  /** The entity could not finish the call (its activity kept failing): the API answers 503. */
  Unavailable: 'Unavailable',
  /** The Update came after its caller's deadline (RequestDeadline): refused, nothing changed; 503. */
  Expired: 'Expired',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Activity failure types of PostgreSQL errors that retrying cannot fix (SQLSTATE classes 22, 23). */
export const DbFailureType = {
  /** Class 22, data exception (e.g. a NUL in text, a number out of range). */
  Data: 'PgDataError',
  /** Class 23, integrity constraint violation. */
  Integrity: 'PgIntegrityError',
} as const;

// ---- Plugins (issue 9, part 3): one workflow per workspace plugin, `workspace:<id>:plugin:<name>`.

export const pluginWorkflowId = (workspaceId: string, name: string): string =>
  `workspace:${workspaceId}:plugin:${name}`;

export interface PluginWorkflowInput {
  workspaceId: string;
  name: string;
  action: 'install' | 'uninstall';
  /** The request this run acts for (workspace_plugins.request_id): a newer request fences it. */
  requestId: string;
  /** How long the agent has to report the new plugin set after delivery. */
  reportDeadlineMs: number;
}

/** One plugin as the agent reports it: its folder name and the install id written with it. */
export interface ReportedPlugin {
  name: string;
  installId?: string;
}

/** Sent by the registry when a heartbeat reports a plugin set that settles a pending request. */
export interface PluginsReported {
  generation: number;
  plugins: ReportedPlugin[];
}

export const pluginsReportedSignal = defineSignal<[PluginsReported]>('pluginsReported');

export type PluginWorkflowResult =
  { outcome: 'installed' | 'removed' | 'pending' | 'superseded' } | { outcome: 'failed'; reason: string };
