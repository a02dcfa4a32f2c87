/**
 * The terminal WebSocket on the real stack, the same test for each backend: a PTY in the workspace
 * (docker exec TTY / SSH shell on the ec2-sim VM), raw bytes both ways, resize control frames, the
 * contract's close codes, 20 concurrent terminals, and no exec / SSH session left behind.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import type { ApiDeps } from '../../src/api/deps.js';
import { attachTerminal, type TerminalOptions } from '../../src/api/terminal.js';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import { waitFor } from '../setup/wait-for.js';
import { createOrg, waitForStatus } from '../support/stack.js';
import { liveSessions, openTerm, type Term } from '../support/terminal-client.js';
import { leftovers, CONCURRENT_BLOCK, PARITY_BACKENDS, useParityStack } from './backends.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

async function closeCodeOf(baseUrl: string, id: string, token?: string): Promise<number> {
  const term = openTerm(baseUrl, id, { token });
  return (await term.closed).code;
}

describe.each(PARITY_BACKENDS)('%s terminal', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  /** A terminal attachment of its own on the stack's database and backends, with `opts`. */
  async function ownAttachment(opts: TerminalOptions) {
    const server: Server = createServer((_req, res) => res.writeHead(404).end());
    const deps = {
      db: t.stack.service.db.pool,
      backends: t.stack.service.backends,
      settings: { adminToken: t.stack.adminToken, rateLimitPerMinute: 600 },
      log: pino({ level: 'silent' }),
    } as unknown as ApiDeps;
    const terminals = attachTerminal(server, deps, opts);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { server, terminals, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }
  let id = '';
  let generation = 1;

  it('a workspace comes online', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'term', backend },
    });
    expect(created.status).toBe(202);
    id = created.body.id;
    const online = await waitForStatus(t.stack, t.key, id, 'online');
    generation = online.generation;
    expect(await liveSessions(backend, t.stack, id, generation)).toEqual([]);
  });

  it('stty size follows resize, echo round trip, exit closes 1000', async () => {
    const started = Date.now();
    const term = openTerm(t.stack.url, id, { token: t.key });
    await term.opened;
    term.resize(120, 40);
    term.send('stty size\n');
    await term.expectOutput(/^40 120\r?$/m);
    let mark = term.size();
    term.send('echo hello-$((6*7))\n');
    await term.expectOutput(/^hello-42\r?$/m, mark);
    mark = term.size();
    term.resize(100, 30);
    term.send('stty size\n');
    await term.expectOutput(/^30 100\r?$/m, mark);
    term.send('exit\n');
    const closed = await term.closed;
    expect(closed.code).toBe(1000);
    console.log(`[${backend}] interactive session: ${Date.now() - started} ms`);
    await waitFor(async () => (await liveSessions(backend, t.stack, id, generation)).length === 0, {
      timeoutMs: 10_000,
      describe: 'no terminal session left after exit',
    });
  });

  it('?token= works, and the initial size can be given as ?cols=&rows=', async () => {
    const term = openTerm(t.stack.url, id, { token: t.key, query: true });
    await term.opened;
    term.send('stty size; echo tok-$((1+1))\n');
    await term.expectOutput(/^tok-2\r?$/m);
    // The client closing the socket closes the session.
    term.ws.close(1000);
    await term.closed;
    await waitFor(async () => (await liveSessions(backend, t.stack, id, generation)).length === 0, {
      timeoutMs: 10_000,
      describe: 'no terminal session left after the client closed',
    });

    const sized = new WebSocket(
      `${t.stack.url.replace(/^http/, 'ws')}/v1/workspaces/${id}/terminal?cols=91&rows=33&token=${t.key}`,
    );
    const chunks: Buffer[] = [];
    sized.on('message', (d) => chunks.push(d as Buffer));
    await new Promise((r) => sized.once('open', r));
    // Both backends start the shell in /workspace.
    sized.send(Buffer.from('stty size; echo "cwd=$(pwd)"\n'));
    await waitFor(() => /^33 91\r?$/m.test(Buffer.concat(chunks).toString()), {
      timeoutMs: 15_000,
      describe: 'stty size to answer 33 91',
    });
    await waitFor(() => /^cwd=\/workspace\r?$/m.test(Buffer.concat(chunks).toString()), {
      timeoutMs: 15_000,
      describe: 'the shell to start in /workspace',
    });
    sized.close();
  });

  it('refuses with the contract close codes', async () => {
    expect(await closeCodeOf(t.stack.url, id)).toBe(4401);
    expect(await closeCodeOf(t.stack.url, id, 'wo_org_not-a-real-key')).toBe(4401);
    expect(await closeCodeOf(t.stack.url, id, 'garbage')).toBe(4401);
    // A workspace's own token is refused by name, not as an invalid one.
    const wsToken = await mintWorkspaceToken(t.stack.service.db.pool, id, generation);
    const refused = await openTerm(t.stack.url, id, { token: wsToken }).closed;
    expect(refused).toEqual({
      code: 4401,
      reason: expect.stringMatching(/workspace tokens cannot open terminals/),
    });
    expect(await closeCodeOf(t.stack.url, 'ffffffffffffffff', t.key)).toBe(4404);
    expect(await closeCodeOf(t.stack.url, 'not-an-id', t.key)).toBe(4404);
    const other = await createOrg(t.stack, 'other-org');
    expect(await closeCodeOf(t.stack.url, id, other.apiKey)).toBe(4404);
    // The admin token may open any org's terminal.
    const admin = openTerm(t.stack.url, id, { token: t.stack.adminToken });
    await admin.opened;
    admin.send('echo admin-$((2*3))\n');
    await admin.expectOutput(/^admin-6\r?$/m);
    admin.ws.close();
    await admin.closed;
  });

  it('garbage control frames close the socket 1007; unknown control types are ignored', async () => {
    const term = openTerm(t.stack.url, id, { token: t.key });
    await term.opened;
    term.ws.send(JSON.stringify({ type: 'hello' }));
    term.send('echo still-$((3+4))\n');
    await term.expectOutput(/^still-7\r?$/m);
    term.ws.send(JSON.stringify({ type: 'resize', cols: -1, rows: 'x' }));
    expect((await term.closed).code).toBe(1007);
    const bad = openTerm(t.stack.url, id, { token: t.key });
    await bad.opened;
    bad.ws.send('{not json');
    expect((await bad.closed).code).toBe(1007);
  });

  it('20 concurrent terminals each echo their own marker, and none is left after close', async () => {
    const started = Date.now();
    const terms = Array.from({ length: 20 }, () => openTerm(t.stack.url, id, { token: t.key }));
    await Promise.all(terms.map((x) => x.opened));
    terms.forEach((x, i) => x.send(`echo marker-$((${i}+1000))\n`));
    await Promise.all(
      terms.map((x, i) => x.expectOutput(new RegExp(`^marker-${i + 1000}\\r?$`, 'm'), 0, 60_000)),
    );
    for (const [i, x] of terms.entries()) {
      // Nobody sees another terminal's marker.
      const others = [...x.text().matchAll(/^marker-(\d+)\r?$/gm)].map((m) => Number(m[1]));
      expect(others).toEqual([i + 1000]);
    }
    const during = await liveSessions(backend, t.stack, id, generation);
    expect(during.length).toBeGreaterThanOrEqual(20);
    // Half exit their shell, half just drop the socket.
    terms.forEach((x, i) => (i % 2 === 0 ? x.send('exit\n') : x.ws.close()));
    const codes = await Promise.all(terms.map((x) => x.closed));
    expect(codes.every((c) => c.code === 1000 || c.code === 1005)).toBe(true);
    console.log(`[${backend}] 20 concurrent terminals: ${Date.now() - started} ms`);
    await waitFor(async () => (await liveSessions(backend, t.stack, id, generation)).length === 0, {
      timeoutMs: 15_000,
      describe: 'no terminal session left after 20 closed',
    });
  });

  it('at the cap of open sessions the next is refused 4429; one closed lets the next in', async () => {
    // The default cap (TERMINAL_MAX_SESSIONS) works by the same code: here an attachment with a small one.
    const CAP = 3;
    const { server, terminals, url } = await ownAttachment({ maxSessionsPerWorkspace: CAP });
    try {
      /** A terminal with a shell answering in it, or the close code it got instead. */
      const shell = async (n: number): Promise<Term | number> => {
        const x = openTerm(url, id, { token: t.key });
        // The socket opens before the session is allowed: only the shell's answer proves it.
        x.opened.then(() => x.send(`echo shell-$((${n}+1000))\n`)).catch(() => undefined);
        const answered = x.expectOutput(new RegExp(`^shell-${n + 1000}\\r?$`, 'm'), 0, 60_000);
        answered.catch(() => undefined);
        return Promise.race([answered.then(() => x), x.closed.then((c) => c.code)]);
      };
      const terms: Term[] = [];
      // One after another: each opening a shell (on ec2 an SSH login) while the previous ones stay open.
      for (let i = 0; i < CAP; i++) {
        const x = await shell(i);
        if (typeof x === 'number') throw new Error(`terminal ${i} closed ${x} under the cap`);
        terms.push(x);
      }
      expect(await shell(CAP)).toBe(4429);
      terms[0]!.send('exit\n');
      expect((await terms[0]!.closed).code).toBe(1000);
      // The count drops as the closed session ends: the next opening gets a shell.
      const next = await waitFor(
        async () => {
          const x = await shell(CAP + 1);
          return typeof x === 'number' ? null : x;
        },
        { timeoutMs: 15_000, describe: 'a terminal to open again under the cap' },
      );
      const rest = [...terms.slice(1), next];
      for (const x of rest) x.ws.close();
      await Promise.all(rest.map((x) => x.closed));
      await waitFor(async () => (await liveSessions(backend, t.stack, id, generation)).length === 0, {
        timeoutMs: 30_000,
        describe: `no terminal session left after ${CAP + 1} closed`,
      });
    } finally {
      await terminals.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('server pings keep sessions alive; a peer that stops answering is dropped with its session', async () => {
    const { server, terminals, url } = await ownAttachment({ pingIntervalMs: 150 });
    try {
      const pings: number[] = [];
      const ok = openTerm(url, id, { token: t.key });
      ok.ws.on('ping', () => pings.push(Date.now()));
      await ok.opened;
      await new Promise((r) => setTimeout(r, 700));
      expect(pings.length).toBeGreaterThanOrEqual(2);
      ok.send('echo alive-$((5*5))\n');
      await ok.expectOutput(/^alive-25\r?$/m);

      // A session whose shell takes no input has its socket reads paused (backpressure), so the
      // peer's pongs cannot be read: that must not count as a dead peer.
      const busy = openTerm(url, id, { token: t.key });
      await busy.opened;
      busy.send('stty raw -echo; echo RAW-READY; sleep 600\n');
      await busy.expectOutput(/RAW-READY/);
      const frame = Buffer.alloc(64 * 1024, 'a');
      for (let i = 0; i < 512; i++) busy.ws.send(frame, { binary: true });
      await waitFor(() => busy.ws.bufferedAmount > 0, { timeoutMs: 10_000, describe: 'input to back up' });
      const pausedAt = busy.ws.bufferedAmount;
      // Ten ping intervals with the input still backed up (a dropped socket would close with 1006).
      await new Promise((r) => setTimeout(r, 1500));
      expect(busy.ws.bufferedAmount, 'input stayed backed up').toBeGreaterThan(0);
      expect(pausedAt).toBeGreaterThan(0);
      expect(busy.ws.readyState).toBe(WebSocket.OPEN);
      busy.ws.terminate();

      const mute = new WebSocket(
        `${url.replace(/^http/, 'ws')}/v1/workspaces/${id}/terminal?token=${t.key}`,
        {
          autoPong: false,
        },
      );
      const muteClosed = new Promise<number>((r) => mute.once('close', (code) => r(code)));
      expect(await muteClosed).toBe(1006);
      ok.ws.close();
      await ok.closed;
      await waitFor(async () => (await liveSessions(backend, t.stack, id, generation)).length === 0, {
        timeoutMs: 10_000,
        describe: 'no terminal session left after the dropped peer',
      });

      // close() of the attachment closes every socket and session.
      const last = openTerm(url, id, { token: t.key });
      await last.opened;
      last.send('echo last\n');
      await last.expectOutput(/^last\r?$/m);
      await terminals.close();
      expect((await last.closed).code).toBe(1001);
      expect(await liveSessions(backend, t.stack, id, generation)).toEqual([]);
    } finally {
      await terminals.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('a stopped workspace refuses with 4409; delete leaves nothing', async () => {
    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/stop`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'stopped');
    expect(await closeCodeOf(t.stack.url, id, t.key)).toBe(4409);
    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
    expect(await leftovers(backend, t.stack.docker, id)).toEqual([]);
  });
});
