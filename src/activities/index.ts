/**
 * Activities: thin calls into a backend or the DB. Built by `createActivities(deps)` so tests inject
 * real or fake dependencies. Every activity is idempotent: Temporal may run it more than once.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import {
  BackendError,
  CONSOLE_MAX_BYTES,
  type BackendKind,
  type ResourceStatus,
  type WorkspaceBackend,
} from '../backends/backend.js';
import { BOOT_PHASES } from '../api/schemas.js';
import { saveConsoleLog } from '../db/events.js';
import { recordProvision } from '../db/metrics.js';
import type { Transactable } from '../db/queryable.js';
import { dropWorkspaceSecrets, pruneRetiredSecrets, redactorFor } from '../db/secrets.js';
import { mintBootstrapToken, revokeWorkspaceTokens } from '../db/tokens.js';
import * as workspaces from '../db/workspaces.js';
import { CONSOLE_FETCH_SLACK_BYTES, redactedTail } from '../security/redacted-tail.js';
import type { Templates } from '../config.js';
import type { CreateSettings } from '../domain/entity-start.js';
import type { SecretBox } from '../security/secrets.js';
import { DbFailureType, type WorkspaceStatus } from '../workflows/messages.js';
import { createPluginActivities } from './plugins.js';
import { createScheduleActivities } from './schedules.js';
import { createSweepActivities } from './sweeps.js';

export interface ActivityDeps {
  db: Transactable;
  backends: Record<BackendKind, WorkspaceBackend>;
  /** URL the agent in a workspace of that backend uses to reach the registry. */
  platformUrls: Record<BackendKind, string>;
  bootstrapTokenTtlMs: number;
  secrets: SecretBox;
  /** Templates by name: their placement overrides apply when a resource is created. */
  templates?: Templates;
  /** For activities that talk to other workflows (the org cascade's deletes). */
  temporal?: Client;
  /** The agent's time to report a plugin set, for plugin runs the orphan sweep starts. */
  pluginReportDeadlineMs?: number;
  /** The service's create settings, for the entities of lost creates the orphan sweep starts. */
  createSettings?: CreateSettings;
  /** ORG_DELETE_WAIT_MS, for the org cascades the orphan sweep starts. */
  orgDeleteWaitMs?: number;
  /** ACTIVITY_RETENTION_DAYS in ms (undefined: kept for good), for the orphan sweep's prune. */
  activityRetentionMs?: number;
  /** HISTORY_RETENTION_DAYS in ms (undefined: kept for good), for the orphan sweep's prune. */
  historyRetentionMs?: number;
}

interface ResourceTarget {
  workspaceId: string;
  backend: BackendKind;
  generation: number;
}

