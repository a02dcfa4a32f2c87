/**
 * A 5xx answer says little on purpose (no backend detail leaves the service); the log says why: a
 * files call's 503 once left no trace of its backend's error anywhere.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { describe, expect, it } from 'vitest';
import { errorHandler } from '../../src/api/errors.js';
import { AppError } from '../../src/app/errors.js';

describe('errorHandler', () => {
  it('logs the cause of a 5xx answer, and sends none of it', async () => {
    const warned: Array<{ obj: Record<string, unknown>; msg: string }> = [];
    const app = express();
    const cause = new Error('ssh ec2-user@10.0.0.7:22: connection closed');
    app.get('/503', () => {
      throw new AppError(
        'unavailable',
        'backend_unavailable',
        'the workspace backend is unavailable; retry',
        { retryAfterSeconds: 1 },
        { cause },
      );
    });
    app.get('/409', () => {
      throw new AppError('conflict', 'not_online', 'workspace w is stopping, not online', {}, { cause });
    });
    app.use(
      errorHandler({
        error: () => undefined,
        warn: (obj, msg) => warned.push({ obj: obj as Record<string, unknown>, msg }),
      }),
    );
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const res = await fetch(`${base}/503`);
      expect(res.status).toBe(503);
      const text = await res.text();
      expect(text).not.toContain('10.0.0.7');
      expect(warned).toEqual([
        {
          obj: expect.objectContaining({ err: cause, code: 'backend_unavailable', path: '/503' }),
          msg: 'answered with a 5xx',
        },
      ]);
      // A 4xx is the caller's: not logged as the service's failure.
      expect((await fetch(`${base}/409`)).status).toBe(409);
      expect(warned).toHaveLength(1);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
