/**
 * The entity's decisions as pure functions (unit-tested in test/unit/decide.test.ts): what to do
 * next, what the agent's signals mean for the status, which statuses accept which calls, and how
 * long a failing delete waits before its next attempt.
 */
import type {
  AgentHealth,
  AgentLiveness,
  AutoRestart,
  RestartPolicyInput,
  WorkspaceStatus,
} from '../messages.js';

export type { AutoRestart } from '../messages.js';
import type { Decision, DecisionInput, Verdict } from './state.js';

/** Statuses of a boot in progress. */
const BOOTING: readonly WorkspaceStatus[] = ['provisioning', 'restarting'];

/** Statuses a `start` brings back by booting (api.md: offline, degraded, failed, stopped). */
export const STARTABLE: readonly WorkspaceStatus[] = ['offline', 'degraded', 'failed', 'stopped'];

/**
 * The next step, in priority order: delete beats everything; an explicit stop beats a restart; a
 * restart beats a start; health is folded in only when no operation is due; continue-as-new only
 * when idle. A `halted` entity (its last operation failed) does not retry the same goal by itself;
 * a failed stop is tried again once its backoff ran out (`stopHeld` until then).
 */
export function decide(s: DecisionInput): Decision {
  if (s.deleteRequested) return { kind: 'delete' };
  if (s.desired === 'stopped' && s.status !== 'stopped' && !s.halted && !s.stopHeld) return { kind: 'stop' };
  if (s.desired === 'running' && s.restartPending) return { kind: 'provision', cause: 'restart' };
  if (s.desired === 'running' && s.startPending) {
    if (s.status === 'stopped') return { kind: 'start', from: 'stopped' };
    if (s.status === 'offline') return { kind: 'start', from: 'offline' };
    // Failed: its resource was torn down. Degraded: its agent already registered, so only a new
    // generation can prove readiness again.
    if (s.status === 'failed' || s.status === 'degraded') return { kind: 'provision', cause: 'start' };
    return { kind: 'dropStart' };
  }
  if (s.desired === 'running' && s.status === 'stopped' && !s.halted)
    return { kind: 'start', from: 'stopped' };
  // Idle in `stopping`: a stop the backend refused, then a start. Whatever runs there is unproven
  // (its agent registered long ago): only a new generation can prove readiness again.
  if (s.desired === 'running' && s.status === 'stopping') return { kind: 'provision', cause: 'start' };
  // Idle mid-boot: a stop interrupted it and a start withdrew the stop before it ran. Nothing else
  // would move it; what booted is unproven, so a new generation.
  if (s.resumesInterruptedBoot && s.desired === 'running' && BOOTING.includes(s.status))
    return { kind: 'provision', cause: 'start' };
  if (s.healthPending) return { kind: 'health' };
  if (s.continueAsNew) return { kind: 'continueAsNew' };
  return { kind: 'wait' };
}

/**
 * Folds what the agent reports (runtime state) and what the platform observed (liveness) into the
 * status of a running workspace: no resource → offline; unreachable → degraded; a runtime state
 * other than ok → degraded; else online. Only signals about the current generation count. Null when
 * the status is not one health decides (a boot, a stop, a failure, a delete own it then).
 */
export function healthVerdict(
  status: WorkspaceStatus,
  generation: number,
  health: AgentHealth | null,
  liveness: AgentLiveness | null,
): Verdict | null {
  if (status !== 'online' && status !== 'degraded' && status !== 'offline') return null;
  const h = health?.generation === generation ? health : null;
  const l = liveness?.generation === generation ? liveness : null;
  if (l && (l.resourceStatus === 'stopped' || l.resourceStatus === 'missing')) {
    return { status: 'offline', reason: `resource is ${l.resourceStatus}` };
  }
  if (l && !l.reachable) return { status: 'degraded', reason: 'agent unreachable' };
  if (h && h.runtimeState !== 'ok') {
    return { status: 'degraded', reason: `agent reports runtime state ${h.runtimeState}` };
  }
  return { status: 'online', reason: 'agent recovered' };
}

/** Whether a `start` accepted now needs the main loop (a stopped one is started by `desired`). */
export function startNeedsAction(status: WorkspaceStatus, busy: boolean): boolean {
  return !busy && (status === 'offline' || status === 'degraded' || status === 'failed');
}

export const DELETE_BACKOFF_INITIAL_MS = 2_000;
export const DELETE_BACKOFF_MAX_MS = 300_000;

