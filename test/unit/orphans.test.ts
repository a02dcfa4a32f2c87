/** The orphan sweep's choice, on its own: what is live, what is an orphan, what is too young or foreign. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  liveOrgKey,
  selectOrphanNetworks,
  selectOrphans,
  type KnownWorkspace,
  type ListedNetwork,
  type ListedResource,
} from '../../src/domain/orphans.js';

const NOW = 1_800_000_000_000;
const GRACE = 600_000;
const OLD = NOW - GRACE - 1;
const YOUNG = NOW - GRACE + 1;
const ORG = 'org1';

const res = (over: Partial<ListedResource>): ListedResource => ({
  backend: 'docker',
  instanceId: `i-${over.workspaceId ?? 'w'}-${over.generation ?? 1}`,
  workspaceId: 'w',
  orgId: ORG,
  generation: 1,
  createdAtMs: OLD,
  ...over,
});

function select(resources: ListedResource[], ws: Record<string, KnownWorkspace>, orgs = [ORG]) {
  return selectOrphans({
    resources,
    workspaces: new Map(Object.entries(ws)),
    knownOrgs: new Set(orgs),
    nowMs: NOW,
    graceMs: GRACE,
  });
}

describe('selectOrphans', () => {
  it('keeps the live generation whatever its status, except deleted', () => {
    for (const status of ['online', 'stopped', 'failed', 'deleting', 'provisioning', 'restarting']) {
      const out = select([res({ generation: 3 })], { w: { backend: 'docker', generation: 3, status } });
      expect(out.removals).toEqual([]);
      expect(out.counts).toEqual({ listed: 1, live: 1, young: 0, foreign: 0 });
    }
  });

  it('removes a discarded current generation alone (its failed boot could not remove it), volumes kept', () => {
    const out = select([res({ generation: 3 }), res({ kind: 'volume', instanceId: 'v-w', generation: 0 })], {
      w: { backend: 'docker', generation: 3, status: 'failed', discardedGeneration: 3 },
    });
    expect(out.removals).toEqual([
      {
        backend: 'docker',
        workspaceId: 'w',
        orgId: ORG,
        generation: 3,
        instanceIds: ['i-w-3'],
        volumeIds: [],
        reason: 'discarded',
      },
    ]);
    expect(out.counts).toEqual({ listed: 2, live: 1, young: 0, foreign: 0 });
    // Started again (the mark cleared): live.
    const again = select([res({ generation: 3 })], {
      w: { backend: 'docker', generation: 3, status: 'provisioning', discardedGeneration: null },
    });
    expect(again.removals).toEqual([]);
  });

  it('keeps a resource ahead of its row (never removes on a stale read)', () => {
    const out = select([res({ generation: 4 })], {
      w: { backend: 'docker', generation: 3, status: 'online' },
    });
    expect(out.removals).toEqual([]);
  });

  it('removes a superseded generation alone, leaving the live one', () => {
    const out = select([res({ generation: 2 }), res({ generation: 3 })], {
      w: { backend: 'docker', generation: 3, status: 'online' },
    });
    expect(out.removals).toEqual([
      {
        backend: 'docker',
        workspaceId: 'w',
        orgId: ORG,
        generation: 2,
        instanceIds: ['i-w-2'],
        volumeIds: [],
        reason: 'superseded',
      },
    ]);
  });

  it('removes a deleted workspace and an unknown one whole (with volumes)', () => {
    const out = select(
      [
        res({ workspaceId: 'gone', generation: 1 }),
        res({ workspaceId: 'gone', generation: 2 }),
        res({ workspaceId: 'nobody' }),
      ],
      {
        gone: { backend: 'docker', generation: 2, status: 'deleted' },
      },
    );
    expect(out.removals).toEqual([
      {
        backend: 'docker',
        workspaceId: 'gone',
        orgId: ORG,
        generation: null,
        instanceIds: ['i-gone-1', 'i-gone-2'],
        volumeIds: [],
        reason: 'deleted',
      },
      {
        backend: 'docker',
        workspaceId: 'nobody',
        orgId: ORG,
        generation: null,
        instanceIds: ['i-nobody-1'],
        volumeIds: [],
        reason: 'unknown',
      },
    ]);
  });

  it('treats a resource on the other backend than its workspace as unknown', () => {
    const out = select([res({ backend: 'ec2' })], {
      w: { backend: 'docker', generation: 1, status: 'online' },
    });
    expect(out.removals.map((r) => [r.backend, r.reason])).toEqual([['ec2', 'unknown']]);
  });

  it('leaves resources younger than the grace period, and a young sibling keeps removal per generation', () => {
    const out = select(
      [
        res({ workspaceId: 'x', generation: 1 }),
        res({ workspaceId: 'x', generation: 2, createdAtMs: YOUNG }),
      ],
      {},
    );
    expect(out.counts.young).toBe(1);
    expect(out.removals).toEqual([
      {
        backend: 'docker',
        workspaceId: 'x',
        orgId: ORG,
        generation: 1,
        instanceIds: ['i-x-1'],
        volumeIds: [],
        reason: 'unknown',
      },
    ]);
    expect(select([res({ createdAtMs: YOUNG })], {}).removals).toEqual([]);
  });

  it('keeps the volumes of a live workspace, removes those of a deleted one even with no container left', () => {
    const vol = (workspaceId: string, name: string) =>
      res({ kind: 'volume', workspaceId, instanceId: name, generation: 0 });
    const out = select(
      [vol('w', 'ws-w-configs'), vol('gone', 'ws-gone-configs'), vol('gone', 'ws-gone-workspace')],
      {
        w: { backend: 'docker', generation: 5, status: 'stopped' },
        gone: { backend: 'docker', generation: 2, status: 'deleted' },
      },
    );
    expect(out.removals).toEqual([
      {
        backend: 'docker',
        workspaceId: 'gone',
        orgId: ORG,
        generation: null,
        // Volumes apart from containers (the result once listed both as `instanceIds`).
        instanceIds: [],
        volumeIds: ['ws-gone-configs', 'ws-gone-workspace'],
        reason: 'deleted',
      },
    ]);
    expect(out.counts.live).toBe(1);
  });

  it("leaves an orphan workspace's volumes while one of its resources is young", () => {
    const out = select(
      [
        res({ workspaceId: 'x', generation: 1 }),
        res({ workspaceId: 'x', generation: 2, createdAtMs: YOUNG }),
        res({ workspaceId: 'x', kind: 'volume', instanceId: 'ws-x-configs', generation: 0 }),
      ],
      {},
    );
    expect(out.removals.map((r) => [r.generation, r.instanceIds])).toEqual([[1, ['i-x-1']]]);
  });

  it("judges a generation's own volume (an EC2 root volume left behind) with its generation", () => {
    const ec2 = (over: Partial<ListedResource>) => res({ backend: 'ec2', ...over });
    const disk = (workspaceId: string, generation: number, createdAtMs = OLD) =>
      ec2({
        kind: 'generation-volume',
        workspaceId,
        generation,
        instanceId: `vol-${workspaceId}-${generation}`,
        createdAtMs,
      });
    const out = select(
      [
        // Live workspace at 3: the superseded generation's volume goes with its instance; the live
        // generation's stays (its root detached by hand, say), as does one ahead of the row.
        ec2({ generation: 2 }),
        disk('w', 2),
        disk('w', 3),
        disk('w', 4),
        // A deleted workspace's volume, nothing else left: the workspace goes whole.
        disk('gone', 1),
        // An unknown workspace with a young volume: the old generation alone, the young one waits.
        disk('x', 1),
        disk('x', 2, YOUNG),
      ],
      {
        w: { backend: 'ec2', generation: 3, status: 'online' },
        gone: { backend: 'ec2', generation: 1, status: 'deleted' },
      },
    );
    expect(
      out.removals.map((r) => [r.workspaceId, r.generation, r.instanceIds, r.volumeIds, r.reason]),
    ).toEqual([
      ['gone', null, [], ['vol-gone-1'], 'deleted'],
      ['w', 2, ['i-w-2'], ['vol-w-2'], 'superseded'],
      ['x', 1, [], ['vol-x-1'], 'unknown'],
    ]);
    expect(out.counts).toEqual({ listed: 7, live: 2, young: 1, foreign: 0 });
  });

  it('never touches a resource of an org this deployment does not know', () => {
    const out = select([res({ orgId: 'elsewhere' })], {});
    expect(out.removals).toEqual([]);
    expect(out.counts.foreign).toBe(1);
  });

  it('never selects a live or young resource, and accounts for every listed one', () => {
    const arb = fc.array(
      fc.record({
        backend: fc.constantFrom('docker' as const, 'ec2' as const),
        workspaceId: fc.constantFrom('a', 'b', 'c', 'd'),
        orgId: fc.constantFrom(ORG, 'other'),
        generation: fc.integer({ min: 1, max: 4 }),
        kind: fc.constantFrom('instance' as const, 'generation-volume' as const),
        young: fc.boolean(),
      }),
      { maxLength: 30 },
    );
    const rows = fc.dictionary(
      fc.constantFrom('a', 'b', 'c'),
      fc.record({
        backend: fc.constantFrom('docker' as const, 'ec2' as const),
        generation: fc.integer({ min: 1, max: 4 }),
        status: fc.constantFrom('online', 'deleted', 'stopped'),
      }),
    );
    fc.assert(
      fc.property(arb, rows, (items, ws) => {
        const resources = items.map((it, i) =>
          res({ ...it, instanceId: `i${i}`, createdAtMs: it.young ? YOUNG : OLD }),
        );
        const out = select(resources, ws);
        const chosen = new Set(out.removals.flatMap((r) => [...r.instanceIds, ...(r.volumeIds ?? [])]));
        for (const r of resources) {
          const w = ws[r.workspaceId];
          const live =
            !!w && w.backend === r.backend && w.status !== 'deleted' && r.generation >= w.generation;
          if (live || r.createdAtMs === YOUNG || r.orgId !== ORG)
            expect(chosen.has(r.instanceId)).toBe(false);
          else expect(chosen.has(r.instanceId)).toBe(true);
        }
        const c = out.counts;
        expect(c.live + c.foreign + c.young + chosen.size).toBe(resources.length);
      }),
    );
  });
});

describe('selectOrphanNetworks', () => {
  const net = (
    orgId: string,
    createdAtMs = OLD,
    backend: ListedNetwork['backend'] = 'docker',
  ): ListedNetwork => ({
    backend,
    name: `wo-org-${orgId}`,
    orgId,
    createdAtMs,
  });
  const pick = (networks: ListedNetwork[], live: Array<[ListedNetwork['backend'], string]> = []) =>
    selectOrphanNetworks({
      networks,
      liveOrgs: new Set(live.map(([b, o]) => liveOrgKey(b, o))),
      knownOrgs: new Set(['a', 'b', 'c', 'd']),
      nowMs: NOW,
      graceMs: GRACE,
    });

  it('removes the network of a known org with no live workspace on that backend, once past the grace period', () => {
    const out = pick(
      [net('a'), net('b'), net('c', YOUNG), net('elsewhere'), net('d')],
      // b has a live docker workspace; d only an ec2 one, which needs no docker network.
      [
        ['docker', 'b'],
        ['ec2', 'd'],
      ],
    );
    expect(out.removals).toEqual([
      { backend: 'docker', orgId: 'a', name: 'wo-org-a' },
      { backend: 'docker', orgId: 'd', name: 'wo-org-d' },
    ]);
    expect(out.counts).toEqual({ listed: 5, live: 1, young: 1, foreign: 1 });
  });

  it('never selects a network whose org is live, young or foreign, and accounts for every one', () => {
    const arb = fc.array(
      fc.record({ orgId: fc.constantFrom('a', 'b', 'c', 'x'), young: fc.boolean(), live: fc.boolean() }),
      { maxLength: 20 },
    );
    fc.assert(
      fc.property(arb, (items) => {
        const networks = items.map((it) => net(it.orgId, it.young ? YOUNG : OLD));
        const live = items.filter((it) => it.live).map((it) => ['docker', it.orgId] as ['docker', string]);
        const out = pick(networks, live);
        const liveSet = new Set(live.map(([, o]) => o));
        for (const r of out.removals) {
          expect(liveSet.has(r.orgId)).toBe(false);
          expect(r.orgId).not.toBe('x');
        }
        const c = out.counts;
        expect(c.live + c.young + c.foreign + out.removals.length).toBe(networks.length);
      }),
    );
  });
});
