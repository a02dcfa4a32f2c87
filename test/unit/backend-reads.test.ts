/**
 * The bound on backend reads an agent's requests cause (src/a2a/backend-reads.ts), on a fake clock:
 * endpoint re-reads per path at most once per interval (docker 5 s, ec2 a minute) per workspace and
 * generation, a forced one always; liveness checks one at a time, their status read reused within
 * the interval while the agent's /health is probed every time.
 */
import { describe, expect, it } from 'vitest';
import { BACKEND_READ_MIN_MS, BackendReads, type Liveness } from '../../src/a2a/backend-reads.js';
import type { ResourceStatus } from '../../src/backends/backend.js';

function clocked() {
  let now = 1_000;
  return { reads: new BackendReads(BACKEND_READ_MIN_MS, () => now), advance: (ms: number) => (now += ms) };
}

describe('endpoint re-reads', () => {
  it('each path at most once per interval and workspace: docker 5 s, ec2 a minute', () => {
    for (const backend of ['docker', 'ec2'] as const) {
      const { reads, advance } = clocked();
      const min = BACKEND_READ_MIN_MS[backend];
      const w = { id: `${backend}-1`, backend, generation: 1 };
      expect(reads.due(w, 'heartbeat')).toBe(true);
      advance(min - 1);
      expect(reads.due(w, 'heartbeat')).toBe(false);
      // Other paths and other workspaces have their own bound.
      expect(reads.due(w, 'register')).toBe(true);
      expect(reads.due(w, 'forward')).toBe(true);
      expect(reads.due({ ...w, id: `${backend}-2` }, 'heartbeat')).toBe(true);
      advance(1);
      expect(reads.due(w, 'heartbeat')).toBe(true);
    }
    // Under the default heartbeat interval (15 s): a docker agent's every heartbeat still re-reads.
    expect(BACKEND_READ_MIN_MS.docker).toBeLessThan(15_000);
  });

  it('a new generation reads at once; a forced read always, and the interval starts there', () => {
    const { reads, advance } = clocked();
    const w = { id: 'e', backend: 'ec2' as const, generation: 1 };
    expect(reads.due(w, 'register')).toBe(true);
    expect(reads.due(w, 'register')).toBe(false);
    expect(reads.due({ ...w, generation: 2 }, 'register')).toBe(true);
    expect(reads.due({ ...w, generation: 2 }, 'register', true)).toBe(true);
    advance(BACKEND_READ_MIN_MS.ec2 - 1);
    expect(reads.due({ ...w, generation: 2 }, 'register')).toBe(false);
  });
});

describe('liveness checks', () => {
  function probeSetup() {
    const t = clocked();
    const asked = { status: 0, probe: 0 };
    const told: Liveness[] = [];
    let status: ResourceStatus = 'running';
    let reachable = true;
    let hold: Promise<void> | null = null;
    const ask = {
      status: async () => {
        asked.status++;
        await hold;
        return status;
      },
      probe: async () => {
        asked.probe++;
        await hold;
        return reachable;
      },
    };
    const tell = async (l: Liveness) => {
      told.push(l);
    };
    return {
      ...t,
      asked,
      told,
      check: (w: { id: string; backend: 'docker' | 'ec2'; generation: number }) =>
        t.reads.check(w, 'http://agent', ask, tell),
      set: (s: ResourceStatus, r: boolean) => ((status = s), (reachable = r)),
      holdWith: (p: Promise<void> | null) => (hold = p),
    };
  }
  const w = { id: 'w', backend: 'ec2' as const, generation: 1 };

  it('a running, reachable agent: the status is read once per interval, nothing told', async () => {
    const s = probeSetup();
    for (let i = 0; i < 50; i++) await s.check(w);
    expect(s.asked).toEqual({ status: 1, probe: 50 });
    expect(s.told).toEqual([]);
    s.advance(BACKEND_READ_MIN_MS.ec2);
    await s.check(w);
    expect(s.asked.status).toBe(2);
  });

  it('an unreachable agent is told every time, from one status read per interval', async () => {
    const s = probeSetup();
    s.set('running', false);
    for (let i = 0; i < 3; i++) await s.check(w);
    expect(s.asked.status).toBe(1);
    expect(s.told).toEqual(Array(3).fill({ reachable: false, resourceStatus: 'running' }));
  });

  it('checks at the same time are one: one status, one probe, one telling', async () => {
    const s = probeSetup();
    s.set('stopped', false);
    let release!: () => void;
    s.holdWith(new Promise<void>((resolve) => (release = resolve)));
    const all = Promise.all(Array.from({ length: 10 }, () => s.check(w)));
    release();
    await all;
    expect(s.asked).toEqual({ status: 1, probe: 1 });
    expect(s.told).toEqual([{ reachable: false, resourceStatus: 'stopped' }]);
  });

  it('a backend that cannot answer is unknown, and not asked again within the interval', async () => {
    const s = probeSetup();
    let calls = 0;
    const failing = {
      status: async (): Promise<ResourceStatus> => {
        calls++;
        throw new Error('RequestLimitExceeded');
      },
      probe: async () => false,
    };
    const told: Liveness[] = [];
    const tell = async (l: Liveness) => {
      told.push(l);
    };
    await s.reads.check(w, 'http://agent', failing, tell);
    await s.reads.check(w, 'http://agent', failing, tell);
    expect(calls).toBe(1);
    expect(told).toEqual(Array(2).fill({ reachable: false, resourceStatus: 'unknown' }));
  });

  it('a new generation is read at once', async () => {
    const s = probeSetup();
    await s.check(w);
    await s.check({ ...w, generation: 2 });
    expect(s.asked.status).toBe(2);
  });
});
