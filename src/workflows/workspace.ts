/**
 * The workspace entity workflow (`workspace:<id>`): owns the desired state of one workspace and
 * serializes every mutation. Races the seed system lost are closed here:
 * - config is saved inside the configure Update, and every (re)provision snapshots it from the DB;
 * - a config saved while a boot is in flight makes the entity boot again, so the running
 *   workspace always converges on the last saved config;
 * - `online` only on the agent's proof for the current generation + config hash, never on a timer.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import {
  CONFLICT,
  WorkspaceStatusKey,
  agentHealthSignal,
  agentLivenessSignal,
  agentReadySignal,
  configureUpdate,
  deleteUpdate,
  restartUpdate,
  startUpdate,
  stateQuery,
  stopUpdate,
  type AgentHealth,
  type AgentLiveness,
  type AgentReady,
  type CarriedState,
  type ConfigureInput,
  type WorkspaceState,
  type WorkspaceStatus,
  type WorkspaceWorkflowInput,
} from './messages.js';

const db = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s' },
});

// Backend calls heartbeat while they wait, so a dead worker is noticed in seconds, not minutes.
const backend = proxyActivities<Activities>({
  startToCloseTimeout: '10m',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 20 },
});

type Outcome = 'ready' | 'timeout' | 'interrupted';

export async function workspaceWorkflow(input: WorkspaceWorkflowInput): Promise<void> {
  const { workspaceId, backend: backendName } = input;
  const s: WorkspaceState = {
    workspaceId,
    status: input.carried?.status ?? 'provisioning',
    generation: input.carried?.generation ?? 0,
    configHash: input.carried?.configHash ?? null,
    desired: input.carried?.desired ?? 'running',
    restartPending: input.carried?.restartPending ?? false,
    error: input.carried?.error ?? null,
    phase: null,
    busy: false,
    deleteRequested: false,
  };
  let ready: AgentReady | null = null;
  let health: AgentHealth | null = null;
  let liveness: AgentLiveness | null = null;
  let healthPending = false;
  /** Highest config version saved through this entity (every save goes through configure). */
  let latestSavedVersion = input.carried?.latestSavedVersion ?? 0;
  let configSavesInFlight = 0;
  // Config saves run one after another in acceptance order, so the DB ends with the last one.
  let configChain: Promise<unknown> = Promise.resolve();

  const rejectIfGone = () => {
    if (s.deleteRequested || s.status === 'deleted') {
      throw new Error(`${CONFLICT}: workspace is ${s.status === 'deleted' ? 'deleted' : 'being deleted'}`);
    }
  };
  const accepted = () => ({ accepted: true as const, status: s.status });

  setHandler(stateQuery, () => ({ ...s }));
  setHandler(agentReadySignal, (r) => {
    ready = r;
  });
  setHandler(agentHealthSignal, (h) => {
    health = h;
    healthPending = true;
  });
  setHandler(agentLivenessSignal, (l) => {
    liveness = l;
    healthPending = true;
  });

  setHandler(
    configureUpdate,
    async (change) => {
      configSavesInFlight++;
      const save = configChain.then(() =>
        db.saveConfig({ workspaceId, runtime: change.runtime, config: change.config }),
      );
      configChain = save.catch(() => undefined);
      try {
        const saved = await save;
        latestSavedVersion = Math.max(latestSavedVersion, saved.configVersion);
        if (change.restart) {
          s.restartPending = true;
          s.desired = 'running';
        }
        const generation = s.restartPending || s.busy ? s.generation + 1 : s.generation;
        return { generation, configHash: saved.configHash };
      } finally {
        configSavesInFlight--;
      }
    },
    { validator: (_change: ConfigureInput) => rejectIfGone() },
  );

  setHandler(
    restartUpdate,
    () => {
      s.restartPending = true;
      s.desired = 'running';
      return accepted();
    },
    { validator: rejectIfGone },
  );
  setHandler(
    stopUpdate,
    () => {
      s.desired = 'stopped';
      return accepted();
    },
    { validator: rejectIfGone },
  );
  setHandler(
    startUpdate,
    () => {
      s.desired = 'running';
      return accepted();
    },
    {
      validator: () => {
        rejectIfGone();
        if (s.status === 'failed' && !s.restartPending) {
          throw new Error(`${CONFLICT}: workspace failed; restart it to provision a new generation`);
        }
      },
    },
  );
  setHandler(
    deleteUpdate,
    () => {
      s.deleteRequested = true;
      return accepted();
    },
    { validator: rejectIfGone },
  );

  async function setStatus(
    status: WorkspaceStatus,
    phase: string | null = null,
    opts: { message?: string; error?: string | null } = {},
  ): Promise<void> {
    s.status = status;
    s.phase = phase;
    s.error = opts.error ?? (status === 'failed' ? s.error : null);
    upsertSearchAttributes([{ key: WorkspaceStatusKey, value: status }]);
    await db.recordTransition({
      workspaceId,
      generation: s.generation,
      status,
      phase,
      message: opts.message ?? null,
      error: s.error,
    });
  }

  const interrupted = () => s.deleteRequested || s.desired === 'stopped' || s.restartPending;

  async function waitReady(generation: number, configHash: string): Promise<Outcome> {
    const proven = () => ready !== null && ready.generation === generation && ready.configHash === configHash;
    const done = await condition(() => proven() || interrupted(), input.bootDeadlineMs);
    if (proven()) return 'ready';
    return done ? 'interrupted' : 'timeout';
  }

  /** Boot deadline or permanent error: keep the console output, tear the resource down, say why. */
  async function failGeneration(generation: number, error: string): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      await backend.captureBootLog({ workspaceId, backend: backendName, generation }).catch((e: unknown) => {
        log.warn('could not capture boot log', { error: String(e) });
      });
      await backend.removeResource({ workspaceId, backend: backendName, generation });
      await setStatus('failed', null, { error, message: error });
    });
  }

  async function provision(kind: 'provisioning' | 'restarting'): Promise<void> {
    const previous = s.generation;
    const generation = previous + 1;
    await setStatus(kind, 'preparing');
    // Let accepted config saves land first, so this boot snapshots the newest config.
    await condition(() => configSavesInFlight === 0);
    if (previous > 0) {
      await backend.removeResource({ workspaceId, backend: backendName, generation: previous });
    }
    const snapshot = await db.prepareGeneration({ workspaceId, generation });
    s.generation = generation;
    s.configHash = snapshot.configHash;
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
    liveness = null;
    await setStatus(status, phase);
    try {
      await backend.startResource({
        workspaceId,
        orgId: input.orgId,
        backend: backendName,
        generation,
        runtime,
      });
    } catch (err) {
      await failGeneration(generation, failureMessage(err));
      return;
    }
    await setStatus(status, 'booting');
    const outcome = await waitReady(generation, configHash);
    if (outcome === 'timeout') {
      await failGeneration(generation, `boot deadline of ${input.bootDeadlineMs} ms exceeded`);
    } else if (outcome === 'ready') {
      await condition(() => configSavesInFlight === 0);
      if (snapshotVersion !== null && latestSavedVersion > snapshotVersion) s.restartPending = true;
      else await setStatus('online', 'platform-health-ok');
    }
  }

  async function stop(): Promise<void> {
    await setStatus('stopping');
    await backend.stopResource({ workspaceId, backend: backendName, generation: s.generation });
    await setStatus('stopped');
  }

  /** Same generation again (stop/start): the resource and its config snapshot are unchanged. */
  const start = () => boot('provisioning', 'starting', null, null);

  async function remove(): Promise<void> {
    await setStatus('deleting');
    await CancellationScope.nonCancellable(async () => {
      await backend.removeResource({ workspaceId, backend: backendName, volumes: true });
      await db.finalizeDelete({ workspaceId });
      await setStatus('deleted');
    });
  }

  /**
   * Folds what the agent reports (runtime state) and what the platform observed (liveness) into the
   * status of a running workspace: no resource → offline; unreachable or wedged → degraded; else
   * online. Only signals about the current generation count.
   */
  async function applyHealth(): Promise<void> {
    healthPending = false;
    if (!['online', 'degraded', 'offline'].includes(s.status)) return;
    const h = health?.generation === s.generation ? health : null;
    const l = liveness?.generation === s.generation ? liveness : null;
    let next: WorkspaceStatus = 'online';
    let why = 'agent recovered';
    if (l && (l.resourceStatus === 'stopped' || l.resourceStatus === 'missing')) {
      next = 'offline';
      why = `resource is ${l.resourceStatus}`;
    } else if (l && !l.reachable) {
      next = 'degraded';
      why = 'agent unreachable';
    } else if (h && h.runtimeState !== 'ok') {
      next = 'degraded';
      why = `agent reports runtime state ${h.runtimeState}`;
    }
    if (next !== s.status) {
      await setStatus(next, next === 'online' ? 'platform-health-ok' : null, { message: why });
    }
  }

  const run = async (op: () => Promise<void>) => {
    s.busy = true;
    try {
      await op();
    } finally {
      s.busy = false;
    }
  };

  if (!input.carried) await run(() => provision('provisioning'));

  const historyLimit = input.continueAsNewAfterEvents ?? 2000;
  const shouldContinueAsNew = () =>
    workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= historyLimit;

  for (;;) {
    await condition(
      () =>
        s.deleteRequested ||
        (s.desired === 'stopped' && s.status !== 'stopped') ||
        (s.desired === 'running' && (s.restartPending || s.status === 'stopped')) ||
        healthPending ||
        shouldContinueAsNew(),
    );
    if (s.deleteRequested) {
      await run(remove);
      // Answer every accepted update before the entity completes.
      await condition(allHandlersFinished);
      return;
    }
    if (s.desired === 'stopped' && s.status !== 'stopped') await run(stop);
    else if (s.desired === 'running' && s.restartPending) {
      s.restartPending = false;
      await run(() => provision('restarting'));
    } else if (s.desired === 'running' && s.status === 'stopped') await run(start);
    else if (healthPending) await applyHealth();
    else if (shouldContinueAsNew()) {
      await condition(allHandlersFinished);
      const carried: CarriedState = {
        status: s.status,
        generation: s.generation,
        configHash: s.configHash,
        desired: s.desired,
        restartPending: s.restartPending,
        error: s.error,
        latestSavedVersion,
      };
      await continueAsNew<typeof workspaceWorkflow>({ ...input, carried });
    }
  }
}

function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause.message;
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}
