/**
 * The orphan sweep (run by the `sweep:orphans` Schedule, or on demand) and the org cascade. Both
 * only decide and wait; every look at the DB or a backend is an activity.
 */
import {
  ApplicationFailure,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { BudgetSweepOutcome } from '../activities/sweeps.js';
import type { SweepRun } from '../db/sweeps.js';
import type { BudgetPolicy } from '../domain/budget.js';
import type { HealthFinding } from '../domain/health.js';
import type { OrphanRemoval, OrphanSweepResult } from '../domain/orphans.js';
import { resourceName, seconds } from './story.js';

const find = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 3, initialInterval: '1s' },
});
// EC2 waits for `terminated`: a removal may take minutes; heartbeats notice a dead worker sooner.
const backend = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30s',
  retry: { maximumAttempts: 3, initialInterval: '2s' },
});
const db = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumInterval: '30s' },
});
// Counting a run for /metrics is best effort: a DB outage must not hold up or fail the sweep.
const record = proxyActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { maximumAttempts: 3, initialInterval: '1s' },
});
const cascade = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1s', maximumInterval: '30s' },
});

/** How many removals run at once: bounded, so a large leak does not flood the daemon or the API. */
const REMOVE_CONCURRENCY = 8;

export interface OrphanSweepInput {
  graceMs: number;
}

/** Patches of the sweeps' command sequences (runs started by an older worker replay the old one). */
const PATCHES = {
  /** The run ends by adding its figures to sweep_stats (recordSweepRun), for /metrics. */
  recordRun: 'sweep-record-run',
  /** The health sweep's look and signals are one activity (sweepHealth), not one per finding. */
  healthInOneActivity: 'health-sweep-one-activity',
  /** The orphan sweep also removes workspace schedule mirrors that outlived their row. */
  straySchedules: 'orphan-sweep-stray-schedules',
  /** The orphan sweep also removes org networks that outlived their org's last workspace. */
  orgNetworks: 'orphan-sweep-org-networks',
  /** The orphan sweep also starts the runs of plugin requests left in flight with none. */
  pluginRequests: 'orphan-sweep-plugin-requests',
  /** The orphan sweep also starts the entities of creates whose own start never landed. */
  lostCreates: 'orphan-sweep-lost-creates',
  /** The orphan sweep also starts the cascades of deleted orgs whose own start never landed. */
  orgDeletes: 'orphan-sweep-org-deletes',
  /** The orphan sweep also deletes activity rows past ACTIVITY_RETENTION_DAYS. */
  activityRetention: 'orphan-sweep-activity-retention',
  /** The orphan sweep also deletes workspace history past HISTORY_RETENTION_DAYS. */
  historyRetention: 'orphan-sweep-history-retention',
} as const;

/**
 * Runs a sweep and, on workers that know the patch, counts the run (its outcome, duration and
 * actions) for /metrics. A run that throws is counted `failed` and still fails.
 */
async function counted<R>(
  sweep: SweepRun['sweep'],
  body: () => Promise<R>,
  summary: (r: R) => Pick<SweepRun, 'outcome' | 'actions'>,
): Promise<R> {
  if (!patched(PATCHES.recordRun)) return body();
  const started = Date.now();
  const save = (run: Omit<SweepRun, 'sweep' | 'durationMs'>) =>
    record.recordSweepRun
      .executeWithOptions({ summary: `count this ${sweep} sweep run (${run.outcome})` }, [
        { sweep, durationMs: Date.now() - started, ...run },
      ])
      .catch((err: unknown) => log.warn('sweep run not counted', { sweep, error: errorMessage(err) }));
  let result: R;
  try {
    result = await body();
  } catch (err) {
    await save({ outcome: 'failed', actions: {} });
    throw err;
  }
  await save(summary(result));
  return result;
}

