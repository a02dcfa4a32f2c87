/**
 * The workspace entity workflow (`workspace:<id>`): owns the desired state of one workspace and
 * serializes every mutation. Handlers and activities are wired here; the decisions are decide.ts.
 * - config is saved inside the configure Update, and every (re)provision snapshots it from the DB;
 *   saves and snapshots run one after another, so a save's answer names the generation that
 *   actually boots it;
 * - `online` only on the agent's proof for the current generation + config hash, never on a timer;
 * - it never fails: an activity that still fails after its bounded retries moves the workspace to
 *   `failed` with the reason (its generation torn down, or discarded for the orphan sweep), and
 *   restart, stop, start and delete keep working from there; delete and stop retry with backoff
 *   until the backend confirms them, and try again at once when asked for again.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../../activities/index.js';
import {
  DbFailureType,
  FailureType,
  WorkspaceRestartsKey,
  WorkspaceStatusKey,
  WorkspaceStatusSinceKey,
  agentHealthSignal,
  agentLivenessSignal,
  agentReadySignal,
  configureUpdate,
  deleteUpdate,
  restartPolicyUpdate,
  restartUpdate,
  startUpdate,
  stateQuery,
  stopUpdate,
  platformStopUpdate,
  type Accepted,
  type AgentReady,
  type ConfigureInput,
  type ConfigureResult,
  type RequestDeadline,
  type RestartPolicyChange,
  type StopCause,
  type WorkspaceStatus,
  type WorkspaceWorkflowInput,
} from '../messages.js';
import {
  decide,
  DELETE_BACKOFF_INITIAL_MS,
  deleteBackoffMs,
  healthVerdict,
  historyAfterHealthy,
  restartPlan,
  restartSettings,
  startNeedsAction,
} from './decide.js';
import { carry, initialState, view } from './state.js';
import {
  bootDeadlineSummary,
  bootLogSummary,
  currentDetails,
  removeAllSummary,
  removeGenerationSummary,
  seconds,
  startSummary,
  statusProbeSummary,
  stopSummary,
  transitionSummary,
} from '../story.js';

const PERMANENT_DB_ERRORS: string[] = [DbFailureType.Data, DbFailureType.Integrity];

// Bounded: a DB that stays down for ~30 s fails the step (the workspace says why) instead of
// wedging the entity behind an activity retried for ever.
const DB_STEP = {
  startToCloseTimeout: '30s',
  retry: {
    initialInterval: '200ms',
    backoffCoefficient: 2,
    maximumInterval: '5s',
    maximumAttempts: 10,
    nonRetryableErrorTypes: PERMANENT_DB_ERRORS,
  },
} as const;
const db = proxyActivities<Activities>(DB_STEP);

/**
 * The same DB steps as local activities: run by the worker that runs the workflow task, without a
 * round trip through the server's activity queue (each one was a schedule, a poll and a completion,
 * i.e. tens of ms of a provision). Same timeout and retries. Only the first retries (0.2, 0.4, 0.8 s)
 * wait in the worker: a local backoff holds the workflow task open (queries and Updates wait with
 * it), so from 1 s on the retries wait on server timers, as a longer DB outage should.
 */
const localDb = proxyLocalActivities<Activities>({ ...DB_STEP, localRetryThreshold: '1s' });

// Backend calls heartbeat while they wait, so a dead worker is noticed in seconds, not minutes.
const BACKEND_RETRY = {
  initialInterval: '500ms',
  backoffCoefficient: 2,
  maximumInterval: '10s',
  maximumAttempts: 20,
  nonRetryableErrorTypes: ['BackendError.permanent', 'BackendError.not_configured'],
};
const BACKEND_CALL = { startToCloseTimeout: '10m', heartbeatTimeout: '10s', retry: BACKEND_RETRY };
const backend = proxyActivities<Activities>(BACKEND_CALL);
/**
 * The same calls, for a start a stop or a delete may cancel: the cancellation completes only once
 * the try in flight has ended (backend calls do not watch for it), so the stop or the removal that
 * follows never runs beside a start still creating things.
 */
const backendAwaitingCancel = proxyActivities<Activities>({
  ...BACKEND_CALL,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});
/**
 * A stop's or a delete's attempt: fewer tries, since the entity's own loop tries again for ever
 * and records each failed attempt on the workspace (`error`). Twenty tries of an ec2 call that
 * waits up to two minutes each (a volume still attached, an instance not yet terminated) kept the
 * workspace `stopping`/`deleting` for some 40 minutes with nothing said.
 */
const ATTEMPT_RETRY = { retry: { ...BACKEND_RETRY, maximumAttempts: 5 } };

/** A look at the backend before an automatic restart: quick and bounded (status never throws). */
const probe = proxyActivities<Activities>({
  startToCloseTimeout: '1m',
  retry: {
    initialInterval: '1s',
    maximumAttempts: 3,
    nonRetryableErrorTypes: ['BackendError.not_configured'],
  },
});

