/** An application service's refusal, as the API answers it: status, code, message, field, Retry-After. */
import { describe, expect, it } from 'vitest';
import {
  AppError,
  conflicting,
  invalid,
  missing,
  quotaExceeded,
  temporalDown,
} from '../../src/app/errors.js';
import { fromApp } from '../../src/api/errors.js';

describe('fromApp', () => {
  it.each([
    [invalid('name: too long', 'name'), 400, 'invalid_request', 'name: too long', { field: 'name' }],
    [
      new AppError('payment_required', 'budget_exceeded', 'over budget'),
      402,
      'budget_exceeded',
      'over budget',
      {},
    ],
    [quotaExceeded('at most 20'), 403, 'quota_exceeded', 'at most 20', {}],
    [missing('schedule'), 404, 'not_found', 'schedule not found', {}],
    [conflicting('workspace is being deleted'), 409, 'conflict', 'workspace is being deleted', {}],
    [new AppError('too_large', 'file_too_large', 'capped'), 413, 'file_too_large', 'capped', {}],
    [new AppError('upstream_failed', 'backend_error', 'refused'), 502, 'backend_error', 'refused', {}],
    [temporalDown(), 503, 'temporal_unavailable', 'workflow service unavailable', { retryAfterSeconds: 5 }],
  ])('%s → %i %s', (err, status, code, message, extra) => {
    const http = fromApp(err);
    expect(http).toMatchObject({ status, code, message });
    expect(Object.fromEntries(Object.entries(http!.extra).filter(([, v]) => v !== undefined))).toEqual(extra);
  });

  it('leaves every other error alone', () => {
    expect(fromApp(new Error('boom'))).toBeNull();
  });
});