export async function orphanSweepWorkflow(input: OrphanSweepInput): Promise<OrphanSweepResult> {
  return counted(
    'orphans',
    () => orphanSweep(input),
    (r) => {
      const actions = { removed: 0, terminated: 0 };
      // EC2 instances are terminated; containers, volumes (either backend) and networks removed.
      for (const x of r.removed) {
        actions[x.backend === 'ec2' ? 'terminated' : 'removed'] += x.instanceIds.length;
        actions.removed += x.volumeIds?.length ?? 0;
      }
      actions.removed += r.networks?.removed.length ?? 0;
      const partial =
        r.failed.length > 0 ||
        r.listErrors.length > 0 ||
        (r.networks?.failed.length ?? 0) > 0 ||
        (r.pluginRequests?.failed.length ?? 0) > 0 ||
        (r.lostCreates?.failed.length ?? 0) > 0 ||
        (r.orgDeletes?.failed.length ?? 0) > 0;
      // Creates, plugin requests and org cascades resumed count only when there were some (the
      // action set stays as it was).
      const resumed =
        (r.pluginRequests?.resumed.length ?? 0) +
        (r.lostCreates?.resumed.length ?? 0) +
        (r.orgDeletes?.resumed.length ?? 0);
      return {
        outcome: partial ? 'partial' : 'ok',
        actions: resumed > 0 ? { ...actions, resumed } : actions,
      };
    },
  );
}

async function orphanSweep(input: OrphanSweepInput): Promise<OrphanSweepResult> {
  const startedAt = new Date().toISOString();
  const found = await find.findOrphans.executeWithOptions(
    { summary: `find orphans (older than ${seconds(input.graceMs)}) on every backend` },
    [{ graceMs: input.graceMs }],
  );
  const removed: OrphanRemoval[] = [];
  const failed: OrphanSweepResult['failed'] = [];
  const queue = [...found.removals];
  const lane = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const removal = next;
      try {
        await backend.removeOrphan.executeWithOptions({ summary: orphanSummary(removal) }, [removal]);
        removed.push(removal);
      } catch (err) {
        // One stubborn resource does not stop the others; the next sweep tries it again.
        failed.push({ ...removal, error: errorMessage(err) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(REMOVE_CONCURRENCY, queue.length) }, lane));
  const order = (a: OrphanRemoval, b: OrphanRemoval) =>
    a.backend.localeCompare(b.backend) ||
    a.workspaceId.localeCompare(b.workspaceId) ||
    (a.generation ?? -1) - (b.generation ?? -1);
  removed.sort(order);
  failed.sort(order);
  if (removed.length > 0) log.info('orphans removed', { removed: removed.length, failed: failed.length });
  // After the workspaces' removals: a network goes once the last container of its org is gone.
  let networks: OrphanSweepResult['networks'];
  if (patched(PATCHES.orgNetworks) && found.networks) {
    networks = { counts: found.networks.counts, removed: [], failed: [] };
    for (const n of found.networks.removals) {
      try {
        const gone = await backend.removeOrphanNetwork.executeWithOptions(
          { summary: `remove network ${n.name} (${n.backend}): no workspace of org ${n.orgId} left` },
          [n],
        );
        if (gone) networks.removed.push(n);
      } catch (err) {
        networks.failed.push({ ...n, error: errorMessage(err) });
      }
    }
  }
  // Best effort, each: a stray mirror's next firing removes it anyway; a lost create can be deleted
  // meanwhile, a lost plugin request is also started by the plugin's next request, a lost cascade
  // by deleting the org again; and the next sweep tries each again.
  const schedulesRemoved = patched(PATCHES.straySchedules)
    ? await bestEffort('stray schedules', [], () =>
        find.removeStraySchedules.executeWithOptions(
          { summary: 'remove schedule mirrors of workspaces that are gone' },
          [],
        ),
      )
    : undefined;
  const lostCreates = patched(PATCHES.lostCreates)
    ? await bestEffort('lost creates', { resumed: [], failed: [] }, () =>
        find.resumeLostCreates.executeWithOptions(
          { summary: 'start the entities of creates whose own start never landed' },
          [],
        ),
      )
    : undefined;
  const pluginRequests = patched(PATCHES.pluginRequests)
    ? await bestEffort('lost plugin requests', { resumed: [], failed: [] }, () =>
        find.resumeLostPluginRequests.executeWithOptions(
          { summary: 'start the runs of plugin requests left in flight with none' },
          [],
        ),
      )
    : undefined;
  // A deleted org whose cascade never started keeps its workspaces running (and restarting) for good.
  const orgDeletes = patched(PATCHES.orgDeletes)
    ? await bestEffort('lost org cascades', { resumed: [], failed: [] }, () =>
        find.resumeOrgDeletes.executeWithOptions(
          { summary: 'start the cascades of deleted orgs whose own start never landed' },
          [],
        ),
      )
    : undefined;
  // Null: retention is off on the worker that ran it. Absent from the result then, as on old runs.
  const activity = patched(PATCHES.activityRetention)
    ? await bestEffort('old activity rows', null, () =>
        backend.pruneOldActivity.executeWithOptions(
          { summary: 'delete activity rows past the retention (ACTIVITY_RETENTION_DAYS)' },
          [],
        ),
      )
    : null;
  const history = patched(PATCHES.historyRetention)
    ? await bestEffort('old workspace history', null, () =>
        backend.pruneOldHistory.executeWithOptions(
          { summary: 'delete workspace history past the retention (HISTORY_RETENTION_DAYS)' },
          [],
        ),
      )
    : null;
  if (lostCreates?.resumed.length) log.info('lost creates resumed', { resumed: lostCreates.resumed.length });
  if (pluginRequests?.resumed.length)
    log.info('lost plugin requests resumed', { resumed: pluginRequests.resumed.length });
  if (orgDeletes?.resumed.length)
    log.info('lost org cascades started', { started: orgDeletes.resumed.length });
  return {
    startedAt,
    finishedAt: new Date().toISOString(),
    graceMs: input.graceMs,
    counts: {
      ...found.counts,
      // All found; `removed` + `failed` cover at most one page of them, the rest go next run.
      orphans: found.orphans ?? found.removals.length,
      removed: removed.length,
      failed: failed.length,
    },
    removed,
    failed,
    listErrors: found.listErrors,
    ...(schedulesRemoved ? { schedulesRemoved } : {}),
    ...(networks ? { networks } : {}),
    ...(lostCreates ? { lostCreates } : {}),
    ...(pluginRequests ? { pluginRequests } : {}),
    ...(orgDeletes ? { orgDeletes } : {}),
    ...(activity ? { activity } : {}),
    ...(history ? { history } : {}),
  };
}

