/** The entity's pure decisions: next step, health verdict, start acceptance, delete backoff. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DELETE_BACKOFF_INITIAL_MS,
  DELETE_BACKOFF_MAX_MS,
  decide,
  deleteBackoffMs,
  healthVerdict,
  startNeedsAction,
} from '../../src/workflows/workspace/decide.js';
import type { DecisionInput } from '../../src/workflows/workspace/state.js';
import { carry, initialState, view } from '../../src/workflows/workspace/state.js';
import { WORKSPACE_STATUSES, type WorkspaceStatus } from '../../src/workflows/messages.js';

const idle: DecisionInput = {
  status: 'online',
  desired: 'running',
  deleteRequested: false,
  restartPending: false,
  startPending: false,
  halted: false,
  healthPending: false,
  continueAsNew: false,
  stopHeld: false,
};
const at = (patch: Partial<DecisionInput>) => decide({ ...idle, ...patch });

describe('decide', () => {
  it('waits when nothing is due', () => {
    expect(at({})).toEqual({ kind: 'wait' });
    expect(at({ status: 'stopped', desired: 'stopped' })).toEqual({ kind: 'wait' });
  });

  it('delete beats everything', () => {
    fc.assert(
      fc.property(
        fc.record({
          status: fc.constantFrom(...WORKSPACE_STATUSES),
          desired: fc.constantFrom('running' as const, 'stopped' as const),
          restartPending: fc.boolean(),
          startPending: fc.boolean(),
          halted: fc.boolean(),
          healthPending: fc.boolean(),
          continueAsNew: fc.boolean(),
          stopHeld: fc.boolean(),
        }),
        (s) => {
          expect(decide({ ...s, deleteRequested: true })).toEqual({ kind: 'delete' });
        },
      ),
    );
  });

  it('stop when stop is desired, unless a stop just failed (halted)', () => {
    expect(at({ desired: 'stopped' })).toEqual({ kind: 'stop' });
    expect(at({ desired: 'stopped', status: 'failed' })).toEqual({ kind: 'stop' });
    expect(at({ desired: 'stopped', status: 'failed', halted: true })).toEqual({ kind: 'wait' });
    // An explicit stop also beats a pending restart.
    expect(at({ desired: 'stopped', restartPending: true })).toEqual({ kind: 'stop' });
  });

  it('a refused stop is tried again once its backoff ran out; a start meanwhile boots a new generation', () => {
    expect(at({ desired: 'stopped', status: 'stopping', stopHeld: true })).toEqual({ kind: 'wait' });
    expect(at({ desired: 'stopped', status: 'stopping' })).toEqual({ kind: 'stop' });
    expect(at({ desired: 'stopped', status: 'stopping', stopHeld: true, healthPending: true })).toEqual({
      kind: 'health',
    });
    // Whatever runs there is unproven: only a new generation proves readiness again.
    expect(at({ desired: 'running', status: 'stopping' })).toEqual({ kind: 'provision', cause: 'start' });
    expect(at({ desired: 'running', status: 'stopping', restartPending: true })).toEqual({
      kind: 'provision',
      cause: 'restart',
    });
  });

  it('a boot left idle (a stop interrupted it, a start withdrew the stop) boots a new generation', () => {
    for (const status of ['provisioning', 'restarting'] as const) {
      expect(at({ desired: 'running', status, resumesInterruptedBoot: true })).toEqual({
        kind: 'provision',
        cause: 'start',
      });
      // Histories from before the patch waited there.
      expect(at({ desired: 'running', status })).toEqual({ kind: 'wait' });
      expect(at({ desired: 'stopped', status, resumesInterruptedBoot: true })).toEqual({ kind: 'stop' });
    }
    expect(at({ desired: 'running', status: 'online', resumesInterruptedBoot: true })).toEqual({
      kind: 'wait',
    });
  });

  it('restart provisions a new generation, before a start', () => {
    expect(at({ restartPending: true })).toEqual({ kind: 'provision', cause: 'restart' });
    expect(at({ restartPending: true, startPending: true, status: 'offline' })).toEqual({
      kind: 'provision',
      cause: 'restart',
    });
  });

  it('start: stopped and offline boot the same generation; failed and degraded a new one', () => {
    expect(at({ status: 'stopped' })).toEqual({ kind: 'start', from: 'stopped' });
    expect(at({ status: 'stopped', halted: true })).toEqual({ kind: 'wait' });
    expect(at({ status: 'offline', startPending: true })).toEqual({ kind: 'start', from: 'offline' });
    expect(at({ status: 'failed', startPending: true })).toEqual({ kind: 'provision', cause: 'start' });
    expect(at({ status: 'degraded', startPending: true })).toEqual({ kind: 'provision', cause: 'start' });
    expect(at({ status: 'online', startPending: true })).toEqual({ kind: 'dropStart' });
  });

  it('health only when no operation is due; continue-as-new only when idle', () => {
    expect(at({ healthPending: true })).toEqual({ kind: 'health' });
    expect(at({ healthPending: true, restartPending: true }).kind).toBe('provision');
    expect(at({ continueAsNew: true })).toEqual({ kind: 'continueAsNew' });
    expect(at({ continueAsNew: true, healthPending: true })).toEqual({ kind: 'health' });
  });
});

describe('startNeedsAction', () => {
  it('is true for offline, degraded and failed when idle; stopped goes through desired', () => {
    const needs = WORKSPACE_STATUSES.filter((st) => startNeedsAction(st, false));
    expect(needs).toEqual(['degraded', 'offline', 'failed']);
    expect(WORKSPACE_STATUSES.some((st) => startNeedsAction(st, true))).toBe(false);
  });
});

describe('healthVerdict', () => {
  const g = 3;
  it('decides only for online, degraded and offline', () => {
    const decided = WORKSPACE_STATUSES.filter(
      (st: WorkspaceStatus) => healthVerdict(st, g, null, null) !== null,
    );
    expect(decided).toEqual(['online', 'degraded', 'offline']);
  });

  it('no resource → offline; unreachable → degraded; runtime state not ok → degraded; else online', () => {
    const live = (reachable: boolean, resourceStatus: 'running' | 'stopped' | 'missing' | 'unknown') => ({
      generation: g,
      reachable,
      resourceStatus,
    });
    expect(healthVerdict('online', g, null, live(false, 'missing'))).toEqual({
      status: 'offline',
      reason: 'resource is missing',
    });
    expect(healthVerdict('online', g, null, live(false, 'stopped'))?.status).toBe('offline');
    expect(healthVerdict('online', g, null, live(false, 'running'))).toEqual({
      status: 'degraded',
      reason: 'agent unreachable',
    });
    expect(
      healthVerdict('online', g, { generation: g, runtimeState: 'wedged' }, live(true, 'running')),
    ).toEqual({
      status: 'degraded',
      reason: 'agent reports runtime state wedged',
    });
    expect(
      healthVerdict('degraded', g, { generation: g, runtimeState: 'ok' }, live(true, 'unknown')),
    ).toEqual({
      status: 'online',
      reason: 'agent recovered',
    });
  });

  it('ignores signals about other generations', () => {
    expect(
      healthVerdict(
        'online',
        g,
        { generation: g - 1, runtimeState: 'wedged' },
        {
          generation: g - 1,
          reachable: false,
          resourceStatus: 'missing',
        },
      ),
    )?.toEqual({ status: 'online', reason: 'agent recovered' });
  });
});

describe('deleteBackoffMs', () => {
  it('doubles from the initial wait up to the cap, and never exceeds it', () => {
    expect(deleteBackoffMs(0)).toBe(DELETE_BACKOFF_INITIAL_MS);
    expect(deleteBackoffMs(1)).toBe(2 * DELETE_BACKOFF_INITIAL_MS);
    fc.assert(
      fc.property(fc.nat(10_000), (n) => {
        expect(deleteBackoffMs(n)).toBeLessThanOrEqual(DELETE_BACKOFF_MAX_MS);
        expect(deleteBackoffMs(n + 1)).toBeGreaterThanOrEqual(deleteBackoffMs(n));
      }),
    );
    expect(deleteBackoffMs(1000)).toBe(DELETE_BACKOFF_MAX_MS);
  });
});

describe('state carried across continue-as-new', () => {
  it('round-trips every field but the per-run ones', () => {
    const s = initialState('w1', undefined);
    Object.assign(s, {
      status: 'degraded',
      generation: 4,
      configHash: 'abc',
      desired: 'running',
      restartPending: true,
      error: 'x',
      phase: 'p',
      startPending: true,
      halted: true,
      health: { generation: 4, runtimeState: 'wedged' },
      liveness: { generation: 4, reachable: false, resourceStatus: 'running' },
      healthPending: true,
      latestSavedVersion: 9,
      stopAttempts: 3,
      stopRetryAtMs: 1_700_000_000_000,
      busy: true,
      deleteRequested: true,
    });
    const again = initialState('w1', JSON.parse(JSON.stringify(carry(s))));
    expect(again).toEqual({ ...s, busy: false, deleteRequested: false });
    expect(view(again)).not.toHaveProperty('health');
  });

  it('accepts what older code carried (no health, liveness, flags)', () => {
    const s = initialState('w1', {
      status: 'online',
      generation: 2,
      configHash: 'h',
      desired: 'running',
      restartPending: false,
      error: null,
      latestSavedVersion: 3,
    });
    expect(s).toMatchObject({
      health: null,
      liveness: null,
      halted: false,
      startPending: false,
      phase: null,
      stopAttempts: 0,
      stopRetryAtMs: null,
    });
  });
});
