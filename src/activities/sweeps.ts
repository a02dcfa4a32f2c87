/**
 * Activities of the orphan sweep and the org cascade. The listing, the DB lookup and the choice
 * happen in one activity, so the workflow's history holds only what is removed, not the fleet.
 */
import { randomInt } from 'node:crypto';
import { ApplicationFailure, Context, log } from '@temporalio/activity';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import {
  BACKEND_KINDS,
  BackendError,
  type BackendKind,
  type ResourceStatus,
  type WorkspaceBackend,
} from '../backends/backend.js';
import { pruneActivity } from '../db/activity.js';
import { HISTORY_TABLES, pruneHistory } from '../db/history.js';
import { overBudgetWorkspaces } from '../db/budget.js';
import { staleRequests, type InFlightRequest } from '../db/plugins.js';
import { dropDeletedOrgSecrets } from '../db/secrets.js';
import type { Queryable } from '../db/queryable.js';
import {
  deletedOrgsWithWorkspaces,
  liveWorkspacesOfOrg,
  lostCreates,
  type DeletedOrgLeft,
  recordSweepRun,
  sweepLookup,
  workspacesToCheck,
  type SweepRun,
} from '../db/sweeps.js';
import { getWorkspace } from '../db/workspaces.js';
import type { BudgetPolicy } from '../domain/budget.js';
import {
  createInput,
  deleteOnlyCarry,
  entityStartOptions,
  type CreateSettings,
} from '../domain/entity-start.js';
import { orgDeleteStartOptions } from '../domain/org-delete-start.js';
import {
  PLUGIN_REPORT_DEADLINE_MS,
  PLUGIN_REQUEST_LOST_AFTER_MS,
  pluginStartOptions,
} from '../domain/plugin-start.js';
import {
  resourceKey,
  selectHealthChanges,
  type BackendListing,
  type HealthFinding,
  type HealthSelection,
} from '../domain/health.js';
import {
  liveOrgKey,
  selectOrphanNetworks,
  selectOrphans,
  type ActivityPruned,
  type HistoryPruned,
  type ListedNetwork,
  type ListedResource,
  type OrphanNetwork,
  type OrphanRemoval,
  type OrphanSelection,
} from '../domain/orphans.js';
import { UnconfiguredBackend } from '../backends/unconfigured.js';
import {
  agentLivenessSignal,
  deleteUpdate,
  platformStopUpdate,
  workspaceWorkflowId,
} from '../workflows/messages.js';
import type { pluginWorkflow } from '../workflows/plugin.js';
import type { orgDeleteWorkflow } from '../workflows/sweeps.js';
import type { workspaceWorkflow } from '../workflows/workspace/workflow.js';
import { withHeartbeat } from './heartbeat.js';

/** Input the entity requires; an entity that only deletes never boots, so it never waits this long. */
const DELETE_ONLY_BOOT_DEADLINE_MS = 600_000;

/** Rows one DELETE takes (short transactions: the proxy's INSERTs never wait long behind one). */
const PRUNE_BATCH = 5_000;
/** Rows one sweep run takes at most; a backlog (retention just lowered) goes over the next runs. */
export const ACTIVITY_PRUNE_ROWS_PER_RUN = 100_000;
/** Likewise for workspace history, over its three tables together. */
export const HISTORY_PRUNE_ROWS_PER_RUN = 100_000;

/**
 * Runs `prune` in batches of PRUNE_BATCH until a batch comes back short or `cap` rows went;
 * `more`: the cap stopped it.
 */
async function inBatches(
  cap: number,
  prune: (limit: number) => Promise<number>,
): Promise<{ removed: number; more: boolean }> {
  let removed = 0;
  while (removed < cap) {
    const batch = Math.min(PRUNE_BATCH, cap - removed);
    const gone = await prune(batch);
    removed += gone;
    if (gone < batch) return { removed, more: false };
  }
  return { removed, more: true };
}