export interface HealthSweepInput {
  staleMs: number;
}

export interface HealthSweepResult {
  startedAt: string;
  finishedAt: string;
  staleMs: number;
  counts: {
    checked: number;
    online: number;
    degraded: number;
    offline: number;
    unchanged: number;
    signalled: number;
    failed: number;
  };
  /** The workspaces whose entity got a verdict, with what it leads to. */
  signalled: Array<Pick<HealthFinding, 'workspaceId' | 'backend' | 'from' | 'to' | 'reason'>>;
  failed: Array<{ workspaceId: string; error: string }>;
  /** True when `signalled` or `failed` lists only their first entries (the counts are whole). */
  truncated?: boolean;
  listErrors: Array<{ backend: string; error: string }>;
}

/**
 * One health sweep: one DB query and one listing per backend (an activity), then a signal only to
 * each entity whose verdict differs from its status. The entity decides what follows (restart).
 */
export async function healthSweepWorkflow(input: HealthSweepInput): Promise<HealthSweepResult> {
  return counted(
    'health',
    async () => {
      if (!patched(PATCHES.healthInOneActivity)) return healthSweepPerFinding(input);
      const startedAt = new Date().toISOString();
      const outcome = await find.sweepHealth.executeWithOptions(
        { summary: `health sweep: heartbeats older than ${seconds(input.staleMs)}, one listing per backend` },
        [{ staleMs: input.staleMs }],
      );
      if (outcome.counts.signalled > 0)
        log.info('health verdicts signalled', { signalled: outcome.counts.signalled });
      return { startedAt, finishedAt: new Date().toISOString(), staleMs: input.staleMs, ...outcome };
    },
    (r) => ({
      outcome: r.counts.failed > 0 || r.listErrors.length > 0 ? 'partial' : 'ok',
      actions: { signalled: r.counts.signalled },
    }),
  );
}

