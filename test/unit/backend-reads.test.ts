/**
 * The bound on backend reads an agent's requests cause (src/a2a/backend-reads.ts), on a fake clock:
 * endpoint re-reads per path at most once per interval (docker 5 s, ec2 a minute) per workspace and
 * generation, a forced one always.
 */
import { describe, expect, it } from 'vitest';
import { BACKEND_READ_MIN_MS, BackendReads } from '../../src/a2a/backend-reads.js';

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
