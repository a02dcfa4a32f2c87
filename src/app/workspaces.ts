/**
 * Workspace use cases: create (the row, its secrets, memories and default plugins, then its entity
 * workflow), the restart policy, configuration, restart/stop/start, delete, and the boot log. The
 * lifecycle itself is the entity workflow's: these validate, record, and hand over.
 */
import type { z } from 'zod';
import { keptConsoleLog, listBootEvents } from '../db/events.js';
import { insertMemory } from '../db/memories.js';
import { lockOrgAndCountWorkspaces } from '../db/orgs.js';
import { storePendingPlugin } from '../db/plugins.js';
import { inTransaction } from '../db/queryable.js';
import { putSecret, redactorFor } from '../db/secrets.js';
import * as workspaces from '../db/workspaces.js';
import { bindLogWorkspace } from '../log.js';
import { createInput } from '../domain/entity-start.js';
import { SECRETS_MAX_KEYS } from '../domain/quotas.js';
import { CONSOLE_FETCH_SLACK_BYTES, redactedTail, type RedactedTail } from '../security/redacted-tail.js';
import { newId } from '../security/tokens.js';
import { restartUpdate, startUpdate, stopUpdate, workspaceWorkflowId } from '../workflows/messages.js';
import type { ConfigureInput } from '../workflows/messages.js';
import { phaseDurations } from '../api/boot-phases.js';
import { boundsOf } from '../api/bounds.js';
import type { ApiDeps, ApiSettings } from '../api/deps.js';
import type { createWorkspaceBody } from '../api/schemas.js';
import { requireBudget } from './budget.js';
import { invalid, missing, quotaExceeded, requireWorkerFor, temporalDown } from './errors.js';

type WorkspaceRow = workspaces.WorkspaceRow;
export type WorkspaceDeps = Pick<ApiDeps, 'db' | 'entity' | 'secrets' | 'settings' | 'log' | 'backends'>;
export type CreateWorkspaceInput = z.infer<typeof createWorkspaceBody>;
export type RestartPolicy = 'always' | 'never';

/** The restart policy in force: the workspace's own, else its template's, else the default. */
export function policyInForce(
  settings: ApiSettings,
  w: { restartPolicy: RestartPolicy | null; template: string | null },
): RestartPolicy {
  return (
    w.restartPolicy ??
    (w.template ? settings.templates[w.template]?.restartPolicy : undefined) ??
    settings.restartPolicy?.policy ??
    'always'
  );
}

/**
 * Creates a workspace in `scope` (an org key's org) or, for the admin (scope null), the body's org.
 * The row and everything stored with it come first; the entity workflow then provisions it. When
 * Temporal refuses the start, the row is removed only if no workflow exists.
 */
