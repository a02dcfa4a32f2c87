/** PostgreSQL errors that no retry can fix become typed, non-retryable activity failures. */
import { ApplicationFailure } from '@temporalio/activity';
import { describe, expect, it } from 'vitest';
import { dbCall } from '../../src/activities/index.js';
import { DbFailureType } from '../../src/workflows/messages.js';

const pgError = (code: string, message = 'boom') => Object.assign(new Error(message), { code });
const failing = (err: unknown) => dbCall(() => Promise.reject(err));

describe('dbCall', () => {
  it('class 22 (data exception) → non-retryable PgDataError naming the SQLSTATE', async () => {
    const err = await failing(pgError('22P05', 'unsupported Unicode escape sequence')).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    const f = err as ApplicationFailure;
    expect([f.type, f.nonRetryable]).toEqual([DbFailureType.Data, true]);
    expect(f.message).toBe('unsupported Unicode escape sequence (SQLSTATE 22P05)');
  });

  it('class 23 (integrity violation) → non-retryable PgIntegrityError', async () => {
    const f = (await failing(pgError('23505')).catch((e: unknown) => e)) as ApplicationFailure;
    expect([f.type, f.nonRetryable]).toEqual([DbFailureType.Integrity, true]);
  });

  it('anything else (connection loss, no SQLSTATE) stays as it was: retryable', async () => {
    const lost = pgError('08006');
    await expect(failing(lost)).rejects.toBe(lost);
    const plain = new Error('ECONNREFUSED');
    await expect(failing(plain)).rejects.toBe(plain);
    const odd = Object.assign(new Error('not a sqlstate'), { code: 'ECONNRESET' });
    await expect(failing(odd)).rejects.toBe(odd);
  });

  it('passes results through', async () => {
    expect(await dbCall(async () => 42)).toBe(42);
  });
});