export function createActivities(deps: ActivityDeps) {
  const { db } = deps;
  const schedules = createScheduleActivities(deps);

  return {
    ...createSweepActivities(deps),
    ...createPluginActivities(deps),
    ...schedules,

    async saveConfig(input: { workspaceId: string; runtime?: string; config?: Record<string, unknown> }) {
      return dbCall(() =>
        workspaces.saveConfig(db, input.workspaceId, { runtime: input.runtime, config: input.config }),
      );
    },

    async saveRestartPolicy(input: { workspaceId: string; override: 'always' | 'never' | null }) {
      await dbCall(() => workspaces.saveRestartPolicy(db, input.workspaceId, input.override));
    },

    async prepareGeneration(input: { workspaceId: string; generation: number }) {
      return dbCall(() => workspaces.prepareGeneration(db, input.workspaceId, input.generation));
    },

    async recordTransition(input: {
      workspaceId: string;
      generation: number;
      status: WorkspaceStatus;
      phase: string | null;
      message: string | null;
      error: string | null;
      restart?: { count: number; lastReason: string | null };
      discardedGeneration?: number;
      step?: string;
    }): Promise<void> {
      const written = await dbCall(async () => {
        // Most transitions carry no text (status and phase are ours): no secrets to read for them.
        const redactor =
          input.message === null && input.error === null
            ? null
            : await redactorFor(db, deps.secrets, input.workspaceId);
        const clean = (v: string | null) => (v === null || redactor === null ? v : redactor(v));
        return workspaces.recordTransition(db, {
          ...input,
          message: clean(input.message),
          error: clean(input.error),
        });
      });
      // The step ran before (a timed-out workflow task's try): what follows from it was done then.
      if (!written) return;
      // A deleted workspace's agent is gone: the org's retired values only it might hold can go.
      // Best effort, like the figure below: a value kept longer is only redacted longer.
      if (input.status === 'deleted') {
        await pruneRetiredSecrets(db, { workspaceId: input.workspaceId }).catch((err: unknown) => {
          Context.current().log.warn('retired secrets not pruned', {
            error: err instanceof Error ? err.message : String(err),
          });
        });
      }
      // The generation's first `online` ends its provision: timed for /metrics, once. A failure
      // costs the figure, never the transition.
      if (input.status === 'online') {
        await recordProvision(db, input.workspaceId, input.generation, BOOT_PHASES).catch((err: unknown) => {
          Context.current().log.warn('provision durations not recorded', {
            error: err instanceof Error ? err.message : String(err),
          });
        });
      }
    },

    /** Creates (only if missing) and starts the generation's resource; records where it answers. */
    async startResource(input: ResourceTarget & { orgId: string; runtime: string | null }): Promise<void> {
      // Both before the start (the undiscard: from here the orphan sweep must count this generation
      // live again), independent of each other.
      const [row] = await Promise.all([
        workspaces.getWorkspace(db, input.workspaceId),
        workspaces.undiscardGeneration(db, input.workspaceId, input.generation),
      ]);
      const runtime = input.runtime ?? row?.bootRuntime;
      if (!runtime) throw ApplicationFailure.nonRetryable(`workspace ${input.workspaceId} has no runtime`);
      const template = row?.template ? deps.templates?.[row.template] : undefined;
      const info = await backendCall(() =>
        deps.backends[input.backend].start({
          workspaceId: input.workspaceId,
          orgId: input.orgId,
          generation: input.generation,
          runtime,
          platformUrl: deps.platformUrls[input.backend],
          mintBootstrapToken: () =>
            mintBootstrapToken(db, input.workspaceId, input.generation, deps.bootstrapTokenTtlMs),
          placement: template?.ec2,
          limits: template?.limits,
        }),
      );
      await workspaces.recordResource(db, input.workspaceId, input.generation, info);
    },

    /** The backend's view of the generation's resource; `unknown` when it cannot be read. */
    async resourceStatus(input: ResourceTarget): Promise<ResourceStatus> {
      return backendCall(() => deps.backends[input.backend].status(input.workspaceId, input.generation));
    },

    async stopResource(input: ResourceTarget): Promise<void> {
      await backendCall(() => deps.backends[input.backend].stop(input.workspaceId, input.generation));
      // A stopped resource answers nowhere (a docker port is released, an instance loses its
      // address): no stale endpoint is shown; the next start records where it answers then.
      await dbCall(() => workspaces.forgetEndpoint(db, input.workspaceId, input.generation));
    },

    async removeResource(input: {
      workspaceId: string;
      backend: BackendKind;
      generation?: number;
      volumes?: boolean;
    }): Promise<void> {
      await backendCall(() =>
        deps.backends[input.backend].remove(input.workspaceId, {
          generation: input.generation,
          volumes: input.volumes,
        }),
      );
    },

    /** Keeps the console output of a generation before compensation removes its resource. */
    async captureBootLog(input: ResourceTarget): Promise<void> {
      // A little over the cap, so a longer console shows as truncated.
      const raw = await backendCall(() =>
        deps.backends[input.backend].bootLog(
          input.workspaceId,
          input.generation,
          CONSOLE_MAX_BYTES + CONSOLE_FETCH_SLACK_BYTES,
        ),
      );
      const clean = await redactorFor(db, deps.secrets, input.workspaceId);
      // Capped here too, whatever the backend returned: the stored copy stays bounded.
      const kept = redactedTail(raw, clean.values, CONSOLE_MAX_BYTES);
      await saveConsoleLog(db, input.workspaceId, input.generation, kept.text, kept.truncated);
    },

    async finalizeDelete(input: { workspaceId: string }): Promise<void> {
      // The workspace's schedules (rows and Temporal Schedules) go with it.
      await schedules.removeWorkspaceSchedules(input);
      await dbCall(async () => {
        await revokeWorkspaceTokens(db, input.workspaceId);
        await dropWorkspaceSecrets(db, input.workspaceId);
        await workspaces.clearResource(db, input.workspaceId);
      });
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;

/**
 * Heartbeats while a backend call runs (so a dead worker is noticed by heartbeat timeout) and maps
 * permanent backend errors to non-retryable failures; transient ones are retried by Temporal.
 * The call itself runs to its end (a backend call cut midway could leave half of what it makes);
 * if the workflow asked to cancel meanwhile (heartbeats bring the request), the outcome reported is
 * the cancellation, so no further try starts and the workflow waiting on it goes on.
 */
export async function backendCall<T>(fn: () => Promise<T>): Promise<T> {
  const ctx = currentContext();
  const timer = ctx ? setInterval(() => ctx.heartbeat(), 2000) : undefined;
  // Only the workflow's own request: a worker shutting down (or a heartbeat timed out) is no
  // reason to report a try cancelled that the workflow did not cancel.
  const cancelled = () => {
    if (ctx?.cancellationDetails?.cancelRequested) throw ctx.cancellationSignal.reason;
  };
  try {
    const result = await fn();
    cancelled();
    return result;
  } catch (err) {
    cancelled();
    if (err instanceof BackendError && (err.code === 'permanent' || err.code === 'not_configured')) {
      throw ApplicationFailure.nonRetryable(err.message, `BackendError.${err.code}`);
    }
    throw err;
  } finally {
    if (timer) clearInterval(timer);
  }
}

/**
 * PostgreSQL data exceptions (SQLSTATE class 22, e.g. a NUL in text) and integrity violations
 * (class 23) fail the same way on every retry: non-retryable, typed, so the workflow can tell the
 * caller instead of retrying for ever. Anything else (connection loss, timeouts) stays retryable.
 */
export async function dbCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const code = sqlState(err);
    if (code?.startsWith('22'))
      throw ApplicationFailure.nonRetryable(pgMessage(err, code), DbFailureType.Data);
    if (code?.startsWith('23')) {
      throw ApplicationFailure.nonRetryable(pgMessage(err, code), DbFailureType.Integrity);
    }
    throw err;
  }
}

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

function pgMessage(err: unknown, code: string): string {
  return `${err instanceof Error ? err.message : 'database error'} (SQLSTATE ${code})`;
}

function currentContext(): Context | null {
  try {
    return Context.current();
  } catch {
    return null; // called outside an activity (unit tests)
  }
}