/** The health sweep as runs started before PATCHES.healthInOneActivity replay it. */
async function healthSweepPerFinding(input: HealthSweepInput): Promise<HealthSweepResult> {
  const startedAt = new Date().toISOString();
  const check = await find.checkHealth({ staleMs: input.staleMs });
  const signalled: HealthSweepResult['signalled'] = [];
  const failed: HealthSweepResult['failed'] = [];
  const queue = [...check.changed];
  const lane = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const f = next;
      try {
        if ((await find.signalHealthFinding(f)) === 'signalled') {
          signalled.push({
            workspaceId: f.workspaceId,
            backend: f.backend,
            from: f.from,
            to: f.to,
            reason: f.reason,
          });
        }
      } catch (err) {
        // One entity that cannot be reached does not stop the others; the next sweep tries again.
        failed.push({ workspaceId: f.workspaceId, error: errorMessage(err) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(REMOVE_CONCURRENCY, queue.length) }, lane));
  signalled.sort((a, b) => a.workspaceId.localeCompare(b.workspaceId));
  failed.sort((a, b) => a.workspaceId.localeCompare(b.workspaceId));
  if (signalled.length > 0) log.info('health verdicts signalled', { signalled: signalled.length });
  return {
    startedAt,
    finishedAt: new Date().toISOString(),
    staleMs: input.staleMs,
    counts: { ...check.counts, signalled: signalled.length, failed: failed.length },
    signalled,
    failed,
    listErrors: check.listErrors,
  };
}

export interface BudgetSweepInput {
  policy: BudgetPolicy;
}

export interface BudgetSweepResult extends BudgetSweepOutcome {
  startedAt: string;
  finishedAt: string;
  policy: BudgetPolicy;
}

/**
 * One budget sweep: one query for every workspace at or over its budget, then (policy `stop`) a
 * stop Update to each one's entity, all in one activity. `notify` and `none` only report them.
 */
export async function budgetSweepWorkflow(input: BudgetSweepInput): Promise<BudgetSweepResult> {
  return counted(
    'budget',
    async () => {
      const startedAt = new Date().toISOString();
      const outcome = await find.sweepBudget.executeWithOptions(
        { summary: `budget sweep: workspaces at or over budget (policy ${input.policy})` },
        [{ policy: input.policy }],
      );
      if (outcome.counts.stopped > 0)
        log.info('over-budget workspaces stopped', { stopped: outcome.counts.stopped });
      return { startedAt, finishedAt: new Date().toISOString(), policy: input.policy, ...outcome };
    },
    (r) => ({
      outcome: r.counts.failed > 0 ? 'partial' : 'ok',
      actions: { stopped: r.counts.stopped },
    }),
  );
}

export interface OrgDeleteInput {
  orgId: string;
  /** How long to wait for the workspaces to reach `deleted` before a first sweep goes anyway. */
  waitMs: number;
  /** Pause between looks at the org's workspaces. */
  pollMs?: number;
  /** History length past which a long wait continues as new (default 2000; tests set it low). */
  continueAsNewAfterEvents?: number;
  /** Present only when continued-as-new (a long wait for a stuck delete): where it left off. */
  carried?: OrgDeleteCarried;
}

/** Sweeps by org that failed (each after its activity's own retries); the cascade went on. */
export interface SweepFailures {
  count: number;
  lastError: string;
}

/** Plain JSON carried through continue-as-new while the cascade waits past its deadline. */
export interface OrgDeleteCarried {
  workspaces: string[];
  stillDeleting: string[];
  swept: Record<string, string[]>;
  /** How many looks past the deadline so far (the pause between looks grows with it). */
  looks: number;
  sweepFailures?: SweepFailures;
}

export interface OrgDeleteResult {
  orgId: string;
  workspaces: string[];
  /** Workspaces still not `deleted` when the wait ran out (the cascade then waited on for them). */
  stillDeleting: string[];
  /** What the sweeps by org removed, per backend (ids; normally none). */
  swept: Record<string, string[]>;
  /** Present when a sweep by org failed: the cascade went on and swept again until one succeeded. */
  sweepFailures?: SweepFailures;
}

