import { describe, expect, it } from 'vitest';
import { CappedCounts } from '../../src/api/capped-counts.js';

describe('CappedCounts', () => {
  it('refuses past the total and past a key, names which, and gives back once per take', () => {
    const c = new CappedCounts(3, 2);
    const a1 = c.take('a');
    const a2 = c.take('a');
    expect(typeof a1).toBe('function');
    expect(typeof a2).toBe('function');
    expect(c.take('a')).toBe('per_key');
    const b1 = c.take('b');
    expect(typeof b1).toBe('function');
    expect(c.take('b')).toBe('max');
    expect(c.held).toBe(3);
    (a1 as () => void)();
    (a1 as () => void)();
    expect(c.held).toBe(2);
    expect(typeof c.take('b')).toBe('function');
    expect(c.take('c')).toBe('max');
  });

  it('without a per-key cap only the total counts', () => {
    const c = new CappedCounts(2, null);
    expect(typeof c.take('x')).toBe('function');
    expect(typeof c.take('x')).toBe('function');
    expect(c.take('x')).toBe('max');
  });
});
