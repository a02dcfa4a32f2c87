/**
 * The entity's state and the decisions it can take: plain data, so decide.ts stays a pure function
 * and continue-as-new can carry all of it.
 */
import type {
  AutoRestart,
  AgentHealth,
  AgentLiveness,
  CarriedState,
  StopCause,
  WorkspaceState,
  WorkspaceStatus,
} from '../messages.js';

/** Everything the entity knows: the queryable state plus what only the workflow needs. */
export interface EntityState extends WorkspaceState {
  health: AgentHealth | null;
  liveness: AgentLiveness | null;
  /** A health or liveness signal arrived that the entity has not folded into its status yet. */
  healthPending: boolean;
  /** Highest config version saved through this entity (every save goes through configure). */
  latestSavedVersion: number;
  /** Automatic restarts of the current streak (cleared after a healthy period). */
  restartHistory: AutoRestart[];
  lastRestartReason: string | null;
  /** When the status last changed (workflow time): how long degraded, how long healthy. */
  statusSinceMs: number;
  /**
   * An automatic restart is held until then: when it was due the backend could not be read (its
   * API down), and a restart into an outage only ends `failed`. Cleared by a readable listing.
   */
  restartHeldUntilMs: number | null;
  /** Failed attempts of the stop in progress (0: none failed). */
  stopAttempts: number;
  /** A failed stop is tried again then (null: no retry waiting). */
  stopRetryAtMs: number | null;
  /** Why the platform asked for the stop in progress; null for the user's own. */
  stopCause: StopCause | null;
  /** The config version the current generation's snapshot holds (null: not known). */
  generationConfigVersion: number | null;
  /** A start accepted before the stop requested began: it comes once that stop is done. */
  startAfterStop: boolean;
}

/** What the main loop does next; `wait` means nothing until a handler changes the state. */
export type Decision =
  | { kind: 'delete' }
  | { kind: 'stop' }
  /** A new generation: a restart, or a start of a workspace whose generation cannot come back. */
  | { kind: 'provision'; cause: 'restart' | 'start' }
  /** The same generation again: from `stopped`, or from `offline` (its resource stopped or gone). */
  | { kind: 'start'; from: 'stopped' | 'offline' }
  /** A start that has nothing to do any more (the workspace came back by itself). */
  | { kind: 'dropStart' }
  | { kind: 'health' }
  | { kind: 'continueAsNew' }
  | { kind: 'wait' };

/** The inputs of decide(): the state and whether the history asks for continue-as-new. */
export interface DecisionInput {
  status: WorkspaceStatus;
  desired: 'running' | 'stopped';
  deleteRequested: boolean;
  restartPending: boolean;
  startPending: boolean;
  halted: boolean;
  healthPending: boolean;
  continueAsNew: boolean;
  /** A failed stop waits for its next attempt (its backoff has not run out). */
  stopHeld: boolean;
  /**
   * A boot left by a stop that a start then withdrew boots again (patch resume-interrupted-boot);
   * false in histories from before, which waited there.
   */
  resumesInterruptedBoot?: boolean;
}

/** The status the health verdict moved to and why. */
export interface Verdict {
  status: 'online' | 'degraded' | 'offline';
  reason: string;
}

export function initialState(workspaceId: string, carried: CarriedState | undefined): EntityState {
  return {
    workspaceId,
    status: carried?.status ?? 'provisioning',
    generation: carried?.generation ?? 0,
    configHash: carried?.configHash ?? null,
    desired: carried?.desired ?? 'running',
    restartPending: carried?.restartPending ?? false,
    error: carried?.error ?? null,
    phase: carried?.phase ?? null,
    busy: false,
    deleteRequested: carried?.deleting !== undefined,
    startPending: carried?.startPending ?? false,
    halted: carried?.halted ?? false,
    health: carried?.health ?? null,
    liveness: carried?.liveness ?? null,
    healthPending: carried?.healthPending ?? false,
    latestSavedVersion: carried?.latestSavedVersion ?? 0,
    restartHistory: carried?.restartHistory ?? [],
    lastRestartReason: carried?.lastRestartReason ?? null,
    statusSinceMs: carried?.statusSinceMs ?? Date.now(),
    restartHeldUntilMs: carried?.restartHeldUntilMs ?? null,
    stopAttempts: carried?.stopAttempts ?? 0,
    stopRetryAtMs: carried?.stopRetryAtMs ?? null,
    stopCause: carried?.stopCause ?? null,
    generationConfigVersion: carried?.generationConfigVersion ?? null,
    startAfterStop: carried?.startAfterStop ?? false,
  };
}

/**
 * The whole state for continue-as-new when idle (`busy` and `deleteRequested` are false then; a
 * delete that continues-as-new adds `deleting` itself).
 */
export function carry(s: EntityState): CarriedState {
  return {
    status: s.status,
    generation: s.generation,
    configHash: s.configHash,
    desired: s.desired,
    restartPending: s.restartPending,
    error: s.error,
    latestSavedVersion: s.latestSavedVersion,
    phase: s.phase,
    startPending: s.startPending,
    halted: s.halted,
    health: s.health,
    liveness: s.liveness,
    healthPending: s.healthPending,
    restartHistory: s.restartHistory,
    lastRestartReason: s.lastRestartReason,
    statusSinceMs: s.statusSinceMs,
    restartHeldUntilMs: s.restartHeldUntilMs,
    stopAttempts: s.stopAttempts,
    stopRetryAtMs: s.stopRetryAtMs,
    stopCause: s.stopCause,
    generationConfigVersion: s.generationConfigVersion,
    // Only when set: histories from before carried no such field.
    ...(s.startAfterStop ? { startAfterStop: true } : {}),
  };
}

/** The queryable view (what `stateQuery` answers). */
export function view(s: EntityState): WorkspaceState {
  return {
    workspaceId: s.workspaceId,
    status: s.status,
    generation: s.generation,
    configHash: s.configHash,
    desired: s.desired,
    restartPending: s.restartPending,
    error: s.error,
    phase: s.phase,
    busy: s.busy,
    deleteRequested: s.deleteRequested,
    startPending: s.startPending,
    halted: s.halted,
    restartCount: s.restartHistory.length,
    lastRestartReason: s.lastRestartReason,
  };
}