export async function createWorkspace(
  deps: WorkspaceDeps,
  scope: string | null,
  body: CreateWorkspaceInput,
): Promise<{ id: string; status: 'provisioning'; workflowId: string }> {
  const { db, settings } = deps;
  const orgId = scope ?? body.orgId;
  if (!orgId) throw invalid('orgId: required when creating with the admin token', 'orgId');
  if (scope && body.orgId && body.orgId !== scope) throw invalid('orgId: must be your own org', 'orgId');
  if (!settings.enabledBackends.includes(body.backend)) {
    throw invalid(`backend: "${body.backend}" is not enabled on this server`, 'backend');
  }
  // Own keys only: "constructor" or "toString" is not a template.
  const template =
    body.template && Object.hasOwn(settings.templates, body.template)
      ? settings.templates[body.template]
      : undefined;
  if (body.template && !template) throw invalid(`template: unknown template "${body.template}"`, 'template');
  const runtime = body.runtime ?? template?.runtime ?? settings.defaultRuntime;
  if (!settings.runtimeImages[runtime]) {
    const known = Object.keys(settings.runtimeImages).join(', ') || 'none configured';
    throw invalid(`runtime: unknown runtime "${runtime}" (known: ${known})`, 'runtime');
  }
  if (body.parentId && !(await workspaces.getWorkspace(db, body.parentId, orgId))) {
    throw invalid('parentId: no such workspace in this org', 'parentId');
  }
  // The template's default plugins: stored with the workspace, delivered by its first bundle.
  const defaultPlugins = (template?.plugins ?? []).map((name) => {
    const p = settings.plugins?.[name];
    if (!p)
      throw invalid(
        `template: plugin "${name}" of template "${body.template}" is not in the catalog`,
        'template',
      );
    return p;
  });
  const secretsMax = settings.secretsMaxKeys ?? SECRETS_MAX_KEYS;
  if (Object.keys(body.secrets ?? {}).length > secretsMax) {
    throw quotaExceeded(`secrets: a workspace holds at most ${secretsMax} secrets, its quota`);
  }
  // Nothing is recorded that no worker would provision (api.md: Temporal or the worker unavailable →
  // 503): a row left `provisioning` with no worker counts in the quota until one comes back.
  await requireWorkerOrRefuse(deps, 'nothing was created');
  const id = newId();
  const workflowId = workspaceWorkflowId(id);
  bindLogWorkspace(id);
  // The org's name labels the workflow in the Temporal UI (its static summary).
  const orgName = await inTransaction(db, async (tx) => {
    const org = await lockOrgAndCountWorkspaces(tx, orgId);
    if (!org) throw invalid('orgId: no such org', 'orgId');
    if (org.liveWorkspaces >= settings.orgWorkspaceQuota) {
      throw quotaExceeded(
        `the org has ${org.liveWorkspaces} workspaces, its quota is ${settings.orgWorkspaceQuota}; delete one first`,
      );
    }
    await workspaces.insertWorkspace(tx, {
      id,
      orgId,
      name: body.name,
      backend: body.backend,
      template: body.template ?? null,
      runtime,
      config: { ...(template?.config ?? {}), ...(body.config ?? {}) },
      workflowId,
      parentId: body.parentId ?? null,
      budgetLimitCents: body.budgetLimitCents ?? null,
      restartPolicy: body.restartPolicy ?? null,
    });
    for (const p of defaultPlugins) await storePendingPlugin(tx, id, p, newId());
    for (const [key, value] of Object.entries(body.secrets ?? {}))
      await putSecret(tx, deps.secrets, { workspaceId: id }, key, value);
    // Its own secrets and its org's defaults: the same set every later redaction uses. Read only
    // when there is something to redact (the org's row stays locked until the commit).
    const memories = body.initialMemories ?? [];
    if (memories.length > 0) {
      const clean = await redactorFor(tx, deps.secrets, id);
      for (const m of memories) await insertMemory(tx, id, clean(m.content), m.scope ?? 'local');
    }
    return org.name;
  });
  try {
    await deps.entity.start(
      createInput(settings, {
        id,
        orgId,
        backend: body.backend,
        template: body.template ?? null,
        restartPolicy: body.restartPolicy ?? null,
      }),
      { firstStart: true },
      { name: body.name, orgName, template: body.template ?? null, runtime },
    );
  } catch (err) {
    deps.log.error({ err }, 'could not start workspace workflow');
    // The start may have reached Temporal anyway (a timeout after the server accepted it): the
    // row goes only when Temporal says no workflow exists; if it does, the create succeeded.
    const exists = await deps.entity.exists(id);
    if (exists === false) {
      await workspaces.deleteWorkspaceRow(db, id);
      throw temporalDown('workflow service unavailable; nothing was created');
    }
    if (exists === null) {
      throw temporalDown(`workflow service unavailable; workspace ${id} may have been created`);
    }
  }
  return { id, status: 'provisioning', workflowId };
}

/** 503 (temporal_unavailable, Retry-After) unless a worker polls the task queue; `outcome` says what was left. */
export async function requireWorkerOrRefuse(
  { entity, settings }: { entity: Pick<WorkspaceDeps['entity'], 'requireWorker'>; settings: ApiSettings },
  outcome: string,
): Promise<void> {
  if (!settings.acceptWithoutWorker) await requireWorkerFor(() => entity.requireWorker(), outcome);
}

/** One page of the workspaces in scope (null: all orgs), after `afterId`; `more` when others follow. */
export async function listPage(
  deps: Pick<WorkspaceDeps, 'db'>,
  scope: string | null,
  q: { status?: string; backend?: string; limit: number; afterId?: string },
): Promise<{ items: WorkspaceRow[]; more: boolean }> {
  const rows = await workspaces.listWorkspaces(deps.db, {
    orgId: scope,
    status: q.status,
    backend: q.backend,
    limit: q.limit + 1,
    afterId: q.afterId,
  });
  return { items: rows.slice(0, q.limit), more: rows.length > q.limit };
}

/**
 * Sets the workspace's own restart policy (null: its template's or the default). The entity saves
 * it and applies the policy in force from its next decision. The workspace as it now is.
 */
