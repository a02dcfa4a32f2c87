/**
 * The database away: a request fails with 503 `database_unavailable` and Retry-After (as for
 * Temporal, api.md "never a hang") instead of hanging or answering 500, and the service serves
 * again once the database is back. A real PostgreSQL behind a TCP proxy the test turns bad.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { createOrg, startStack, type Stack } from '../support/stack.js';
import { tcpFaultProxy, type FaultProxy } from '../support/tcp-fault-proxy.js';
import { waitFor } from '../setup/wait-for.js';

describe('database outage', () => {
  let proxy: FaultProxy;
  let stack: Stack;
  let key: string;

  beforeAll(async () => {
    const url = new URL(inject('DATABASE_URL'));
    proxy = await tcpFaultProxy({ host: url.hostname, port: Number(url.port) });
    url.hostname = '127.0.0.1';
    url.port = String(proxy.port);
    // Bounds shorter than the defaults (5 s, 10 s): the same paths, a shorter test.
    stack = await startStack({
      worker: false,
      env: { DATABASE_URL: url.toString(), DB_CONNECT_TIMEOUT_MS: '1000', DB_REQUEST_TIMEOUT_MS: '2000' },
    });
    ({ apiKey: key } = await createOrg(stack, 'outage'));
  });

  afterAll(async () => {
    await proxy?.set('pass');
    await stack?.close();
    await proxy?.close();
  });

  const list = () => stack.api.call('GET', '/v1/workspaces', { token: key });

  const expectUnavailable = (r: Awaited<ReturnType<typeof list>>) => {
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe('database_unavailable');
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
  };

  it('a database that stops answering: 503 with Retry-After, for pooled and new connections alike', async () => {
    expect((await list()).status).toBe(200);
    await proxy.set('stall');
    // More requests at once than the pool has connections: pooled ones stall mid-statement, the
    // rest wait for a connection, and every one of them is answered.
    const answers = await Promise.all(Array.from({ length: 12 }, () => list()));
    for (const r of answers) expectUnavailable(r);
    const ready = await stack.api.call('GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.checks.database).not.toBe('ok');

    await proxy.set('pass');
    await waitFor(async () => (await list()).status === 200, {
      timeoutMs: 20_000,
      describe: 'the API serving again',
    });
  });

  it('a stopped database (connections cut, new ones refused): 503 with Retry-After, then serving again', async () => {
    expect((await list()).status).toBe(200);
    await proxy.set('refuse');
    expectUnavailable(await list());
    expectUnavailable(await list());
    await proxy.set('pass');
    await waitFor(async () => (await list()).status === 200, {
      timeoutMs: 20_000,
      describe: 'the API serving again',
    });
  });
});
