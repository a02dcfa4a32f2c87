/**
 * Group commit of activity rows (ActivityBatcher) against a fake INSERT the test settles by hand:
 * calls of one tick share an INSERT, calls made while one runs share the next, a failed INSERT
 * rejects every caller of its batch (and only those) unless PostgreSQL refused it (then each
 * caller's rows go again alone), big batches are split, order is kept.
 */
import { describe, expect, it } from 'vitest';
import {
  ActivityBatcher,
  insertA2AActivity,
  PREPARED_BATCH_ROWS,
  type NewA2AActivity,
} from '../../src/db/activity.js';
import type { Queryable } from '../../src/db/queryable.js';

const row = (n: number): NewA2AActivity => ({
  workspaceId: 'w'.repeat(16),
  peerId: null,
  direction: 'inbound',
  method: 'message/send',
  status: 200,
  durationMs: n,
  summary: `call ${n}`,
  requestText: `req ${n}`,
  responseText: `res ${n}`,
});

/** An insert whose every call waits until the test settles it. */
function manualInsert() {
  const calls: Array<{ rows: NewA2AActivity[]; ok: () => void; fail: (e: Error) => void }> = [];
  const insert = (rows: NewA2AActivity[]) => new Promise<void>((ok, fail) => calls.push({ rows, ok, fail }));
  return { calls, insert };
}

const settled = async <T>(p: Promise<T>) => {
  const out = { done: false };
  void p.then(
    () => (out.done = true),
    () => (out.done = true),
  );
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return out.done;
};

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('ActivityBatcher', () => {
  it('shares one INSERT between the calls of one tick, and resolves each only once committed', async () => {
    const m = manualInsert();
    const b = new ActivityBatcher(m.insert);
    const ps = [b.write([row(1)]), b.write([row(2), row(3)]), b.write([row(4)])];
    await tick();
    expect(m.calls.length).toBe(1);
    expect(m.calls[0]!.rows.map((r) => r.durationMs)).toEqual([1, 2, 3, 4]);
    expect(await settled(ps[0]!)).toBe(false);
    m.calls[0]!.ok();
    await Promise.all(ps);
  });

  it('calls made while an INSERT runs share the next one', async () => {
    const m = manualInsert();
    const b = new ActivityBatcher(m.insert);
    const first = b.write([row(1)]);
    await tick();
    const later = Array.from({ length: 10 }, (_, i) => b.write([row(10 + i)]));
    await tick();
    expect(m.calls.length).toBe(1);
    m.calls[0]!.ok();
    await first;
    await tick();
    expect(m.calls.length).toBe(2);
    expect(m.calls[1]!.rows.length).toBe(10);
    m.calls[1]!.ok();
    await Promise.all(later);
  });

  it('a failed INSERT rejects every caller of its batch, and the next batch still goes', async () => {
    const m = manualInsert();
    const b = new ActivityBatcher(m.insert);
    const a = b.write([row(1)]);
    const c = b.write([row(2)]);
    await tick();
    const next = b.write([row(3)]);
    m.calls[0]!.fail(new Error('db down'));
    await expect(a).rejects.toThrow('db down');
    await expect(c).rejects.toThrow('db down');
    await tick();
    expect(m.calls.length).toBe(2);
    expect(m.calls[1]!.rows.map((r) => r.durationMs)).toEqual([3]);
    m.calls[1]!.ok();
    await expect(next).resolves.toBeUndefined();
  });

  it("a batch PostgreSQL refused goes again caller by caller: one caller's bad row fails only that caller", async () => {
    const m = manualInsert();
    const b = new ActivityBatcher(m.insert);
    const outcomes = [b.write([row(1)]), b.write([row(2), row(3)]), b.write([row(4)])].map((p) =>
      p.then(
        () => 'written',
        (err: unknown) => err,
      ),
    );
    await tick();
    const refused = Object.assign(new Error('insert violates foreign key constraint'), {
      code: '23503',
      severity: 'ERROR',
    });
    m.calls[0]!.fail(refused);
    await tick();
    // Each caller's rows alone, in order, one at a time.
    expect(m.calls.length).toBe(2);
    expect(m.calls[1]!.rows.map((r) => r.durationMs)).toEqual([1]);
    m.calls[1]!.ok();
    await tick();
    expect(m.calls[2]!.rows.map((r) => r.durationMs)).toEqual([2, 3]);
    m.calls[2]!.fail(refused);
    await tick();
    expect(m.calls[3]!.rows.map((r) => r.durationMs)).toEqual([4]);
    m.calls[3]!.ok();
    expect(await Promise.all(outcomes)).toEqual(['written', refused, 'written']);
  });

  it.each([
    [
      'the connection went',
      Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' }),
    ],
    // Five capitals like a SQLSTATE, but the socket's, not the server's.
    ['a write failed', Object.assign(new Error('write EPIPE'), { code: 'EPIPE', syscall: 'write' })],
    ['the statement timed out here', new Error('Query read timeout')],
  ])('a batch whose outcome is unknown (%s) is not sent again', async (_why, failure) => {
    const m = manualInsert();
    const b = new ActivityBatcher(m.insert);
    const ps = [b.write([row(1)]), b.write([row(2)])];
    await tick();
    m.calls[0]!.fail(failure);
    await expect(ps[0]).rejects.toBe(failure);
    await expect(ps[1]).rejects.toBe(failure);
    await b.drain();
    // Had it committed before the failure, a second INSERT would write the rows twice.
    expect(m.calls.length).toBe(1);
  });

  it('splits past maxRows without splitting one call, and drain waits for everything', async () => {
    const sizes: number[] = [];
    const b = new ActivityBatcher(async (rows) => {
      sizes.push(rows.length);
    }, 3);
    const ps = [b.write([row(1), row(2)]), b.write([row(3), row(4)]), b.write([row(5)]), b.write([row(6)])];
    await b.drain();
    await Promise.all(ps);
    expect(sizes).toEqual([2, 3, 1]);
    expect(await settled(b.drain())).toBe(true);
  });

  it('an empty write settles at once without an INSERT', async () => {
    const m = manualInsert();
    const b = new ActivityBatcher(m.insert);
    await b.write([]);
    expect(m.calls.length).toBe(0);
  });
});