export interface SweepActivityDeps {
  db: Queryable;
  backends: Record<BackendKind, WorkspaceBackend>;
  /** ACTIVITY_RETENTION_DAYS in ms: older activity rows go; undefined keeps them all. */
  activityRetentionMs?: number;
  /** HISTORY_RETENTION_DAYS in ms: older workspace history goes; undefined keeps it all. */
  historyRetentionMs?: number;
  /** Sends the org cascade's delete Updates to the workspace entities, starts lost plugin runs. */
  temporal?: Client;
  /** The agent's time to report a plugin set, for the plugin runs this sweep starts. */
  pluginReportDeadlineMs?: number;
  /** The service's create settings, for the entities of creates whose own start never landed. */
  createSettings?: CreateSettings;
  /** ORG_DELETE_WAIT_MS, for the org cascades this sweep starts. */
  orgDeleteWaitMs?: number;
}

export interface FoundOrphans extends OrphanSelection {
  listErrors: Array<{ backend: BackendKind; error: string }>;
  /** Every orphan found; `removals` holds at most ORPHAN_REMOVALS_PER_RUN of them (the rest wait). */
  orphans?: number;
  /** Org networks no workspace needs (at most ORPHAN_REMOVALS_PER_RUN), with the counts of all listed. */
  networks?: { removals: OrphanNetwork[]; counts: NetworkCounts };
}

type NetworkCounts = ReturnType<typeof selectOrphanNetworks>['counts'];

/**
 * Removals handed to one orphan sweep run. Each is an activity in the run's history: a leak of
 * thousands is worked off over several runs, never one history (or one payload) that size.
 */
export const ORPHAN_REMOVALS_PER_RUN = 200;

/** Entries of each id list a health sweep returns (its counts are always whole). */
export const HEALTH_RESULT_LIST_MAX = 100;

/** Signals sent at once by the health sweep. */
const SIGNAL_CONCURRENCY = 16;

/** What one health sweep did (the workflow's result; lists capped, counts whole). */
export interface HealthSweepOutcome {
  counts: HealthSelection['counts'] & { signalled: number; failed: number };
  signalled: Array<Pick<HealthFinding, 'workspaceId' | 'backend' | 'from' | 'to' | 'reason'>>;
  failed: Array<{ workspaceId: string; error: string }>;
  /** True when `signalled` or `failed` holds only the first HEALTH_RESULT_LIST_MAX entries. */
  truncated: boolean;
  listErrors: Array<{ backend: BackendKind; error: string }>;
}

/** What one budget sweep found and did (lists capped at HEALTH_RESULT_LIST_MAX, counts whole). */
export interface BudgetSweepOutcome {
  counts: { overBudget: number; stopped: number; failed: number };
  /** Every workspace at or over its budget that may still spend, with its figures. */
  overBudget: Array<{ workspaceId: string; backend: BackendKind; limitCents: number; spentCents: number }>;
  /** Those whose entity took the stop (policy `stop`). */
  stopped: string[];
  failed: Array<{ workspaceId: string; error: string }>;
  truncated: boolean;
}

/**
 * A create older than this whose entity never took a step lost its start: the create's own start
 * (and the look after a failed one) is over within the API's Temporal deadline (4 s).
 */
export const LOST_CREATE_AFTER_MS = 60_000;

/** Creates the orphan sweep found lost and whose entity it started (or failed to). */
export interface ResumedCreates {
  resumed: Array<{ workspaceId: string; orgId: string }>;
  failed: Array<{ workspaceId: string; orgId: string; error: string }>;
}

/**
 * An org deleted this long ago with a workspace short of `deleted` and no cascade running lost its
 * cascade: the API's own start is over within its Temporal deadline (4 s).
 */
export const ORG_DELETE_LOST_AFTER_MS = 60_000;

/** Org cascades the orphan sweep found missing and started (or failed to). */
export interface ResumedOrgDeletes {
  resumed: DeletedOrgLeft[];
  failed: Array<DeletedOrgLeft & { error: string }>;
}

/** Plugin requests the orphan sweep found lost and started (or failed to). */
export interface ResumedPluginRequests {
  resumed: InFlightRequest[];
  failed: Array<InFlightRequest & { error: string }>;
}

export interface HealthCheck extends HealthSelection {
  listErrors: Array<{ backend: BackendKind; error: string }>;
}

