/** The edge primitives every route's schemas are built from, and the PostgreSQL safety net. */
import fc from 'fast-check';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { fromPostgres } from '../../src/api/errors.js';
import { INT4_MAX, int4, isRealTimestamp, isStorableText, jsonProblem, text } from '../../src/api/schemas.js';

describe('isRealTimestamp', () => {
  it.each([
    '2024-02-29T00:00:00Z',
    '2024-02-29T23:59:59.123456Z',
    '1999-12-31T23:59:59+05:30',
    '2030-01-01T00:00:00-0800',
    '0001-01-01T00:00:00Z',
  ])('accepts %s', (s) => expect(isRealTimestamp(s)).toBe(true));

  it.each([
    '2024-02-30T00:00:00Z',
    '2023-02-29T00:00:00Z',
    '2024-04-31T00:00:00Z',
    '2024-13-01T00:00:00Z',
    '2024-00-10T00:00:00Z',
    '2024-01-01T24:00:00Z',
    '2024-01-01T23:60:00Z',
    '2024-01-01T23:59:60Z',
    '0000-01-01T00:00:00Z',
    '2024-01-01T00:00:00+16:00',
    '2024-01-01T00:00:00',
    '2024-01-01',
    'yesterday',
  ])('refuses %s', (s) => expect(isRealTimestamp(s)).toBe(false));

  it('accepts every instant Date can print, years 1..9999 (property)', () => {
    fc.assert(
      fc.property(
        fc.date({
          min: new Date('0001-01-01T00:00:00Z'),
          max: new Date('9999-12-31T23:59:59Z'),
          noInvalidDate: true,
        }),
        (d) => isRealTimestamp(d.toISOString()),
      ),
      { seed: 7, numRuns: 2000 },
    );
  });

  it('refuses day numbers past the end of their month (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9999 }), fc.integer({ min: 1, max: 12 }), (y, m) => {
        const last = new Date(Date.UTC(2000, m, 0));
        last.setUTCFullYear(y, m, 0);
        const days = last.getUTCDate();
        const iso = (d: number) =>
          `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}T00:00:00Z`;
        return isRealTimestamp(iso(days)) && (days === 31 || !isRealTimestamp(iso(days + 1)));
      }),
      { seed: 7, numRuns: 1000 },
    );
  });
});

describe('storable text and JSON', () => {
  it('refuses NUL and unpaired surrogates, keeps paired ones', () => {
    expect(isStorableText('a\u0000b')).toBe(false);
    expect(isStorableText('\ud800')).toBe(false);
    expect(isStorableText('x\udc00')).toBe(false);
    expect(isStorableText('😀 ok')).toBe(true);
    expect(text({ max: 5 }).safeParse('a\u0000').success).toBe(false);
    expect(text({ max: 5 }).safeParse('abcdef').success).toBe(false);
  });

  it('finds the problem anywhere in a JSON value, including keys and depth', () => {
    expect(jsonProblem({ a: [1, { b: 'x\u0000' }] })).toMatch(/NUL/);
    expect(jsonProblem({ ['k\u0000']: 1 })).toMatch(/keys/);
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    expect(jsonProblem(deep)).toMatch(/nested/);
    expect(jsonProblem({ a: [1, 'b', null, true, { c: 2.5 }] })).toBeNull();
  });

  it('int4 matches PostgreSQL integer', () => {
    expect(int4().safeParse(INT4_MAX).success).toBe(true);
    expect(int4().safeParse(INT4_MAX + 1).success).toBe(false);
    expect(int4().safeParse(3_000_000_000).success).toBe(false);
    expect(int4().safeParse(1.5).success).toBe(false);
  });
});

describe('fromPostgres', () => {
  const dbError = (fields: Partial<pg.DatabaseError>) =>
    Object.assign(new pg.DatabaseError('boom', 0, 'error'), fields);

  it('class 22 → 400 naming the column when given, without PostgreSQL text', () => {
    const e = fromPostgres(
      dbError({ code: '22003', column: 'budget_limit_cents', message: 'value "3" secret' }),
    );
    expect(e?.status).toBe(400);
    expect(e?.extra.field).toBe('budgetLimitCents');
    expect(e?.message).not.toContain('secret');
  });

  it('a foreign key violation → 400 with the constraint’s column; a unique violation → 409', () => {
    const fk = fromPostgres(
      dbError({ code: '23503', table: 'workspaces', constraint: 'workspaces_org_id_fkey' }),
    );
    expect(fk?.status).toBe(400);
    expect(fk?.extra.field).toBe('orgId');
    const uniq = fromPostgres(
      dbError({ code: '23505', table: 'api_keys', constraint: 'api_keys_key_hash_key' }),
    );
    expect(uniq?.status).toBe(409);
    expect(uniq?.extra.field).toBe('keyHash');
  });

  it('anything else is not the caller’s: left alone', () => {
    expect(fromPostgres(dbError({ code: '57014' }))).toBeNull();
    expect(fromPostgres(new Error('x'))).toBeNull();
  });
});
