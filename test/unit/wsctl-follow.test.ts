/**
 * How `wsctl` follows a workspace's `/events` (a local server stands in for the API): history from
 * before the request is skipped, a restart is done only at a new generation, a failure at any
 * generation ends the wait, and a goal the stream never delivers is still seen by the slow poll.
 */
import { createServer, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../../src/cli/wsctl/http.js';
import { Output } from '../../src/cli/wsctl/output.js';
import { follow, type Transition } from '../../src/cli/wsctl/progress.js';
import type { Ctx } from '../../src/cli/wsctl/context.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const ev = (status: string, generation: number, s: number, phase: string | null = null): Transition => ({
  status,
  phase,
  generation,
  ts: at(s),
});

describe('follow', () => {
  let server: Server;
  let events: Transition[] = [];
  let current: Transition = ev('online', 1, 0);
  const open = new Set<ServerResponse>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url!.endsWith('/events')) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        events.forEach((e, i) => res.write(`id: ${i + 1}\ndata: ${JSON.stringify(e)}\n\n`));
        // Kept open, as the server does until `deleted`.
        open.add(res);
        res.on('close', () => open.delete(res));
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ...current, updatedAt: current.ts, id: 'w1', name: 'w' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    for (const r of open) r.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function ctx(): { ctx: Ctx; output: () => string } {
    const stdout = new PassThrough();
    let out = '';
    stdout.on('data', (d: Buffer) => (out += d.toString()));
    const io = { stdout, stderr: new PassThrough(), stdin: new PassThrough(), env: {} };
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return {
      ctx: {
        io,
        out: new Output(io, false),
        client: new Client(url, 'tok'),
        connection: { url, token: 'tok', sources: { url: 'flag', token: 'flag' } },
        configFile: '/dev/null',
      },
      output: () => out,
    };
  }

  const online = (t: Transition) =>
    t.status === 'online' ? 'done' : t.status === 'failed' ? 'failed' : null;

  it('a restart: old history skipped, done only at the new generation, each step timed', async () => {
    events = [
      ev('failed', 1, 1),
      ev('online', 1, 5),
      ev('restarting', 1, 10, 'preparing'),
      ev('online', 1, 11),
      ev('restarting', 2, 12, 'creating'),
      ev('online', 2, 14.5, 'platform-health-ok'),
    ];
    const c = ctx();
    const r = await follow(c.ctx, 'w1', {
      since: T0 + 9000,
      generationAbove: 1,
      goal: online,
      timeoutMs: 10_000,
    });
    expect(r.verdict).toBe('done');
    expect(r.last.generation).toBe(2);
    expect(c.output().split('\n').filter(Boolean)).toEqual([
      '✔ restarting · preparing (1.0s)',
      '✔ online (1.0s)',
      '✔ restarting · creating (2.5s)',
      '✔ online · platform-health-ok',
    ]);
  });

  it('a failure at the old generation ends a restart wait', async () => {
    events = [ev('online', 1, 5), ev('restarting', 1, 10, 'preparing'), ev('failed', 1, 11)];
    const r = await follow(ctx().ctx, 'w1', {
      since: T0 + 9000,
      generationAbove: 1,
      goal: online,
      timeoutMs: 10_000,
    });
    expect(r.verdict).toBe('failed');
    expect(r.last).toMatchObject({ status: 'failed', generation: 1 });
  });

  it('a goal the stream never delivers is seen by the poll', async () => {
    events = [ev('deleting', 1, 10)];
    current = ev('deleted', 1, 11);
    const r = await follow(ctx().ctx, 'w1', {
      since: T0 + 9000,
      goal: (t) => (t.status === 'deleted' ? 'done' : null),
      timeoutMs: 10_000,
      pollMs: 50,
    });
    expect(r.verdict).toBe('done');
    expect(r.last.status).toBe('deleted');
  });

  it('times out with a one-line error', async () => {
    events = [ev('provisioning', 1, 10)];
    current = ev('provisioning', 1, 10);
    await expect(
      follow(ctx().ctx, 'w1', { since: null, goal: online, timeoutMs: 300, pollMs: 50 }),
    ).rejects.toThrow(/^timed out after 300ms waiting for workspace w1$/);
  });
});