export function createSweepActivities(deps: SweepActivityDeps) {
  const { db, backends } = deps;
  const activities = {
    /**
     * Deletes activity rows past the retention, in batches, at most ACTIVITY_PRUNE_ROWS_PER_RUN a
     * run (the next run goes on: `more`). Null when retention is off.
     */
    async pruneOldActivity(): Promise<ActivityPruned | null> {
      if (deps.activityRetentionMs === undefined) return null;
      const before = new Date(Date.now() - deps.activityRetentionMs);
      return withHeartbeat(async () => {
        const run = await inBatches(ACTIVITY_PRUNE_ROWS_PER_RUN, (limit) => pruneActivity(db, before, limit));
        return { before: before.toISOString(), removed: run.removed, more: run.more };
      });
    },

    /**
     * Deletes workspace history past the retention (src/db/history.ts says what is kept), table by
     * table in batches, at most HISTORY_PRUNE_ROWS_PER_RUN a run over all three (the next run goes
     * on: `more`). Null when retention is off.
     */
    async pruneOldHistory(): Promise<HistoryPruned | null> {
      if (deps.historyRetentionMs === undefined) return null;
      const before = new Date(Date.now() - deps.historyRetentionMs);
      const removed: HistoryPruned['removed'] = { consoleLogs: 0, bootEvents: 0, transitions: 0 };
      return withHeartbeat(async () => {
        let left = HISTORY_PRUNE_ROWS_PER_RUN;
        for (const table of HISTORY_TABLES) {
          const run = await inBatches(left, (limit) => pruneHistory(db, table, before, limit));
          removed[table] = run.removed;
          left -= run.removed;
          if (run.more) return { before: before.toISOString(), removed, more: true };
        }
        return { before: before.toISOString(), removed, more: false };
      });
    },

    /** Lists every enabled backend once, looks the lot up in one query, and picks the orphans. */
    async findOrphans(input: { graceMs: number }): Promise<FoundOrphans> {
      const resources: ListedResource[] = [];
      const networks: ListedNetwork[] = [];
      const listErrors: FoundOrphans['listErrors'] = [];
      for (const backend of BACKEND_KINDS) {
        const b = backends[backend];
        try {
          // All three listings or none: a backend read in part is skipped whole (below).
          const [managed, volumes, nets] = [
            await b.listManaged(),
            await b.listManagedVolumes(),
            await b.listManagedNetworks(),
          ];
          for (const r of managed) {
            resources.push({
              backend,
              instanceId: r.instanceId,
              workspaceId: r.workspaceId,
              orgId: r.orgId,
              generation: r.generation,
              createdAtMs: r.createdAt.getTime(),
            });
          }
          for (const v of volumes) {
            resources.push({
              backend,
              // A generation's own disk (EC2 root volume) is judged with its generation.
              kind: v.generation === undefined ? 'volume' : 'generation-volume',
              instanceId: v.name,
              workspaceId: v.workspaceId,
              orgId: v.orgId,
              generation: v.generation ?? 0,
              createdAtMs: v.createdAt.getTime(),
            });
          }
          for (const n of nets) {
            networks.push({ backend, name: n.name, orgId: n.orgId, createdAtMs: n.createdAt.getTime() });
          }
        } catch (err) {
          if (err instanceof BackendError && err.code === 'not_configured') continue; // not enabled
          // An unreadable backend is skipped this run: nothing of it is removed on a guess.
          listErrors.push({ backend, error: (err as Error).message });
        }
      }
      // Listed first, looked up second: a generation prepared meanwhile reads as live, never orphan.
      const networkOrgs = networks.map((n) => n.orgId);
      const { workspaces, knownOrgs, liveOrgs } = await sweepLookup(
        db,
        resources.map((r) => r.workspaceId),
        [...resources.map((r) => r.orgId), ...networkOrgs],
        networkOrgs,
      );
      const nowMs = Date.now();
      const selection = selectOrphans({ resources, workspaces, knownOrgs, nowMs, graceMs: input.graceMs });
      const orphanNetworks = selectOrphanNetworks({
        networks,
        liveOrgs,
        knownOrgs,
        nowMs,
        graceMs: input.graceMs,
      });
      return {
        ...selection,
        removals: onePage(selection.removals),
        orphans: selection.removals.length,
        listErrors,
        networks: {
          removals: onePage(orphanNetworks.removals),
          counts: orphanNetworks.counts,
        },
      };
    },

    /**
     * The health sweep's look: one query, one listing per enabled backend, and the cross-check.
     * Answers only the workspaces whose verdict differs from their status.
     */
    async checkHealth(input: { staleMs: number }): Promise<HealthCheck> {
      const listings: Partial<Record<BackendKind, BackendListing>> = {};
      const listErrors: HealthCheck['listErrors'] = [];
      // Listed first, read second: a generation prepared meanwhile is not online yet, so its
      // missing resource is never read as a workspace gone offline.
      for (const backend of BACKEND_KINDS) {
        try {
          const listing = new Map<string, ResourceStatus>();
          for (const r of await backends[backend].listManaged()) {
            listing.set(resourceKey(r.workspaceId, r.generation), r.status);
          }
          listings[backend] = listing;
        } catch (err) {
          if (err instanceof BackendError && err.code === 'not_configured') continue; // not enabled
          listings[backend] = null; // unknown: stale heartbeats read as degraded, never offline
          listErrors.push({ backend, error: (err as Error).message });
        }
      }
      const workspaces = await workspacesToCheck(db);
      return {
        ...selectHealthChanges({ workspaces, listings, nowMs: Date.now(), staleMs: input.staleMs }),
        listErrors,
      };
    },

    /**
     * One whole health sweep in one activity: the look (checkHealth), then a signal to each entity
     * whose verdict changed, sent from here. After an outage every workspace may change at once;
     * a finding per workspace through the workflow would be one payload and one activity each
     * (10,000 findings ≈ 2 MB at ~205 bytes each, at Temporal's 2 MB payload limit, then ~30,000 history events).
     * Signals are idempotent verdicts, so a retried activity sending them again is harmless.
     */
    async sweepHealth(input: { staleMs: number }): Promise<HealthSweepOutcome> {
      const check = await activities.checkHealth(input);
      const signalled: HealthSweepOutcome['signalled'] = [];
      const failed: HealthSweepOutcome['failed'] = [];
      const queue = [...check.changed];
      const lane = async () => {
        for (let f = queue.shift(); f; f = queue.shift()) {
          try {
            if ((await activities.signalHealthFinding(f)) === 'signalled') {
              const { workspaceId, backend, from, to, reason } = f;
              signalled.push({ workspaceId, backend, from, to, reason });
            }
          } catch (err) {
            // One entity that cannot be reached does not stop the others; the next sweep tries again.
            failed.push({ workspaceId: f.workspaceId, error: (err as Error).message });
          }
        }
      };
      await withHeartbeat(() =>
        Promise.all(Array.from({ length: Math.min(SIGNAL_CONCURRENCY, queue.length) }, lane)),
      );
      const byId = (a: { workspaceId: string }, b: { workspaceId: string }) =>
        a.workspaceId.localeCompare(b.workspaceId);
      signalled.sort(byId);
      failed.sort(byId);
      return {
        counts: { ...check.counts, signalled: signalled.length, failed: failed.length },
        signalled: signalled.slice(0, HEALTH_RESULT_LIST_MAX),
        failed: failed.slice(0, HEALTH_RESULT_LIST_MAX),
        truncated: signalled.length > HEALTH_RESULT_LIST_MAX || failed.length > HEALTH_RESULT_LIST_MAX,
        listErrors: check.listErrors,
      };
    },

    /**
     * The budget sweep in one activity: one query over the enabled backends' workspaces, then,
     * under policy `stop`, the stop Update to each over-budget one's entity (idempotent: a retried
     * activity asks again and the entity, already stopping, answers the same).
     */
    async sweepBudget(input: { policy: BudgetPolicy }): Promise<BudgetSweepOutcome> {
      const enabled = BACKEND_KINDS.filter((b) => !(backends[b] instanceof UnconfiguredBackend));
      const over = await overBudgetWorkspaces(db, enabled);
      const stopped: string[] = [];
      const failed: BudgetSweepOutcome['failed'] = [];
      if (input.policy === 'stop') {
        const temporal = deps.temporal;
        if (!temporal) throw ApplicationFailure.nonRetryable('no Temporal client for the budget sweep');
        const queue = [...over];
        const lane = async () => {
          for (let w = queue.shift(); w; w = queue.shift()) {
            try {
              // The workspace says why it stopped (phase `over-budget`, the figures in the message).
              await temporal.workflow
                .getHandle(workspaceWorkflowId(w.workspaceId))
                .executeUpdate(platformStopUpdate, {
                  args: [
                    {
                      phase: 'over-budget',
                      message: `stopped by the budget sweep: spent ${w.spentCents} of its ${w.limitCents} cents`,
                    },
                  ],
                });
              stopped.push(w.workspaceId);
            } catch (err) {
              // Deleted meanwhile: nothing left to stop. Anything else is tried again next sweep.
              if (err instanceof WorkflowUpdateFailedError || err instanceof WorkflowNotFoundError) continue;
              failed.push({ workspaceId: w.workspaceId, error: (err as Error).message });
            }
          }
        };
        await withHeartbeat(() =>
          Promise.all(Array.from({ length: Math.min(SIGNAL_CONCURRENCY, queue.length) }, lane)),
        );
      } else if (input.policy === 'notify') {
        for (const { workspaceId, spentCents, limitCents } of over) {
          activityWarn('workspace over its budget', { workspaceId, spentCents, limitCents });
        }
      }
      stopped.sort();
      failed.sort((a, b) => a.workspaceId.localeCompare(b.workspaceId));
      const max = HEALTH_RESULT_LIST_MAX;
      return {
        counts: { overBudget: over.length, stopped: stopped.length, failed: failed.length },
        overBudget: over.slice(0, max).map(({ workspaceId, backend, limitCents, spentCents }) => ({
          workspaceId,
          backend,
          limitCents,
          spentCents,
        })),
        stopped: stopped.slice(0, max),
        failed: failed.slice(0, max),
        truncated: over.length > max || stopped.length > max || failed.length > max,
      };
    },

    /**
     * Starts the entity of every create whose own start never landed (an API killed between the
     * row's commit and the start, or a start Temporal never got while the look after it could not
     * tell: "may have been created"). Such a row would stay `provisioning` for good, counted in the
     * org's quota. The start is the create's own (the first run ever under the id): Temporal
     * refuses it when any entity ran, so a late start of the create's, or a delete, wins.
     */
    async resumeLostCreates(): Promise<ResumedCreates> {
      if (!deps.temporal || !deps.createSettings)
        throw ApplicationFailure.nonRetryable('no Temporal client or create settings for the orphan sweep');
      const client = deps.temporal;
      const settings = deps.createSettings;
      const { taskQueue } = Context.current().info;
      const lost = await lostCreates(db, LOST_CREATE_AFTER_MS, ORPHAN_REMOVALS_PER_RUN);
      return startEach(
        lost.map((w) => ({ w, named: { workspaceId: w.id, orgId: w.orgId } })),
        ({ w }) => {
          const about = { name: w.name, orgName: w.orgName, template: w.template, runtime: w.runtime };
          return client.workflow.start<typeof workspaceWorkflow>(
            'workspaceWorkflow',
            entityStartOptions(createInput(settings, w), taskQueue, { firstStart: true }, about),
          );
        },
      );
    },

    /**
     * Starts the cascade of every org deleted a minute ago or more that still has a workspace short
     * of `deleted`: the API commits the delete (keys dropped) before it starts the cascade, so one
     * killed between the two, or a Temporal down then, left the org's workspaces running for good
     * (heartbeats refused, restarted into generations that can never register). The start is the
     * API's own, under the org's one cascade id: a cascade still running refuses it and is left to it.
     */
    async resumeOrgDeletes(): Promise<ResumedOrgDeletes> {
      if (!deps.temporal || deps.orgDeleteWaitMs === undefined)
        throw ApplicationFailure.nonRetryable('no Temporal client or org delete wait for the orphan sweep');
      const client = deps.temporal;
      const waitMs = deps.orgDeleteWaitMs;
      const { taskQueue } = Context.current().info;
      const left = await deletedOrgsWithWorkspaces(db, ORG_DELETE_LOST_AFTER_MS, ORPHAN_REMOVALS_PER_RUN);
      return startEach(
        left.map((org) => ({ named: org })),
        ({ named: org }) =>
          client.workflow.start<typeof orgDeleteWorkflow>(
            'orgDeleteWorkflow',
            orgDeleteStartOptions(org.orgId, waitMs, taskQueue),
          ),
      );
    },

    /**
     * Starts the run of every plugin request left in flight with none (its API stopped between
     * recording it and starting the run; it would hold the plugin for good). A request whose run
     * is there already (a long install waiting for the agent's report) is left to it.
     */
    async resumeLostPluginRequests(): Promise<ResumedPluginRequests> {
      if (!deps.temporal) throw ApplicationFailure.nonRetryable('no Temporal client for the orphan sweep');
      const client = deps.temporal;
      const { taskQueue } = Context.current().info;
      const stale = await staleRequests(db, PLUGIN_REQUEST_LOST_AFTER_MS, { limit: ORPHAN_REMOVALS_PER_RUN });
      const reportDeadlineMs = deps.pluginReportDeadlineMs ?? PLUGIN_REPORT_DEADLINE_MS;
      return startEach(
        stale.map((request) => ({ named: request })),
        ({ named: request }) =>
          client.workflow.start<typeof pluginWorkflow>(
            'pluginWorkflow',
            pluginStartOptions({ ...request, reportDeadlineMs }, taskQueue),
          ),
      );
    },

    /** Counts one finished sweep run for /metrics (the API may run in another process). */
    async recordSweepRun(run: SweepRun): Promise<void> {
      await recordSweepRun(db, run);
    },

    /** Hands one finding to its entity; `no-entity` when its workflow is gone (deleted meanwhile). */
    async signalHealthFinding(finding: HealthFinding): Promise<'signalled' | 'no-entity'> {
      if (!deps.temporal) throw ApplicationFailure.nonRetryable('no Temporal client for the health sweep');
      try {
        await deps.temporal.workflow
          .getHandle(workspaceWorkflowId(finding.workspaceId))
          .signal(agentLivenessSignal, finding.liveness);
        return 'signalled';
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return 'no-entity';
        throw err;
      }
    },

    async removeOrphan(removal: OrphanRemoval): Promise<void> {
      try {
        await withHeartbeat(() =>
          backends[removal.backend].remove(
            removal.workspaceId,
            removal.generation === null ? { volumes: true } : { generation: removal.generation },
          ),
        );
      } catch (err) {
        if (err instanceof BackendError && (err.code === 'permanent' || err.code === 'not_configured')) {
          throw ApplicationFailure.nonRetryable(err.message, `BackendError.${err.code}`);
        }
        throw err;
      }
    },

    /**
     * An org network the sweep found unneeded, removed unless a workspace of its org appeared since
     * (checked again here) or a container of the org is left (the backend checks). Answers whether
     * it was removed.
     */
    async removeOrphanNetwork(n: OrphanNetwork): Promise<boolean> {
      const { liveOrgs } = await sweepLookup(db, [], [], [n.orgId]);
      if (liveOrgs.has(liveOrgKey(n.backend, n.orgId))) return false;
      try {
        return await backends[n.backend].removeUnusedOrgNetwork(n.orgId);
      } catch (err) {
        if (err instanceof BackendError && (err.code === 'permanent' || err.code === 'not_configured')) {
          throw ApplicationFailure.nonRetryable(err.message, `BackendError.${err.code}`);
        }
        throw err;
      }
    },

    async orgWorkspaces(input: { orgId: string }): Promise<string[]> {
      return liveWorkspacesOfOrg(db, input.orgId);
    },

    /**
     * The workspace's own delete, through its entity. A workspace with no running entity (a create
     * that committed just before the org was deleted and has not started it yet, or never will;
     * an entity that ended without recording `deleted`) gets one that only deletes: a create's late
     * start is then refused (it must be the first workflow under the id), so nothing of a deleted
     * org can boot after the cascade looked. `gone`: no such row (a create rolled back).
     */
    async requestWorkspaceDelete(input: {
      workspaceId: string;
    }): Promise<'accepted' | 'already' | 'started' | 'gone'> {
      const temporal = deps.temporal;
      if (!temporal) throw ApplicationFailure.nonRetryable('no Temporal client for the org cascade');
      const askEntity = async (): Promise<'accepted' | 'already' | 'no-entity'> => {
        try {
          await temporal.workflow
            .getHandle(workspaceWorkflowId(input.workspaceId))
            .executeUpdate(deleteUpdate);
          return 'accepted';
        } catch (err) {
          // Rejected: deleted already (an entity deleting takes it again and tries at once).
          if (err instanceof WorkflowUpdateFailedError) return 'already';
          if (err instanceof WorkflowNotFoundError || isCompleted(err)) return 'no-entity';
          throw err;
        }
      };
      const first = await askEntity();
      if (first !== 'no-entity') return first;
      const row = await getWorkspace(db, input.workspaceId);
      if (!row) return 'gone';
      if (row.status === 'deleted') return 'already';
      try {
        await temporal.workflow.start<typeof workspaceWorkflow>(
          'workspaceWorkflow',
          entityStartOptions(
            {
              workspaceId: row.id,
              orgId: row.orgId,
              backend: row.backend,
              // Never boots: it only deletes.
              bootDeadlineMs: DELETE_ONLY_BOOT_DEADLINE_MS,
              carried: deleteOnlyCarry(row),
            },
            Context.current().info.taskQueue,
            { firstStart: false },
            { name: row.name, template: row.template, runtime: row.runtime },
          ),
        );
        return 'started';
      } catch (err) {
        // The create's own start won the race: that entity takes the delete instead.
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          const again = await askEntity();
          if (again !== 'no-entity') return again;
        }
        throw err;
      }
    },

    /** The cascade's final sweep on every enabled backend: anything with the org's mark goes. */
    async removeOrgResources(input: { orgId: string }): Promise<Record<string, string[]>> {
      const out: Record<string, string[]> = {};
      for (const backend of BACKEND_KINDS) {
        try {
          out[backend] = await withHeartbeat(() => backends[backend].removeOrg(input.orgId));
        } catch (err) {
          if (err instanceof BackendError && err.code === 'not_configured') continue;
          throw err;
        }
      }
      // Nothing of the org left running: its sealed defaults and retired values go too.
      await dropDeletedOrgSecrets(db, input.orgId);
      return out;
    },
  };
  return activities;
}