export const ORG_DELETE_PATCHES = {
  /**
   * The cascade ends only once no workspace of the org is left, and sweeps by org after that: a
   * workspace still deleting when the wait ran out (or whose entity started late) used to be left
   * to itself after one sweep.
   */
  waitForEveryWorkspace: 'org-delete-waits-for-every-workspace',
  /**
   * A sweep by org that fails after its activity's retries (an EC2 instance stuck shutting-down,
   * dockerd restarting) no longer fails the cascade: the one at the deadline is best effort, and
   * the last one is tried again until it succeeds.
   */
  sweepUntilDone: 'org-delete-sweeps-until-done',
} as const;

/** The longest pause between looks once the wait ran out (a delete retrying for hours). */
const LATE_POLL_MAX_MS = 60_000;
/** The longest pause between tries of a failing last sweep (each try is up to 3 attempts). */
const SWEEP_RETRY_MAX_MS = 300_000;

/**
 * Deletes every workspace of a deleted org through its entity, waits for them, then sweeps by the
 * org's label/tag so nothing of the org survives (a leak, or a create that raced the delete). A
 * workspace without an entity gets one that only deletes (see requestWorkspaceDelete). When the
 * wait runs out, a first sweep removes what it can at once; the cascade then waits on until no
 * workspace of the org is left and sweeps again, so the last sweep comes after the last delete.
 * A sweep that fails never ends the cascade: the first is best effort, the last is tried again
 * until it succeeds (in the result's `sweepFailures`).
 */
export async function orgDeleteWorkflow(input: OrgDeleteInput): Promise<OrgDeleteResult> {
  const pollMs = input.pollMs ?? 2000;
  // Workspaces whose entity has taken the delete (or had it already).
  const asked = new Set<string>();
  const ask = async (ids: string[]) => {
    for (const workspaceId of ids.filter((id) => !asked.has(id))) {
      // 'no-entity' came from activities before delete-only entities: ask again next look.
      const answer = await cascade.requestWorkspaceDelete.executeWithOptions(
        { summary: `delete workspace ${workspaceId} of org ${input.orgId} through its entity` },
        [{ workspaceId }],
      );
      if ((answer as string) !== 'no-entity') {
        asked.add(workspaceId);
      }
    }
  };
  const carried = input.carried;
  if (carried) return waitForEveryWorkspace(input, carried, ask);

  const workspaces = await listOrgWorkspaces(input.orgId);
  await ask(workspaces);
  const deadline = Date.now() + input.waitMs;
  let left = workspaces;
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(pollMs, {
      summary: `wait for the deletes of org ${input.orgId} (${left.length} left)`,
    });
    left = await listOrgWorkspaces(input.orgId);
    // A workspace created just before the org was deleted may have had no entity yet: ask again.
    for (const id of left) if (!workspaces.includes(id)) workspaces.push(id);
    await ask(left);
  }
  let swept: Record<string, string[]> = {};
  let sweepFailures: SweepFailures | undefined;
  try {
    swept = await sweepOrg(input.orgId);
  } catch (err) {
    // Best effort: the cascade waits on and sweeps again once no workspace is left.
    sweepFailures = sweepFailed(input.orgId, undefined, err);
  }
  const result = { orgId: input.orgId, workspaces, stillDeleting: left, swept };
  // Histories from before this change ended here, whatever was left.
  if ((left.length === 0 && !sweepFailures) || !patched(ORG_DELETE_PATCHES.waitForEveryWorkspace))
    return result;
  return waitForEveryWorkspace(
    input,
    { workspaces, stillDeleting: left, swept, looks: 0, ...(sweepFailures ? { sweepFailures } : {}) },
    ask,
  );
}

/**
 * Past the deadline (or after a failed sweep): looks again, with a growing pause, until none is
 * left, then sweeps again; a sweep that fails is tried again, after another look, until one succeeds.
 */
