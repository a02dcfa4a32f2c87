/** The entity's restart policy on its own: when to restart, how long to back off, when to give up. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RESTART_SETTINGS,
  historyAfterHealthy,
  restartBackoffMs,
  restartPlan,
  type AutoRestart,
  type RestartSettings,
} from '../../src/workflows/workspace/decide.js';
import type { WorkspaceStatus } from '../../src/workflows/messages.js';

const S: RestartSettings = {
  policy: 'always',
  max: 3,
  windowMs: 3_600_000,
  degradedAfterMs: 10_000,
  backoffInitialMs: 1_000,
  backoffMaxMs: 8_000,
  healthyResetMs: 60_000,
};
const NOW = 1_800_000_000_000;
const r = (atMs: number, generation = 1): AutoRestart => ({ atMs, generation, reason: 'offline' });
const plan = (
  status: WorkspaceStatus,
  over: {
    sinceMs?: number;
    history?: AutoRestart[];
    s?: Partial<RestartSettings>;
    heldUntilMs?: number | null;
  } = {},
) =>
  restartPlan({
    status,
    sinceMs: over.sinceMs ?? NOW,
    nowMs: NOW,
    history: over.history ?? [],
    settings: { ...S, ...over.s },
    heldUntilMs: over.heldUntilMs,
  });

describe('restartPlan', () => {
  it('restarts an offline workspace at once the first time', () => {
    expect(plan('offline')).toEqual({ kind: 'restart', reason: 'offline' });
  });

  it('waits for a degraded workspace to stay degraded past the threshold', () => {
    expect(plan('degraded', { sinceMs: NOW - 4_000 })).toEqual({ kind: 'later', atMs: NOW + 6_000 });
    expect(plan('degraded', { sinceMs: NOW - 10_000 })).toEqual({
      kind: 'restart',
      reason: 'degraded for 10000 ms',
    });
  });

  it('does nothing for healthy, busy or user-owned statuses, or with policy never', () => {
    for (const status of [
      'online',
      'provisioning',
      'restarting',
      'stopping',
      'stopped',
      'failed',
      'deleting',
    ] as const) {
      expect(plan(status)).toEqual({ kind: 'none' });
    }
    expect(plan('offline', { s: { policy: 'never' } })).toEqual({ kind: 'none' });
  });

  it('backs off exponentially from the last restart', () => {
    // Second restart: 1 s after the first; third: 2 s after the second.
    expect(plan('offline', { history: [r(NOW - 500)] })).toEqual({ kind: 'later', atMs: NOW + 500 });
    expect(plan('offline', { history: [r(NOW - 1_000)] })).toEqual({ kind: 'restart', reason: 'offline' });
    expect(plan('offline', { history: [r(NOW - 5_000), r(NOW - 1_500)] })).toEqual({
      kind: 'later',
      atMs: NOW + 500,
    });
    expect([0, 1, 2, 3, 4, 10].map((n) => restartBackoffMs(n, S))).toEqual([
      1_000, 2_000, 4_000, 8_000, 8_000, 8_000,
    ]);
  });

  it('a restart held (the backend could not be read) waits until the hold ends; failing does not', () => {
    expect(plan('offline', { heldUntilMs: NOW + 3_000 })).toEqual({ kind: 'later', atMs: NOW + 3_000 });
    expect(plan('degraded', { sinceMs: NOW - 10_000, heldUntilMs: NOW + 1 })).toEqual({
      kind: 'later',
      atMs: NOW + 1,
    });
    expect(plan('offline', { heldUntilMs: NOW })).toEqual({ kind: 'restart', reason: 'offline' });
    expect(plan('offline', { heldUntilMs: null })).toEqual({ kind: 'restart', reason: 'offline' });
    // Not yet degraded long enough: the threshold comes first.
    expect(plan('degraded', { sinceMs: NOW - 4_000, heldUntilMs: NOW + 1 })).toEqual({
      kind: 'later',
      atMs: NOW + 6_000,
    });
    const history = [r(NOW - 30_000, 1), r(NOW - 20_000, 2), r(NOW - 10_000, 3)];
    expect(plan('offline', { history, heldUntilMs: NOW + 5_000 }).kind).toBe('fail');
  });

  it('fails past the maximum within the window, naming the restarts', () => {
    const history = [r(NOW - 30_000, 1), r(NOW - 20_000, 2), r(NOW - 10_000, 3)];
    const p = plan('offline', { history });
    expect(p.kind).toBe('fail');
    expect(p.kind === 'fail' && p.reason).toBe(
      'offline after 3 automatic restarts within 3600000 ms: generation 1 (offline), generation 2 (offline), generation 3 (offline)',
    );
  });

  it('forgets restarts older than the window', () => {
    const history = [r(NOW - 4_000_000), r(NOW - 3_700_000), r(NOW - 3_600_000)];
    expect(plan('offline', { history })).toEqual({ kind: 'restart', reason: 'offline' });
  });

  it('never restarts more than max times in any window, and never sooner than the backoff', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 30_000 }), { maxLength: 40 }), (gaps) => {
        // Offline again after each gap: apply the plan as the entity does and check the outcome.
        let now = NOW;
        const history: AutoRestart[] = [];
        for (const gap of gaps) {
          now += gap;
          const p = restartPlan({ status: 'offline', sinceMs: now, nowMs: now, history, settings: S });
          if (p.kind === 'fail') {
            expect(history.filter((h) => now - h.atMs < S.windowMs).length).toBeGreaterThanOrEqual(S.max);
            return;
          }
          if (p.kind === 'later') {
            expect(p.atMs).toBeGreaterThan(now);
            now = p.atMs;
            continue;
          }
          expect(p.kind).toBe('restart');
          const last = history.at(-1);
          if (last) expect(now - last.atMs).toBeGreaterThanOrEqual(S.backoffInitialMs);
          history.push(r(now, history.length + 1));
        }
        expect(history.filter((h) => now - h.atMs < S.windowMs).length).toBeLessThanOrEqual(S.max);
      }),
    );
  });

  it('has sane defaults: 5 restarts per hour', () => {
    expect(DEFAULT_RESTART_SETTINGS.max).toBe(5);
    expect(DEFAULT_RESTART_SETTINGS.windowMs).toBe(3_600_000);
  });
});

describe('historyAfterHealthy', () => {
  it('forgets the history after a healthy period, keeps it after a short one', () => {
    const history = [r(NOW - 100_000), r(NOW - 70_000)];
    expect(historyAfterHealthy(history, NOW - 60_000, NOW, S)).toEqual([]);
    expect(historyAfterHealthy(history, NOW - 59_999, NOW, S)).toEqual(history);
  });
});