/** Patch ids: where this code emits commands that the code before it did not. */
export const PATCHES = {
  /** `start` on offline/degraded/failed boots (it used to be accepted and do nothing). */
  startBoots: 'start-boots-offline-degraded-failed',
  /** A restart asked for by a save that a provision in flight snapshots anyway boots no second time. */
  saveCoveredBySnapshot: 'save-covered-by-snapshot',
  /** A delete retrying past the history limit continues-as-new instead of growing one history. */
  deleteContinuesAsNew: 'delete-continues-as-new',
  /** The restart policy: automatic restarts of offline/degraded workspaces, and their timers. */
  autoRestart: 'auto-restart-policy',
  /** Operators' search attributes: when the status last changed, and the restarts of the streak. */
  statusSearchAttributes: 'status-since-restarts-search-attributes',
  /** An automatic restart first reads the backend; unreadable (an outage) holds the restart. */
  restartNeedsBackend: 'auto-restart-needs-backend',
  /** The DB-only steps (transitions, snapshots, config and policy saves) as local activities. */
  localDbSteps: 'db-steps-local-activities',
  /** The restart policy giving up tears the generation down (boot log kept, resource removed). */
  giveUpRemoves: 'auto-restart-give-up-removes-generation',
  /** A stop that fails is tried again with backoff instead of ending `failed` (resource running). */
  stopRetries: 'stop-retries-with-backoff',
  /** A delete accepted while a start runs cancels the start's further tries. */
  deleteCancelsStart: 'delete-cancels-start',
  /**
   * A stop cancels a start's further tries too, and a cancelled start's try in flight ends before
   * the stop or the delete goes on.
   */
  stopCancelsStart: 'stop-cancels-start',
  /** A boot left by a stop that a start withdrew boots again (it stayed mid-boot, idle). */
  resumeInterruptedBoot: 'resume-interrupted-boot',
  /** A start after a config save boots a new generation with it (not the stopped one, stale). */
  startBootsSavedConfig: 'start-boots-saved-config',
  /**
   * The DB steps' local activities run one at a time (an Update handler's beside the main loop's
   * used to overlap): a worker delivers overlapping ones' results in the order they ended, a
   * replay in the order they were scheduled, so the two could interleave the handler and the main
   * loop differently and a replaying worker failed the workflow task for good (nondeterminism).
   */
  serialLocalSteps: 'serial-local-db-steps',
  /**
   * A config save is a regular activity, so it runs only once its Update is in the history: as a
   * local one it ran inside the task that took the Update, and a task that then failed (a worker
   * killed in it, the SDK failing tasks after a crash) left the config saved although the Update,
   * delivered again past its caller's deadline, was refused: a 503 whose change went through.
   */
  saveAfterAcceptance: 'config-save-after-acceptance',
  /**
   * An Update with an answer time (RequestDeadline.answerByMs) makes its change in the task after
   * the one that accepted it, and only if that task starts before the answer time: a worker back
   * from a crash replays a whole history in the task that takes an Update (seconds), and the change
   * then came after the caller had been told 503, nothing changed.
   */
  applyAfterAcceptance: 'apply-after-acceptance',
  /**
   * The first DB step after an Update's answer-time check passed is a regular activity: a local
   * one ran inside the task that made the check, and a task that then failed (a worker killed in
   * it) was taken again past the answer time, refused the Update, and left the step's write (a
   * `stopping` the entity never went to, a generation prepared for a restart never made).
   */
  checkTaskWritesNothing: 'answer-time-check-task-writes-nothing',
  /**
   * A config save queued behind another looks at its answer time again when its turn comes: a save
   * that waited past it (the one before it slow, the machine stalled) fails `Expired`, unsaved.
   */
  queuedSaveRechecks: 'queued-config-save-rechecks-answer-time',
  /**
   * A start accepted after a stop that has not begun yet comes after that stop (the workspace
   * stops, then starts, and boots a config saved meanwhile) instead of withdrawing it: each call
   * is carried out in its order. Before it a stop and a start taken close together did nothing.
   */
  startAfterPendingStop: 'start-after-pending-stop',
  /**
   * A DELETE again while a failed delete waits for its next attempt is accepted (it used to be
   * refused, and answered 202 by the API all the same) and tries again now, as a stop again does:
   * a user whose backend is back need not wait out a backoff of up to five minutes.
   */
  deleteAgainRetriesNow: 'delete-again-retries-now',
  /**
   * What an Update taken while continue-as-new waited for the handlers in flight asks for is done
   * before continuing: a DELETE taken there was answered 202 and then dropped (not carried), the
   * workspace left running.
   */
  actBeforeContinueAsNew: 'act-before-continue-as-new',
  /**
   * Every patch above is decided once, in the run's first task, with this one marker: a run
   * started by this code uses all of them. Decided where each is first used, a decision could be
   * recorded one task later than a replay makes it: a query handed over with a task in which a
   * local step ends makes the SDK answer it and finish that task before the code after the step
   * runs, so that code's commands (a patch's marker among them) land in the next task, while a
   * replay resolves the step from its marker and runs that code in the first task, where the
   * patch is not yet in the history. The replay took the old branch and failed the workflow task
   * for good (TMPRL1100 on the query, and on every task after it).
   */
  decidedAtStart: 'patches-decided-at-start',
} as const;

type Outcome = 'ready' | 'timeout' | 'interrupted';

/**
 * Where a stop accepted but not begun leaves a workspace that a start then queues behind it
 * (startAfterPendingStop). Not a boot: a start that withdraws a stop from one boots a new
 * generation anyway (resume-interrupted-boot), or goes on booting, with the newest config.
 */
const STOP_NOT_BEGUN: readonly WorkspaceStatus[] = ['online', 'degraded', 'offline'];

interface TransitionOpts {
  message?: string;
  error?: string | null;
  /** Recorded with the transition: a generation given up whose removal failed. */
  discardedGeneration?: number;
}