async function waitForEveryWorkspace(
  input: OrgDeleteInput,
  state: OrgDeleteCarried,
  ask: (ids: string[]) => Promise<void>,
): Promise<OrgDeleteResult> {
  const { workspaces } = state;
  let sweepFailures = state.sweepFailures;
  const pollMs = input.pollMs ?? 2000;
  for (let looks = state.looks; ; looks++) {
    const left = await listOrgWorkspaces(input.orgId);
    let waitMs: number;
    let summary: string;
    if (left.length === 0) {
      try {
        const last = await sweepOrg(input.orgId);
        const swept: Record<string, string[]> = { ...state.swept };
        for (const [name, ids] of Object.entries(last)) swept[name] = [...(swept[name] ?? []), ...ids];
        const result = { orgId: input.orgId, workspaces, stillDeleting: state.stillDeleting, swept };
        return sweepFailures ? { ...result, sweepFailures } : result;
      } catch (err) {
        sweepFailures = sweepFailed(input.orgId, sweepFailures, err);
      }
      waitMs = Math.min(SWEEP_RETRY_MAX_MS, pollMs * 2 ** Math.min(sweepFailures.count, 10));
      summary = `the sweep by org ${input.orgId} failed (${sweepFailures.count} so far): try again in ${seconds(waitMs)}`;
    } else {
      for (const id of left) if (!workspaces.includes(id)) workspaces.push(id);
      await ask(left);
      waitMs = Math.min(LATE_POLL_MAX_MS, pollMs * 2 ** Math.min(looks, 10));
      summary = `org ${input.orgId} still has ${left.length} left deleting: look again in ${seconds(waitMs)}`;
    }
    await sleep(waitMs, { summary });
    const historyMax = input.continueAsNewAfterEvents ?? 2000;
    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > historyMax) {
      await continueAsNew<typeof orgDeleteWorkflow>({
        ...input,
        carried: { ...state, looks: looks + 1, ...(sweepFailures ? { sweepFailures } : {}) },
      });
    }
  }
}

/**
 * A sweep by org that failed (after its activity's retries): counted and logged, so the cascade
 * goes on. Runs recorded before ORG_DELETE_PATCHES.sweepUntilDone failed here, and replay so.
 */
function sweepFailed(orgId: string, before: SweepFailures | undefined, err: unknown): SweepFailures {
  if (!patched(ORG_DELETE_PATCHES.sweepUntilDone)) throw err;
  const failures = { count: (before?.count ?? 0) + 1, lastError: errorMessage(err) };
  log.warn('sweep by org failed; the cascade goes on and sweeps again', { orgId, ...failures });
  return failures;
}

const listOrgWorkspaces = (orgId: string) =>
  db.orgWorkspaces.executeWithOptions({ summary: `list the workspaces of org ${orgId} not yet deleted` }, [
    { orgId },
  ]);

/** The sweep by the org's label/tag: whatever of the org is left on any backend. */
const sweepOrg = (orgId: string) =>
  backend.removeOrgResources.executeWithOptions(
    { summary: `remove every resource labelled with org ${orgId} (all backends)` },
    [{ orgId }],
  );

function orphanSummary(r: OrphanRemoval): string {
  const what = r.generation !== null ? resourceName(r.workspaceId, r.generation) : `ws-${r.workspaceId}`;
  const volumes = r.volumeIds ?? [];
  const how =
    r.backend !== 'ec2'
      ? 'docker'
      : [
          r.instanceIds.length > 0 ? `TerminateInstances ${r.instanceIds.join(' ')}` : '',
          volumes.length > 0 ? `DeleteVolume ${volumes.join(' ')}` : '',
        ]
          .filter(Boolean)
          .join(', ');
  return `remove orphan ${what} (${how}; ${r.reason})`;
}

/** A step whose failure is logged, not thrown: its result, or `empty` when it failed. */
async function bestEffort<T>(what: string, empty: T, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    log.warn(`${what} not swept`, { error: errorMessage(err) });
    return empty;
  }
}

function errorMessage(err: unknown): string {
  if (err instanceof ApplicationFailure) return err.message;
  const cause = (err as { cause?: { message?: string } }).cause;
  return cause?.message ?? (err as Error).message ?? String(err);
}
