/**
 * Which database failures the API answers 503 `database_unavailable` with Retry-After (the caller
 * may try again shortly) rather than 500: PostgreSQL's own SQLSTATEs of a server that cannot serve
 * now, pg's connection failures, and socket errors the request pool marks as the database's.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { fromDatabaseOutage } from '../../src/api/errors.js';
import { databaseUnavailable } from '../../src/db/unavailable.js';

function serverError(code: string): pg.DatabaseError {
  const err = new pg.DatabaseError('server says no', 0, 'error');
  err.code = code;
  err.severity = 'ERROR';
  return err;
}

describe('databaseUnavailable', () => {
  it.each([
    ['08006', 'connection failure'],
    ['57P01', 'admin shutdown'],
    ['53000', 'insufficient resources'],
    ['53100', 'disk full'],
    ['53200', 'out of memory'],
    ['53300', 'too many connections'],
  ])('SQLSTATE %s (%s) is an outage: 503 with Retry-After', (code) => {
    expect(databaseUnavailable(serverError(code))).toBe(true);
    const http = fromDatabaseOutage(serverError(code));
    expect(http).toMatchObject({ status: 503, code: 'database_unavailable' });
    expect(http?.extra.retryAfterSeconds).toBeGreaterThan(0);
  });

  it.each([
    ['53400', 'configuration limit exceeded: no retry lifts it'],
    ['23505', 'unique violation: the caller'],
    ['42P01', 'undefined table: a bug'],
  ])('SQLSTATE %s (%s) is not', (code) => {
    expect(databaseUnavailable(serverError(code))).toBe(false);
    expect(fromDatabaseOutage(serverError(code))).toBeNull();
  });

  it("pg's own connection failures are; an unmarked socket error is not (it may be dockerd's)", () => {
    expect(databaseUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(databaseUnavailable(new Error('timeout exceeded when trying to connect'))).toBe(true);
    expect(
      databaseUnavailable(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })),
    ).toBe(false);
  });
});