/** A fake pool that records each statement: text or a prepared one's config. */
function recordingDb() {
  const seen: Array<{ sql: string; params: unknown[]; name?: string }> = [];
  const db = {
    query: (async (q: string | { name?: string; text: string; values: unknown[] }, params?: unknown[]) => {
      const entry =
        typeof q === 'string'
          ? { sql: q, params: params ?? [] }
          : { sql: q.text, params: q.values, name: q.name };
      seen.push(entry);
      return { rows: [], rowCount: entry.params.length / 10 };
    }) as never, // the fake answers only this INSERT
  } satisfies Queryable;
  return { seen, db };
}

describe('insertA2AActivity', () => {
  it('a batch of the common sizes is a prepared statement named by its row count; larger ones are not', async () => {
    const { seen, db } = recordingDb();
    await insertA2AActivity(db, [row(1)]);
    await insertA2AActivity(db, [row(1), row(2), row(3)]);
    await insertA2AActivity(
      db,
      Array.from({ length: PREPARED_BATCH_ROWS }, (_, i) => row(i)),
    );
    await insertA2AActivity(
      db,
      Array.from({ length: PREPARED_BATCH_ROWS + 1 }, (_, i) => row(i)),
    );
    expect(seen.map((s) => s.name)).toEqual([
      'wo_activity_insert_1',
      'wo_activity_insert_3',
      `wo_activity_insert_${PREPARED_BATCH_ROWS}`,
      undefined,
    ]);
    expect(seen.map((s) => s.params.length)).toEqual([
      10,
      30,
      PREPARED_BATCH_ROWS * 10,
      (PREPARED_BATCH_ROWS + 1) * 10,
    ]);
  });

  it('writes many rows in one statement, each row with its own ten parameters in order', async () => {
    const { seen, db } = recordingDb();
    await insertA2AActivity(db, [row(1), { ...row(2), type: 'schedule', peerId: 'p'.repeat(16) }]);
    expect(seen.length).toBe(1);
    expect(seen[0]!.sql).toContain('($11, $20, $12');
    expect(seen[0]!.params.slice(0, 10)).toEqual([
      'w'.repeat(16),
      null,
      'inbound',
      'message/send',
      '200',
      1,
      'call 1',
      'req 1',
      'res 1',
      'a2a',
    ]);
    expect(seen[0]!.params[11]).toBe('p'.repeat(16));
    expect(seen[0]!.params[19]).toBe('schedule');
  });
});