export async function workspaceWorkflow(input: WorkspaceWorkflowInput): Promise<void> {
  // First, before any other command (PATCHES.decidedAtStart). Runs recorded before it decide each
  // patch where it is used, and replay so.
  const decidedAtStart = patched(PATCHES.decidedAtStart);
  const uses = (patchId: string): boolean => decidedAtStart || patched(patchId);
  const { workspaceId, backend: backendName } = input;
  const s = initialState(workspaceId, input.carried);
  let policy = restartSettings(input.restartPolicy);
  /** The policy changed (restartPolicyUpdate): the main loop looks at the restart policy again. */
  let policyChanged = false;
  /** The restart counters changed since the DB last got them. */
  let restartDirty = false;
  let ready: AgentReady | null = null;
  let configSavesInFlight = 0;
  /** The generation a provision in flight is about to snapshot; null once it has (or gave up). */
  let pendingSnapshot: number | null = null;
  // Config saves and generation snapshots run one after another in acceptance order: the DB ends
  // with the last save, and each save knows which snapshot (generation) is the first to hold it.
  let configChain: Promise<unknown> = Promise.resolve();
  /** The local DB step in flight (PATCHES.serialLocalSteps): the next one starts after it. */
  let localStepChain: Promise<unknown> = Promise.resolve();
  /**
   * An answer-time check passed (PATCHES.checkTaskWritesNothing): the next DB step is a regular
   * activity, so it runs only once the task that made the check is in the history.
   */
  let nextStepAfterCommit = false;
  /** Runs a DB-only step: a local activity, or (histories from before) a regular one. */
  const dbStep = <T>(call: (steps: typeof db) => Promise<T>): Promise<T> => {
    if (!uses(PATCHES.localDbSteps)) return call(db);
    if (!uses(PATCHES.serialLocalSteps)) return call(localDb);
    const run = localStepChain.then(() => {
      if (!nextStepAfterCommit) return call(localDb);
      nextStepAfterCommit = false;
      return call(db);
    });
    localStepChain = run.catch(() => undefined);
    return run;
  };
  const serialized = <T>(step: () => Promise<T>): Promise<T> => {
    const next = configChain.then(step);
    configChain = next.catch(() => undefined);
    return next;
  };

  const rejectIfGone = () => {
    if (s.deleteRequested || s.status === 'deleted') {
      const what = s.status === 'deleted' ? 'deleted' : 'being deleted';
      throw ApplicationFailure.create({
        type: FailureType.Deleted,
        message: `workspace is ${what}`,
        nonRetryable: true,
        // Read by a DELETE that finds the workspace deleted: it is accepted again, with this status.
        details: [{ status: s.status === 'deleted' ? 'deleted' : 'deleting' }],
      });
    }
  };
  /** An Update its caller stopped waiting for: refused or failed, nothing changed (the API: 503). */
  const expired = (what: string) =>
    ApplicationFailure.create({
      type: FailureType.Expired,
      message: `the ${what} after its caller stopped waiting; nothing was changed`,
      nonRetryable: true,
    });
  /** Workflow time is the task's start: an Update that came after its caller gave up is refused. */
  const rejectIfExpired = (d: RequestDeadline | undefined) => {
    if (d?.notAfterMs !== undefined && Date.now() > d.notAfterMs) {
      throw expired('request reached the workspace');
    }
  };
  /** A lifecycle Update's validator: in time, and the workspace not deleted or being deleted. */
  const admit = (d?: RequestDeadline) => {
    rejectIfExpired(d);
    rejectIfGone();
  };
  /**
   * A delete's: in time, and not deleted yet. A delete under way may be asked for again once per
   * attempt: the repeats after it are refused (the API answers them 202 all the same), so a client
   * sending DELETE in a loop adds nothing to the history.
   */
  const admitDelete = (d?: RequestDeadline) => {
    rejectIfExpired(d);
    if (s.status === 'deleted' || deleteAgainTaken) rejectIfGone();
  };
  /** Workflow time (the task's start) is past the caller's answer time: its answer would come too late. */
  const pastAnswerTime = (d: RequestDeadline | undefined) =>
    d?.answerByMs !== undefined && Date.now() > d.answerByMs;
  /**
   * Waits for the task after the one that accepted the Update (its acceptance is then in the
   * history), and fails it `Expired`, with nothing changed, when that task starts past the caller's
   * answer time (PATCHES.applyAfterAcceptance). Updates without one (the platform's own) go on at once.
   */
  const afterAcceptance = async (d: RequestDeadline | undefined): Promise<void> => {
    if (d?.answerByMs === undefined || !uses(PATCHES.applyAfterAcceptance)) return;
    await sleep(1);
    if (pastAnswerTime(d)) throw expired('workspace took the request');
    // This task's start decided; a task taken again later decides otherwise, so it writes nothing.
    if (uses(PATCHES.checkTaskWritesNothing)) nextStepAfterCommit = true;
  };
  const accepted = () => ({ accepted: true as const, status: s.status });
  const historyLimit = input.continueAsNewAfterEvents ?? 2000;
  const shouldContinueAsNew = () =>
    workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= historyLimit;
  /** Transitions recorded by this run: numbers each one's step (recordTransition writes it once). */
  let transitionSteps = 0;
  /** Set when a delete stops retrying in this run: the failed attempts the next run goes on from. */
  let deleteContinuesAfter: number | null = null;
  /** A DELETE again was taken since the last delete attempt began (it may yet fail `Expired`). */
  let deleteAgainTaken = false;
  /** …and passed its answer-time check: the next attempt need not wait. */
  let deleteAgain = false;
  /** Any new request is a new goal: a halted entity tries again. */
  const newRequest = () => {
    s.halted = false;
    // A failed stop waiting for its next attempt: this request decides what comes next.
    s.stopAttempts = 0;
    s.stopRetryAtMs = null;
    // The latest request decides: a start queued after a stop (startAfterPendingStop) goes.
    s.startAfterStop = false;
    // The user took over: the automatic restarts start a new streak.
    if (s.restartHistory.length > 0) {
      s.restartHistory = [];
      restartDirty = true;
    }
  };

  setHandler(stateQuery, () => view(s));
  setHandler(agentReadySignal, (r) => {
    ready = r;
  });
  setHandler(agentHealthSignal, (h) => {
    s.health = h;
    s.healthPending = true;
  });
  setHandler(agentLivenessSignal, (l) => {
    s.liveness = l;
    s.healthPending = true;
    // The backend answers again: a restart held for its outage need not wait any longer.
    if (l.resourceStatus !== 'unknown') s.restartHeldUntilMs = null;
  });

  setHandler(
    configureUpdate,
    async (change): Promise<ConfigureResult> => {
      await afterAcceptance(change);
      configSavesInFlight++;
      try {
        const { configHash, generation, covered } = await serialized(async () => {
          // Its turn may come long after its check (saves before it are slow): the caller may be
          // gone, told 503.
          if (pastAnswerTime(change) && uses(PATCHES.queuedSaveRechecks)) {
            throw expired('config save came to its turn');
          }
          const save = (d: typeof db) =>
            d.saveConfig.executeWithOptions(
              { summary: `save config${change.restart ? ' (restart follows)' : ''}` },
              [{ workspaceId, runtime: change.runtime, config: change.config }],
            );
          const saved = await (uses(PATCHES.saveAfterAcceptance) ? save(db) : dbStep(save));
          s.latestSavedVersion = Math.max(s.latestSavedVersion, saved.configVersion);
          // The next snapshot is the first to hold this save, and snapshots number generations
          // in order: that generation runs this config (now if a restart follows, else when one does).
          return {
            configHash: saved.configHash,
            generation: s.generation + 1,
            covered: pendingSnapshot !== null,
          };
        });
        // A provision in flight snapshots after this save: it boots this config already, and a
        // restart now would only interrupt it and boot the same config as a later generation.
        const bootedAnyway = change.restart && covered && uses(PATCHES.saveCoveredBySnapshot);
        if (change.restart && !bootedAnyway) {
          newRequest();
          s.restartPending = true;
          s.desired = 'running';
          s.startPending = false;
        }
        return { generation, configHash };
      } catch (err) {
        throw isExpired(err) ? err : configureFailure(err);
      } finally {
        configSavesInFlight--;
      }
    },
    { validator: (change: ConfigureInput) => admit(change) },
  );

  // The new policy is saved, then used for the next restart decision; `input` carries it through
  // continue-as-new. No command of the main loop changes, so histories without it replay as before.
  setHandler(
    restartPolicyUpdate,
    async (change) => {
      await afterAcceptance(change);
      try {
        await dbStep((d) =>
          d.saveRestartPolicy.executeWithOptions(
            { summary: `save restart policy ${change.override ?? 'default'}` },
            [{ workspaceId, override: change.override }],
          ),
        );
      } catch (err) {
        throw ApplicationFailure.create({
          type: FailureType.Unavailable,
          message: `restart policy could not be saved: ${failureMessage(err)}`,
          nonRetryable: true,
        });
      }
      input.restartPolicy = { ...input.restartPolicy, policy: change.policy };
      policy = restartSettings(input.restartPolicy);
      policyChanged = true;
      return { restartPolicy: policy.policy };
    },
    { validator: (change: RestartPolicyChange) => admit(change) },
  );

  setHandler(
    restartUpdate,
    async (d?: RequestDeadline) => {
      await afterAcceptance(d);
      newRequest();
      s.restartPending = true;
      s.desired = 'running';
      s.startPending = false;
      return accepted();
    },
    { validator: admit },
  );
  /**
   * A stop accepted that the main loop has not begun: the workspace still runs. (A stop under way,
   * or a refused one, is taken over by a start as before; a failed one needs no stop.)
   */
  const stopNotBegun = () => s.desired === 'stopped' && STOP_NOT_BEGUN.includes(s.status);
  /** The latest stop request says why: a user's stop after the platform's carries no cause. */
  function requestStop(cause: StopCause | null): Accepted {
    newRequest();
    s.desired = 'stopped';
    s.startPending = false;
    s.stopCause = cause;
    return accepted();
  }
  setHandler(
    stopUpdate,
    async (d?: RequestDeadline) => {
      await afterAcceptance(d);
      return requestStop(null);
    },
    { validator: admit },
  );
  setHandler(platformStopUpdate, (cause) => requestStop(cause), {
    validator: (_cause: StopCause) => rejectIfGone(),
  });
  setHandler(
    startUpdate,
    async (d?: RequestDeadline) => {
      await afterAcceptance(d);
      newRequest();
      if (stopNotBegun() && uses(PATCHES.startAfterPendingStop)) {
        s.startAfterStop = true;
        return accepted();
      }
      s.desired = 'running';
      if (startNeedsAction(s.status, s.busy)) s.startPending = true;
      return accepted();
    },
    { validator: admit },
  );
  setHandler(
    deleteUpdate,
    async (d?: RequestDeadline) => {
      // Asked for again while under way: a failed attempt's wait ends now (deleteAgainRetriesNow).
      const again = s.deleteRequested;
      if (again) deleteAgainTaken = true;
      try {
        await afterAcceptance(d);
      } catch (err) {
        if (again) deleteAgainTaken = false; // changed nothing: the next DELETE may ask again
        throw err;
      }
      if (again) deleteAgain = true;
      s.deleteRequested = true;
      return accepted();
    },
    { validator: admitDelete },
  );

  /** The UI's current details: status, generation, phase, restarts, last error. */
  const showDetails = () =>
    setCurrentDetails(
      currentDetails({
        status: s.status,
        phase: s.phase,
        generation: s.generation,
        backend: backendName,
        workspaceId,
        error: s.error,
        restarts: s.restartHistory.length,
        lastRestartReason: s.lastRestartReason,
        sinceMs: s.statusSinceMs,
      }),
    );
  showDetails();

  /** Removes one generation's resource (the one a restart replaces, or a failed boot's). */
  const removeGeneration = (generation: number) =>
    backend.removeResource.executeWithOptions(
      { summary: removeGenerationSummary(backendName, workspaceId, generation) },
      [{ workspaceId, backend: backendName, generation }],
    );

  /** Sets the status and records it; a record that keeps failing is logged, never fatal. */
  async function setStatus(
    status: WorkspaceStatus,
    phase: string | null = null,
    opts: TransitionOpts = {},
  ): Promise<void> {
    await recordStatus(status, phase, opts).catch((err: unknown) => {
      log.warn('could not record a transition', { status, error: failureMessage(err) });
    });
  }

  /** Like setStatus, but the caller learns that the record failed (delete must record `deleted`). */
  async function recordStatus(
    status: WorkspaceStatus,
    phase: string | null,
    opts: TransitionOpts,
  ): Promise<void> {
    const now = Date.now();
    if (status !== s.status) {
      if (s.status === 'online' && s.restartHistory.length > 0) {
        const kept = historyAfterHealthy(s.restartHistory, s.statusSinceMs, now, policy);
        if (kept.length !== s.restartHistory.length) restartDirty = true;
        s.restartHistory = kept;
      }
      s.statusSinceMs = now;
    }
    s.status = status;
    s.phase = phase;
    s.error = opts.error ?? (status === 'failed' ? s.error : null);
    showDetails();
    upsertSearchAttributes([{ key: WorkspaceStatusKey, value: status }]);
    if (uses(PATCHES.statusSearchAttributes)) {
      upsertSearchAttributes([
        { key: WorkspaceStatusSinceKey, value: new Date(s.statusSinceMs) },
        { key: WorkspaceRestartsKey, value: s.restartHistory.length },
      ]);
    }
    const restart = restartDirty
      ? { count: s.restartHistory.length, lastReason: s.lastRestartReason }
      : undefined;
    // Taken now: a step waiting for the one in flight records the state of this transition.
    const summary = transitionSummary(status, phase, s.generation);
    const transition = {
      // The same on every try of this step (a timed-out task's and its retry's): written once.
      step: `${workflowInfo().runId}/${++transitionSteps}`,
      workspaceId,
      generation: s.generation,
      status,
      phase,
      message: opts.message ?? null,
      error: s.error,
      ...(restart ? { restart } : {}),
      ...(opts.discardedGeneration !== undefined ? { discardedGeneration: opts.discardedGeneration } : {}),
    };
    await dbStep((d) => d.recordTransition.executeWithOptions({ summary }, [transition]));
    if (restart) restartDirty = false;
  }

  /** `discarded`: a generation given up whose removal failed (the orphan sweep removes it then). */
  const fail = (error: string, discarded?: number) =>
    setStatus('failed', null, {
      error,
      message: error,
      ...(discarded !== undefined ? { discardedGeneration: discarded } : {}),
    });

  const interrupted = () => s.deleteRequested || s.desired === 'stopped' || s.restartPending;

  /** Set where a boot was interrupted: the patch applies from then on (decide reads it). */
  let resumesInterruptedBoot = false;
  const interruptedBoot = () => {
    resumesInterruptedBoot ||= uses(PATCHES.resumeInterruptedBoot);
  };

  async function waitReady(generation: number, configHash: string): Promise<Outcome> {
    const proven = () => ready !== null && ready.generation === generation && ready.configHash === configHash;
    const done = await condition(() => proven() || interrupted(), input.bootDeadlineMs, {
      summary: bootDeadlineSummary(workspaceId, generation, input.bootDeadlineMs),
    });
    if (proven()) return 'ready';
    return done ? 'interrupted' : 'timeout';
  }

  /**
   * Runs `step` (a backend call), cancelled once `stopAsked` holds (a delete, or a stop, is
   * accepted): a start retried for long (an ec2 volume that does not come free, 20 tries of up to
   * two minutes each) no longer holds the delete or the stop back until its tries run out. No
   * further try starts; with `backendAwaitingCancel` the try in flight ends before this returns.
   * `onCancel` runs when it is cancelled here.
   */
  async function untilStopAsked<T>(
    step: () => Promise<T>,
    stopAsked: () => boolean,
    onCancel: () => void,
  ): Promise<T> {
    const stepScope = new CancellationScope();
    const watchScope = new CancellationScope();
    const done = stepScope.run(step);
    const asked = watchScope.run(() => condition(stopAsked));
    asked.catch(() => undefined); // cancelled below once the step ends
    try {
      await Promise.race([
        done.then(
          () => undefined,
          () => undefined,
        ),
        asked,
      ]);
      if (stopAsked()) {
        stepScope.cancel();
        onCancel();
      }
      return await done;
    } finally {
      watchScope.cancel();
    }
  }

  /**
   * Boot deadline or permanent error: keep the console output, tear the resource down, say why.
   * Compensation never throws: what it could not do is logged and added to the reason.
   */
  async function failGeneration(generation: number, error: string): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      await backend.captureBootLog
        .executeWithOptions({ summary: bootLogSummary(backendName, workspaceId, generation) }, [
          { workspaceId, backend: backendName, generation },
        ])
        .catch((e: unknown) => {
          log.warn('could not capture boot log', { error: failureMessage(e) });
        });
      try {
        await removeGeneration(generation);
      } catch (e) {
        log.warn('could not remove a failed generation', { generation, error: failureMessage(e) });
        await fail(`${error}; removing generation ${generation} failed: ${failureMessage(e)}`, generation);
        return;
      }
      await fail(error);
    });
  }

  async function provision(kind: 'provisioning' | 'restarting'): Promise<void> {
    const previous = s.generation;
    const generation = previous + 1;
    pendingSnapshot = generation;
    try {
      await prepareAndBoot(kind, previous, generation);
    } finally {
      pendingSnapshot = null;
    }
  }

  async function prepareAndBoot(
    kind: 'provisioning' | 'restarting',
    previous: number,
    generation: number,
  ): Promise<void> {
    await setStatus(kind, 'preparing');
    // Let accepted config saves land first, so this boot snapshots the newest config.
    await condition(() => configSavesInFlight === 0);
    if (previous > 0) {
      try {
        await removeGeneration(previous);
      } catch (err) {
        await fail(`removing generation ${previous} failed: ${failureMessage(err)}`, previous);
        return;
      }
    }
    let snapshot: { runtime: string; configVersion: number };
    try {
      snapshot = await serialized(async () => {
        const snap = await dbStep((d) =>
          d.prepareGeneration.executeWithOptions(
            { summary: `snapshot the saved config for generation ${generation}` },
            [{ workspaceId, generation }],
          ),
        );
        s.generation = generation;
        s.configHash = snap.configHash;
        s.generationConfigVersion = snap.configVersion;
        pendingSnapshot = null;
        return snap;
      });
    } catch (err) {
      await fail(`preparing generation ${generation} failed: ${failureMessage(err)}`);
      return;
    }
    await boot(kind, 'creating', snapshot.runtime, snapshot.configVersion);
  }

  /**
   * Starts the current generation's resource and waits for the agent's proof. `snapshotVersion` is
   * set for a new generation: a config saved while it booted supersedes it (boot again rather than
   * declare online a workspace running anything but the last saved config).
   */
  async function boot(
    status: 'provisioning' | 'restarting',
    phase: 'creating' | 'starting',
    runtime: string | null,
    snapshotVersion: number | null,
  ): Promise<void> {
    const { generation } = s;
    const configHash = s.configHash ?? '';
    ready = null;
    s.liveness = null;
    await setStatus(status, phase);
    const cancellable = uses(PATCHES.deleteCancelsStart);
    const stopCancels = cancellable && uses(PATCHES.stopCancelsStart);
    const startOnce = () =>
      (stopCancels ? backendAwaitingCancel : backend).startResource.executeWithOptions(
        { summary: startSummary(backendName, workspaceId, generation, phase) },
        [{ workspaceId, orgId: input.orgId, backend: backendName, generation, runtime }],
      );
    const stopAsked = () => s.deleteRequested || (stopCancels && s.desired === 'stopped');
    let cancelled = false;
    try {
      await (cancellable ? untilStopAsked(startOnce, stopAsked, () => (cancelled = true)) : startOnce());
    } catch (err) {
      // Cancelled, or failed once a delete was accepted: the delete (or the stop) deals with
      // whatever the start made, with no failed generation to record first.
      if (cancellable && (s.deleteRequested || cancelled)) {
        if (cancelled) interruptedBoot();
        return;
      }
      await failGeneration(generation, failureMessage(err));
      return;
    }
    // A try that ended well although a stop or a delete cancelled it goes on as any start does:
    // waitReady sees the stop or the delete (or, a start having withdrawn the stop, the agent).
    await setStatus(status, 'booting');
    const outcome = await waitReady(generation, configHash);
    if (outcome === 'interrupted') interruptedBoot();
    if (outcome === 'timeout') {
      await failGeneration(generation, `boot deadline of ${input.bootDeadlineMs} ms exceeded`);
    } else if (outcome === 'ready') {
      await condition(() => configSavesInFlight === 0);
      if (snapshotVersion !== null && s.latestSavedVersion > snapshotVersion) s.restartPending = true;
      else await setStatus('online', 'platform-health-ok');
    }
  }

  /**
   * Stops the current generation's resource. One that the backend keeps refusing is tried again
   * with the delete's backoff (the main loop's timer, so continue-as-new carries it): `failed` with
   * the resource still running would be left running by every sweep. The workspace stays `stopping`
   * with the reason meanwhile; any new request (start, restart, stop, delete) takes over.
   */
  async function stop(): Promise<void> {
    // A retry is the same stop: its `stopping` is recorded already, with the last failure.
    const cause = s.stopCause;
    if (s.stopAttempts === 0) await setStatus('stopping', cause?.phase ?? null, causeOpts(cause));
    s.stopRetryAtMs = null;
    try {
      await backend.stopResource.executeWithOptions(
        { ...ATTEMPT_RETRY, summary: stopSummary(backendName, workspaceId, s.generation, s.stopAttempts) },
        [{ workspaceId, backend: backendName, generation: s.generation }],
      );
    } catch (err) {
      const reason = failureMessage(err);
      if (!uses(PATCHES.stopRetries)) {
        // Histories from before: no retry; the next stop (or restart, start, delete) tried again.
        s.halted = true;
        await fail(`stop failed: ${reason}`);
        return;
      }
      const attempt = s.stopAttempts + 1;
      const waitMs = deleteBackoffMs(s.stopAttempts);
      // A start or restart accepted while this attempt ran takes over (decide: from `stopping`).
      const again = s.desired === 'stopped';
      s.stopAttempts = again ? attempt : 0;
      s.stopRetryAtMs = again ? Date.now() + waitMs : null;
      log.warn('stop attempt failed', { attempt, waitMs: again ? waitMs : null, error: reason });
      const next = again ? `; next attempt in ${seconds(waitMs)}` : '';
      await setStatus('stopping', cause?.phase ?? null, {
        message: `stop attempt ${attempt} failed: ${reason}${next}`,
        error: `stop failed: ${reason}`,
      });
      return;
    }
    s.stopAttempts = 0;
    s.stopCause = null;
    await setStatus('stopped', cause?.phase ?? null, causeOpts(cause));
  }

  const causeOpts = (cause: StopCause | null): TransitionOpts => (cause ? { message: cause.message } : {});

  /** Same generation again (stop/start, offline): the resource and its config snapshot are kept. */
  const start = () => boot('provisioning', 'starting', null, null);

  /**
   * A failed delete attempt's wait, ended early by a DELETE again. Never sooner than the first
   * backoff after the attempt: a client sending DELETE in a loop gets no busy loop on the backend.
   */
  async function deleteWait(waitMs: number, summary: string): Promise<void> {
    const from = Date.now();
    const asked = await condition(() => deleteAgain, waitMs, {
      summary: `${summary} (or at a DELETE again)`,
    });
    if (!asked) return;
    const gapMs = DELETE_BACKOFF_INITIAL_MS - (Date.now() - from);
    if (gapMs <= 0) return;
    await sleep(gapMs, { summary: `wait ${seconds(gapMs)} before the delete attempt asked for again` });
  }

  /**
   * Removes everything, retrying with growing waits until the backend confirms it gone. A delete
   * that keeps failing for days would grow one history to the server's hard limit (which terminates
   * the workflow, leaving the row `deleting` for good): past the history limit it stops here and the
   * main loop continues-as-new, the next run going on with the same backoff.
   */
  async function remove(): Promise<void> {
    await setStatus('deleting');
    await CancellationScope.nonCancellable(async () => {
      for (let attempt = input.carried?.deleting?.attempts ?? 0; ; attempt++) {
        // A DELETE during this attempt counts: it may have come once the backend was back.
        deleteAgain = false;
        deleteAgainTaken = false;
        try {
          await backend.removeResource.executeWithOptions(
            { ...ATTEMPT_RETRY, summary: removeAllSummary(backendName, workspaceId, attempt) },
            [{ workspaceId, backend: backendName, volumes: true }],
          );
          await db.finalizeDelete.executeWithOptions(
            { summary: `finalize the delete of workspace ${workspaceId}` },
            [{ workspaceId }],
          );
          await recordStatus('deleted', null, {});
          return;
        } catch (err) {
          const waitMs = deleteBackoffMs(attempt);
          const reason = failureMessage(err);
          const againRetriesNow = uses(PATCHES.deleteAgainRetriesNow);
          log.warn('delete attempt failed; retrying', { attempt, waitMs, error: reason });
          const when = againRetriesNow ? `; next attempt in ${seconds(waitMs)}, or at a DELETE again` : '';
          await setStatus('deleting', null, {
            message: `delete attempt ${attempt + 1} failed: ${reason}${when}`,
            error: `delete failed: ${reason}`,
          });
          const summary = `wait ${seconds(waitMs)} before delete attempt ${attempt + 2}`;
          if (againRetriesNow) await deleteWait(waitMs, summary);
          else await sleep(waitMs, { summary });
          if (shouldContinueAsNew() && uses(PATCHES.deleteContinuesAsNew)) {
            deleteContinuesAfter = attempt + 1;
            return;
          }
        }
      }
    });
  }

  async function applyHealth(): Promise<void> {
    s.healthPending = false;
    const verdict = healthVerdict(s.status, s.generation, s.health, s.liveness);
    if (verdict && verdict.status !== s.status) {
      // Degraded or offline, the workspace itself says why (its `error`), not only its transitions.
      await setStatus(verdict.status, verdict.status === 'online' ? 'platform-health-ok' : null, {
        message: verdict.reason,
        ...(verdict.status === 'online' ? {} : { error: verdict.reason }),
      });
    }
  }

  /** Runs one operation; whatever escapes it (a bug, an unexpected failure) fails the workspace only. */
  const run = async (op: () => Promise<void>) => {
    s.busy = true;
    try {
      await op();
    } catch (err) {
      log.error('operation failed unexpectedly', { error: failureMessage(err) });
      await fail(`internal error: ${failureMessage(err)}`);
    } finally {
      s.busy = false;
    }
  };

  const currentPlan = () =>
    restartPlan({
      status: s.status,
      sinceMs: s.statusSinceMs,
      nowMs: Date.now(),
      history: s.restartHistory,
      settings: policy,
      heldUntilMs: s.restartHeldUntilMs,
    });

  /**
   * Acts on the restart policy when nothing else is due (user stop/delete/restart always come
   * first): restarts at a new generation, or fails with the history. True when it did something.
   */
  async function autoRestart(): Promise<boolean> {
    const p = currentPlan();
    if (p.kind === 'none' || p.kind === 'later') return false;
    // Histories from before the restart policy left offline/degraded workspaces as they were.
    if (!uses(PATCHES.autoRestart)) return false;
    if (p.kind === 'fail') {
      restartDirty = true;
      // Nothing will use this generation again: tear it down as a failed boot is (console kept,
      // resource removed, or marked discarded for the orphan sweep), or it would run (and bill) on
      // unseen: no sweep looks at a `failed` workspace's current generation.
      if (uses(PATCHES.giveUpRemoves)) await failGeneration(s.generation, p.reason);
      else await fail(p.reason);
      return true;
    }
    let reason = p.reason;
    if (uses(PATCHES.restartNeedsBackend)) {
      // Booting into a backend whose API is down only fails (then `failed`, for good): hold the
      // restart and look again after another degraded period, or as soon as a listing answers.
      const seen = await lookBeforeRestart();
      if (seen === 'unreadable') {
        s.restartHeldUntilMs = Date.now() + policy.degradedAfterMs;
        log.info('automatic restart held: the backend cannot be read', { generation: s.generation });
        return false;
      }
      if (next().kind !== 'wait') return true; // something came in meanwhile: it goes first
      // The look found the resource gone or stopped (say, the backend came back from an outage
      // without it, before any sweep said so): the workspace is offline, whatever the stale
      // heartbeats made it (degraded), and the restart says so, as the sweep's verdict would.
      if (seen === 'missing' || seen === 'stopped') reason = 'offline';
    }
    s.restartHistory = [...s.restartHistory, { atMs: Date.now(), generation: s.generation, reason }];
    s.lastRestartReason = reason;
    restartDirty = true;
    log.info('automatic restart', {
      generation: s.generation,
      reason,
      count: s.restartHistory.length,
    });
    await run(() => provision('restarting'));
    return true;
  }

  /**
   * What the backend says of the current generation's resource before a restart: `unreadable` when
   * it answers `unknown` or the look itself failed (a hung endpoint times out). An unconfigured
   * backend is not an outage (`not-configured`): the restart goes ahead and fails with that
   * reason, as before.
   */
  async function lookBeforeRestart(): Promise<
    'running' | 'stopped' | 'missing' | 'unreadable' | 'not-configured'
  > {
    try {
      const seen = await probe.resourceStatus.executeWithOptions(
        { summary: statusProbeSummary(backendName, workspaceId, s.generation) },
        [{ workspaceId, backend: backendName, generation: s.generation }],
      );
      return seen === 'unknown' ? 'unreadable' : seen;
    } catch (err) {
      const cause = err instanceof ActivityFailure ? err.cause : undefined;
      if (cause instanceof ApplicationFailure && cause.type === 'BackendError.not_configured') {
        return 'not-configured';
      }
      log.warn('could not read the backend before a restart', { error: failureMessage(err) });
      return 'unreadable';
    }
  }

  /** When the restart policy next needs a look (a backoff, a degraded threshold, a healthy reset). */
  function policyWakeAt(): number | null {
    const p = currentPlan();
    if (p.kind === 'later') return p.atMs;
    if (s.status === 'online' && s.restartHistory.length > 0) return s.statusSinceMs + policy.healthyResetMs;
    return null;
  }

  /** What the restart policy's timer waits for, for the UI. */
  function policyWakeSummary(waitMs: number): string {
    const p = currentPlan();
    if (p.kind === 'later')
      return `restart policy: look at the ${s.status} workspace again in ${seconds(waitMs)}`;
    return `restart policy: the streak of ${s.restartHistory.length} restarts resets after ${seconds(waitMs)} online`;
  }

  /** Online long enough: the streak is over (the count shown goes back to 0). */
  async function resetIfHealthy(): Promise<void> {
    if (s.status !== 'online' || s.restartHistory.length === 0) return;
    const kept = historyAfterHealthy(s.restartHistory, s.statusSinceMs, Date.now(), policy);
    if (kept.length === s.restartHistory.length) return;
    s.restartHistory = kept;
    restartDirty = true;
    await setStatus('online', s.phase, { message: 'restart count reset after a healthy period' });
  }

  if (!input.carried) await run(() => provision('provisioning'));

  const stopHeld = () => s.stopRetryAtMs !== null && Date.now() < s.stopRetryAtMs;
  /**
   * A config was saved (without a restart) after the current generation took its snapshot: starting
   * that generation again would run the old config, though the save's answer named the next
   * generation as the one running it. Such a start boots that generation instead.
   */
  const staleConfig = () =>
    s.generationConfigVersion !== null &&
    s.latestSavedVersion > s.generationConfigVersion &&
    uses(PATCHES.startBootsSavedConfig);
  const next = () =>
    decide({ ...s, continueAsNew: shouldContinueAsNew(), stopHeld: stopHeld(), resumesInterruptedBoot });

  const wake = () => next().kind !== 'wait' || policyChanged;
  for (;;) {
    policyChanged = false;
    if (next().kind === 'wait' && (await autoRestart())) continue;
    const wakeAt = policyWakeAt();
    if (s.stopRetryAtMs !== null && s.desired === 'stopped') {
      // A failed stop's next attempt (set only on the stopRetries path); a new request comes first.
      const waitMs = Math.max(1, s.stopRetryAtMs - Date.now());
      await condition(wake, waitMs, {
        summary: `wait ${seconds(waitMs)} before stop attempt ${s.stopAttempts + 1}`,
      });
    } else if (wakeAt !== null && uses(PATCHES.autoRestart)) {
      const waitMs = Math.max(1, wakeAt - Date.now());
      if (!(await condition(wake, waitMs, { summary: policyWakeSummary(waitMs) }))) {
        await resetIfHealthy();
        continue;
      }
    } else {
      await condition(wake);
    }
    // A new restart policy: decide again with it (an offline workspace set to `always` restarts).
    if (policyChanged && next().kind === 'wait') continue;
    const d = next();
    if (d.kind === 'delete') {
      await run(remove);
      // Answer every accepted update before the entity completes (or continues).
      await condition(allHandlersFinished);
      if (deleteContinuesAfter !== null) {
        await continueAsNew<typeof workspaceWorkflow>({
          ...input,
          carried: { ...carry(s), deleting: { attempts: deleteContinuesAfter } },
        });
      }
      return;
    }
    if (d.kind === 'stop') {
      await run(stop);
      // A start accepted before this stop began comes now (from `stopped`, or, refused, from
      // `stopping`, as any start after a refused stop).
      if (s.startAfterStop) {
        s.startAfterStop = false;
        s.desired = 'running';
      }
    } else if (d.kind === 'provision' && d.cause === 'restart') {
      s.restartPending = false;
      await run(() => provision('restarting'));
    } else if (d.kind === 'start' && d.from === 'stopped') {
      s.startPending = false;
      await run(staleConfig() ? () => provision('restarting') : start);
    } else if (d.kind === 'start' || d.kind === 'provision' || d.kind === 'dropStart') {
      s.startPending = false;
      // Histories from before this change accepted such a start and did nothing.
      if (d.kind !== 'dropStart' && uses(PATCHES.startBoots)) {
        await run(d.kind === 'start' && !staleConfig() ? start : () => provision('restarting'));
      }
    } else if (d.kind === 'health') await applyHealth();
    else if (d.kind === 'continueAsNew') {
      await condition(allHandlersFinished);
      // An Update taken during that wait (a DELETE: carry() has no pending delete) is carried out
      // in this run first; continuing-as-new without it dropped a delete answered 202.
      if (next().kind !== 'continueAsNew' && uses(PATCHES.actBeforeContinueAsNew)) continue;
      await continueAsNew<typeof workspaceWorkflow>({ ...input, carried: carry(s) });
    }
  }
}

function isExpired(err: unknown): boolean {
  return err instanceof ApplicationFailure && err.type === FailureType.Expired;
}

/** A configure that could not save: bad data → InvalidInput (400), anything else → Unavailable. */
function configureFailure(err: unknown): ApplicationFailure {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure && PERMANENT_DB_ERRORS.includes(cause.type ?? '')) {
    return ApplicationFailure.create({
      type: FailureType.InvalidInput,
      message: `config: the database refused the value (${cause.message})`,
      details: [{ field: 'config' }],
      nonRetryable: true,
    });
  }
  return ApplicationFailure.create({
    type: FailureType.Unavailable,
    message: `config could not be saved: ${failureMessage(err)}`,
    nonRetryable: true,
  });
}

function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}