export async function setRestartPolicy(
  deps: WorkspaceDeps,
  scope: string | null,
  w: WorkspaceRow,
  override: RestartPolicy | null,
): Promise<WorkspaceRow> {
  await deps.entity.setRestartPolicy(w.id, {
    override,
    policy: policyInForce(deps.settings, { ...w, restartPolicy: override }),
  });
  const now = await workspaces.getWorkspace(deps.db, w.id, scope);
  if (!now) throw missing();
  return now;
}

export async function configure(deps: WorkspaceDeps, w: WorkspaceRow, input: ConfigureInput) {
  if (input.runtime && !deps.settings.runtimeImages[input.runtime]) {
    throw invalid(`runtime: unknown runtime "${input.runtime}"`, 'runtime');
  }
  // A save that restarts boots a generation, as a restart does: refused whole over the budget
  // (a save alone boots nothing and is kept).
  if (input.restart) await requireBudget(deps.db, w.id);
  return deps.entity.configure(w.id, input);
}

const LIFECYCLE = { restart: restartUpdate, stop: stopUpdate, start: startUpdate } as const;
export type LifecycleAction = keyof typeof LIFECYCLE;
export const LIFECYCLE_ACTIONS = Object.keys(LIFECYCLE) as LifecycleAction[];

/** Restart, stop or start, through the entity workflow's update. */
export async function lifecycle(deps: WorkspaceDeps, w: WorkspaceRow, action: LifecycleAction) {
  // Booting a workspace over its budget would only have the budget sweep stop it again.
  if (action !== 'stop') await requireBudget(deps.db, w.id);
  return deps.entity.update(w.id, LIFECYCLE[action]);
}

/** Deletes through the entity workflow; a workspace already deleted is accepted as it is. */
export async function deleteWorkspace(deps: WorkspaceDeps, w: WorkspaceRow) {
  if (w.status === 'deleted') return { accepted: true, status: 'deleted' };
  return deps.entity.delete(w, {
    bootDeadlineMs: deps.settings.bootDeadlineMs,
    continueAsNewAfterEvents: deps.settings.continueAsNewAfterEvents,
  });
}

export interface BootLog {
  events: Array<{ ts: Date; phase: string; generation: number; message?: string; durationMs: number | null }>;
  console: RedactedTail;
  consoleGeneration: number;
}

/**
 * A generation's boot events (the most recent, bounded) and its console, both redacted: the live
 * resource's console while it exists, else the copy kept when the generation failed. `withConsole`
 * false: the events alone, the backend not asked (a page that shows only the phases).
 */
export async function bootLog(
  deps: WorkspaceDeps,
  w: WorkspaceRow,
  generation?: number,
  withConsole = true,
): Promise<BootLog> {
  const shownGeneration = generation ?? w.generation;
  const clean = await redactorFor(deps.db, deps.secrets, w.id);
  const { bootLogMaxEvents, bootLogConsoleMaxBytes: maxBytes } = boundsOf(deps.settings);
  const events = await listBootEvents(deps.db, w.id, bootLogMaxEvents, generation);
  const durations = phaseDurations(events);
  const shown = withConsole
    ? await consoleOf(deps, w, shownGeneration, maxBytes, clean.values)
    : { text: '', truncated: false };
  return {
    events: events.map((e, i) => ({
      ts: e.ts,
      phase: e.phase,
      generation: e.generation,
      ...(e.message ? { message: clean(e.message) } : {}),
      durationMs: durations[i] ?? null,
    })),
    console: shown,
    consoleGeneration: shownGeneration,
  };
}

/** A generation's console, redacted and capped (both backends alike). */
async function consoleOf(
  deps: WorkspaceDeps,
  w: WorkspaceRow,
  generation: number,
  maxBytes: number,
  secrets: readonly string[],
): Promise<RedactedTail> {
  if (generation === w.generation && w.instanceId && w.status !== 'deleted') {
    // A little over the cap, so a longer console shows as truncated.
    const live = await deps.backends[w.backend]
      .bootLog(w.id, generation, maxBytes + CONSOLE_FETCH_SLACK_BYTES)
      .catch(() => '');
    if (live) return redactedTail(live, secrets, maxBytes);
  }
  const kept = await keptConsoleLog(deps.db, w.id, generation, maxBytes);
  return kept ? redactedTail(kept.text, secrets, maxBytes, kept.truncated) : { text: '', truncated: false };
}