export type SweepActivities = ReturnType<typeof createSweepActivities>;

/**
 * Starts one workflow per item, for the orphan sweep's lost work (creates, cascades, plugin
 * requests): started, or failed (tried again next run); one Temporal refuses as already started
 * (its own run, or a late start of the original, is there) is left to it and in neither list.
 */
async function startEach<I extends { named: N }, N extends object>(
  items: I[],
  start: (item: I) => Promise<unknown>,
): Promise<{ resumed: N[]; failed: Array<N & { error: string }> }> {
  const out: { resumed: N[]; failed: Array<N & { error: string }> } = { resumed: [], failed: [] };
  for (const item of items) {
    try {
      await start(item);
      out.resumed.push(item.named);
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) continue;
      out.failed.push({ ...item.named, error: (err as Error).message });
    }
  }
  return out;
}

/**
 * One run's page of removals, in their sorted order. With more than a page, the page starts at a
 * random place (wrapping round): always the first page would leave everything after it untried
 * for good while that page keeps failing (say 200 containers a daemon cannot remove).
 */
function onePage<T>(removals: T[]): T[] {
  if (removals.length <= ORPHAN_REMOVALS_PER_RUN) return removals;
  const start = randomInt(removals.length);
  const page = [...removals.slice(start), ...removals.slice(0, start)].slice(0, ORPHAN_REMOVALS_PER_RUN);
  const at = new Map(removals.map((r, i) => [r, i]));
  return page.sort((a, b) => at.get(a)! - at.get(b)!);
}

function isCompleted(err: unknown): boolean {
  return err instanceof Error && /already completed/i.test(err.message);
}

/** A warning in the worker's log (the activity logger; nowhere when called outside an activity). */
function activityWarn(message: string, meta: Record<string, unknown>): void {
  try {
    log.warn(message, meta);
  } catch {
    // outside an activity (unit tests): no logger to write to
  }
}