/** Wait before delete attempt `attempt + 1` (attempt counts from 0): doubling, capped. */
export function deleteBackoffMs(attempt: number): number {
  return Math.min(DELETE_BACKOFF_MAX_MS, DELETE_BACKOFF_INITIAL_MS * 2 ** Math.min(attempt, 30));
}

export interface RestartSettings {
  policy: 'always' | 'never';
  /** At most this many automatic restarts per window; one more goes `failed`. */
  max: number;
  windowMs: number;
  /** `degraded` this long leads to a restart (offline restarts at once, after the backoff). */
  degradedAfterMs: number;
  /** Backoff of restart n (from 0): initial × 2^n, capped. */
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** Online this long forgets the restart history. */
  healthyResetMs: number;
}

export const DEFAULT_RESTART_SETTINGS: RestartSettings = {
  policy: 'always',
  max: 5,
  windowMs: 3_600_000,
  degradedAfterMs: 60_000,
  backoffInitialMs: 1_000,
  backoffMaxMs: 300_000,
  healthyResetMs: 600_000,
};

/** The policy of one workspace: its input over the defaults. */
export function restartSettings(input: RestartPolicyInput | undefined): RestartSettings {
  const out = { ...DEFAULT_RESTART_SETTINGS };
  for (const [k, v] of Object.entries(input ?? {})) if (v !== undefined) Object.assign(out, { [k]: v });
  return out;
}

export type RestartPlan =
  /** Nothing to do about restarts now. */
  | { kind: 'none' }
  /** Look again at `atMs` (a degraded threshold or a backoff not reached yet). */
  | { kind: 'later'; atMs: number }
  | { kind: 'restart'; reason: string }
  | { kind: 'fail'; reason: string };

/** Restarts of the history that still count at `nowMs` (inside the window). */
export function restartsInWindow(
  history: readonly AutoRestart[],
  nowMs: number,
  windowMs: number,
): AutoRestart[] {
  return history.filter((r) => nowMs - r.atMs < windowMs);
}

/** Wait before automatic restart `n + 1` of a window (n counts from 0): doubling, capped. */
export function restartBackoffMs(n: number, s: RestartSettings): number {
  return Math.min(s.backoffMaxMs, s.backoffInitialMs * 2 ** Math.min(n, 30));
}

/**
 * The restart policy (Kubernetes' CrashLoopBackOff, Nomad's `restart` block): an `offline`
 * workspace, or one `degraded` for `degradedAfterMs`, restarts at a new generation after an
 * exponential backoff measured from the last restart; past `max` restarts in `windowMs` it fails
 * with the history. `sinceMs` is when the workspace entered its current status. A restart held
 * (`heldUntilMs`: the backend could not be read when it was due) waits until then.
 */
export function restartPlan(input: {
  status: WorkspaceStatus;
  sinceMs: number;
  nowMs: number;
  history: readonly AutoRestart[];
  settings: RestartSettings;
  heldUntilMs?: number | null;
}): RestartPlan {
  const { status, sinceMs, nowMs, settings: s } = input;
  if (s.policy === 'never' || (status !== 'offline' && status !== 'degraded')) return { kind: 'none' };
  if (status === 'degraded' && nowMs - sinceMs < s.degradedAfterMs) {
    return { kind: 'later', atMs: sinceMs + s.degradedAfterMs };
  }
  const recent = restartsInWindow(input.history, nowMs, s.windowMs);
  const reason = status === 'offline' ? 'offline' : `degraded for ${s.degradedAfterMs} ms`;
  if (recent.length >= s.max) {
    const list = recent.map((r) => `generation ${r.generation} (${r.reason})`).join(', ');
    return {
      kind: 'fail',
      reason: `${reason} after ${recent.length} automatic restarts within ${s.windowMs} ms: ${list}`,
    };
  }
  const last = recent.at(-1);
  if (last) {
    const atMs = last.atMs + restartBackoffMs(recent.length - 1, s);
    if (nowMs < atMs) return { kind: 'later', atMs };
  }
  const held = input.heldUntilMs ?? null;
  if (held !== null && nowMs < held) return { kind: 'later', atMs: held };
  return { kind: 'restart', reason };
}

/** The history after `online` since `onlineSinceMs`: forgotten once healthy long enough. */
export function historyAfterHealthy(
  history: readonly AutoRestart[],
  onlineSinceMs: number,
  nowMs: number,
  s: RestartSettings,
): AutoRestart[] {
  return nowMs - onlineSinceMs >= s.healthyResetMs ? [] : [...history];
}
