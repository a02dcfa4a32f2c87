/**
 * connectSsh's liveness check (SshTarget.stillRunning): a connection to an instance that is going
 * away (its workspace restarted, stopped or deleted) ends with `not_running` within seconds instead
 * of waiting out every try's handshake timeout; with the instance running, or the check unable to
 * tell (the EC2 API down), the tries go on as before and end `transient`.
 */
import net from 'node:net';
import ssh2 from 'ssh2';
import { afterEach, describe, expect, it } from 'vitest';
import { BackendError } from '../../src/backends/backend.js';
import { connectSsh, LIVENESS_CHECK_MS, type SshTarget } from '../../src/backends/ec2/ssh.js';

/** A TCP server standing in for sshd: `hang` accepts and never speaks, `drop` closes at once. */
async function fakeSshd(mode: 'hang' | 'drop') {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.resume(); // reads (and drops) what the client says, so its hanging up is seen
    if (mode === 'drop') s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    open: () => sockets.size,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const KEY = ssh2.utils.generateKeyPairSync('ed25519').private;

type Sshd = Awaited<ReturnType<typeof fakeSshd>>;
const servers: Sshd[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function target(mode: 'hang' | 'drop', stillRunning?: () => Promise<void>, connectTimeoutMs = 10_000) {
  const sshd = await fakeSshd(mode);
  servers.push(sshd);
  const t: SshTarget = {
    instanceId: 'i-0123456789abcdef0',
    host: '127.0.0.1',
    port: sshd.port,
    username: 'root',
    // No server here gets as far as authentication; the client only parses it.
    privateKey: KEY,
    hostKeys: { getHostKey: async () => null, putHostKey: async () => undefined },
    connectTimeoutMs,
    stillRunning,
  };
  return { sshd, t };
}

const gone = () =>
  new BackendError('not_running', 'ws-x-g1 is shutting-down: it left running during the call');

async function outcome(p: Promise<unknown>): Promise<{ err: BackendError; ms: number }> {
  const started = Date.now();
  const err = await p.then(
    () => {
      throw new Error('connected');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BackendError);
  return { err: err as BackendError, ms: Date.now() - started };
}

describe('connectSsh and an instance going away', () => {
  it('a handshake that hangs ends not_running at the first check that finds the instance gone', async () => {
    let checks = 0;
    const { sshd, t } = await target('hang', async () => {
      checks++;
      if (checks >= 2) throw gone();
    });
    const { err, ms } = await outcome(connectSsh(t));
    expect(err.code).toBe('not_running');
    expect(checks).toBe(2);
    // Two checks' worth, not the 10 s handshake timeout (let alone three of them).
    expect(ms).toBeGreaterThanOrEqual(2 * LIVENESS_CHECK_MS - 50);
    expect(ms).toBeLessThan(4 * LIVENESS_CHECK_MS);
    expect(sshd.accepted()).toBe(1);
    // The abandoned connection is closed, not left to its timeout.
    await expect.poll(() => sshd.open(), { timeout: 2_000 }).toBe(0);
  });

  it('a dropped handshake is not tried again once the instance has left running', async () => {
    const { sshd, t } = await target('drop', async () => {
      throw gone();
    });
    const { err, ms } = await outcome(connectSsh(t));
    expect(err.code).toBe('not_running');
    expect(sshd.accepted()).toBe(1);
    expect(ms).toBeLessThan(LIVENESS_CHECK_MS);
  });

  it('instance running, or the check unable to tell: three tries, then transient (as before)', async () => {
    for (const check of [
      async () => undefined,
      async () => {
        throw new BackendError('transient', 'DescribeInstances: RequestLimitExceeded');
      },
    ]) {
      const { sshd, t } = await target('drop', check);
      const { err } = await outcome(connectSsh(t));
      expect(err.code).toBe('transient');
      expect(sshd.accepted()).toBe(3);
    }
  });

  it('a slow handshake to a running instance waits for its own timeout, checking meanwhile', async () => {
    let checks = 0;
    const { t } = await target(
      'hang',
      async () => {
        checks++;
      },
      1_500,
    );
    const { err, ms } = await outcome(connectSsh(t));
    expect(err.code).toBe('transient');
    expect(ms).toBeGreaterThanOrEqual(3 * 1_500);
    expect(checks).toBeGreaterThanOrEqual(3);
  }, 20_000);
});
