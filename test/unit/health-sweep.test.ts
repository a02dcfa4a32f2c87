/** The health sweep's cross-check, on its own: heartbeat age against the backend's listing. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ResourceStatus } from '../../src/backends/backend.js';
import {
  resourceKey,
  selectHealthChanges,
  type BackendListing,
  type CheckedWorkspace,
} from '../../src/domain/health.js';

const NOW = 1_800_000_000_000;
const STALE = 3_000;
const FRESH_AT = NOW - 1_000;
const STALE_AT = NOW - STALE - 1;

const ws = (over: Partial<CheckedWorkspace>): CheckedWorkspace => ({
  id: 'w',
  backend: 'docker',
  generation: 2,
  status: 'online',
  lastHeartbeatAtMs: FRESH_AT,
  runtimeState: 'ok',
  ...over,
});
const listing = (entries: Array<[string, number, ResourceStatus]>): BackendListing =>
  new Map(entries.map(([id, gen, st]) => [resourceKey(id, gen), st]));

function select(workspaces: CheckedWorkspace[], docker: BackendListing) {
  return selectHealthChanges({ workspaces, listings: { docker }, nowMs: NOW, staleMs: STALE });
}

describe('selectHealthChanges', () => {
  it('leaves an online workspace with a fresh heartbeat alone', () => {
    const r = select([ws({})], listing([['w', 2, 'running']]));
    expect(r.changed).toEqual([]);
    expect(r.counts).toEqual({ checked: 1, online: 1, degraded: 0, offline: 0, unchanged: 1 });
  });

  it('stale heartbeat and the resource stopped or missing: offline', () => {
    const r = select(
      [ws({ id: 'a', lastHeartbeatAtMs: STALE_AT }), ws({ id: 'b', lastHeartbeatAtMs: null })],
      listing([['a', 2, 'stopped']]),
    );
    expect(r.changed).toEqual([
      expect.objectContaining({
        workspaceId: 'a',
        from: 'online',
        to: 'offline',
        liveness: { generation: 2, reachable: false, resourceStatus: 'stopped' },
      }),
      expect.objectContaining({
        workspaceId: 'b',
        to: 'offline',
        liveness: { generation: 2, reachable: false, resourceStatus: 'missing' },
      }),
    ]);
  });

  it('only the current generation counts: a running older generation is no proof', () => {
    const r = select([ws({ lastHeartbeatAtMs: STALE_AT })], listing([['w', 1, 'running']]));
    expect(r.changed[0]).toEqual(expect.objectContaining({ to: 'offline' }));
  });

  it('stale heartbeat and the resource running: degraded (agent unreachable)', () => {
    const r = select([ws({ lastHeartbeatAtMs: STALE_AT })], listing([['w', 2, 'running']]));
    expect(r.changed).toEqual([
      expect.objectContaining({
        to: 'degraded',
        liveness: { generation: 2, reachable: false, resourceStatus: 'running' },
      }),
    ]);
  });

  it('a backend whose listing failed never yields offline', () => {
    const r = select([ws({ lastHeartbeatAtMs: STALE_AT })], null);
    expect(r.changed).toEqual([
      expect.objectContaining({
        to: 'degraded',
        liveness: { generation: 2, reachable: false, resourceStatus: 'unknown' },
      }),
    ]);
  });

  it('a fresh heartbeat brings a degraded or offline workspace back online', () => {
    const r = select(
      [ws({ id: 'a', status: 'degraded' }), ws({ id: 'b', status: 'offline' })],
      listing([
        ['a', 2, 'running'],
        ['b', 2, 'running'],
      ]),
    );
    expect(r.changed.map((c) => [c.workspaceId, c.to, c.liveness.reachable])).toEqual([
      ['a', 'online', true],
      ['b', 'online', true],
    ]);
  });

  it('a heartbeat from before the degraded/offline verdict is no news: nothing signalled', () => {
    const verdictAt = FRESH_AT + 1;
    const r = select(
      [
        // A failed forward marked it degraded after its last (still fresh) heartbeat.
        ws({ id: 'a', status: 'degraded', statusSinceMs: verdictAt }),
        ws({ id: 'b', status: 'offline', statusSinceMs: FRESH_AT }),
        // A heartbeat after the verdict is news.
        ws({ id: 'c', status: 'degraded', statusSinceMs: FRESH_AT - 1 }),
      ],
      listing([
        ['a', 2, 'running'],
        ['b', 2, 'running'],
        ['c', 2, 'running'],
      ]),
    );
    expect(r.changed.map((c) => [c.workspaceId, c.to])).toEqual([['c', 'online']]);
    expect(r.counts).toEqual({ checked: 3, online: 1, degraded: 1, offline: 1, unchanged: 2 });
  });

  it('an agent reporting a runtime state other than ok stays degraded, with no signal again', () => {
    const r = select([ws({ status: 'degraded', runtimeState: 'wedged' })], listing([['w', 2, 'running']]));
    expect(r.changed).toEqual([]);
    expect(r.counts.degraded).toBe(1);
  });

  it('already offline and still stopped: nothing to signal', () => {
    const r = select(
      [ws({ status: 'offline', lastHeartbeatAtMs: STALE_AT })],
      listing([['w', 2, 'stopped']]),
    );
    expect(r.changed).toEqual([]);
  });

  it('signals exactly the workspaces whose verdict differs from their status', () => {
    const statuses = ['online', 'degraded', 'offline'] as const;
    const resources = ['running', 'stopped', 'missing', 'unknown'] as const;
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            status: fc.constantFrom(...statuses),
            stale: fc.boolean(),
            resource: fc.constantFrom(...resources),
            state: fc.constantFrom('ok', 'wedged', null),
          }),
          { maxLength: 30 },
        ),
        fc.boolean(),
        (rows, listingFails) => {
          const workspaces = rows.map((r, i) =>
            ws({
              id: `w${String(i).padStart(3, '0')}`,
              status: r.status,
              lastHeartbeatAtMs: r.stale ? STALE_AT : FRESH_AT,
              runtimeState: r.state,
            }),
          );
          const l = listingFails
            ? null
            : listing(
                rows.flatMap((r, i) =>
                  r.resource === 'missing' || r.resource === 'unknown'
                    ? []
                    : [[`w${String(i).padStart(3, '0')}`, 2, r.resource] as [string, number, ResourceStatus]],
                ),
              );
          const out = select(workspaces, l);
          expect(out.counts.checked).toBe(rows.length);
          expect(out.changed.length + out.counts.unchanged).toBe(rows.length);
          for (const c of out.changed) {
            expect(c.to).not.toBe(c.from);
            // Offline needs a stale heartbeat and a listing that answered.
            if (c.to === 'offline') expect(listingFails).toBe(false);
            if (c.to === 'offline') expect(c.liveness.reachable).toBe(false);
          }
        },
      ),
    );
  });
});
