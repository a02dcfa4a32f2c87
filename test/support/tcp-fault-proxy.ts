/**
 * A TCP proxy in front of a real server that a test can turn bad: `stall` keeps every connection
 * (and accepts new ones) but forwards nothing, as a database that stopped answering does (SIGSTOP,
 * a dropped route); `refuse` cuts every connection and refuses new ones, as a stopped server does.
 */
import net, { type AddressInfo, type Socket } from 'node:net';

export type ProxyMode = 'pass' | 'stall' | 'refuse';

export interface FaultProxy {
  port: number;
  set(mode: ProxyMode): Promise<void>;
  close(): Promise<void>;
}

export async function tcpFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let mode: ProxyMode = 'pass';
  const pairs = new Set<[Socket, Socket]>();
  const server = net.createServer((client) => {
    if (mode === 'refuse') return client.destroy();
    const upstream = net.connect(target.port, target.host);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (b) => {
      if (mode === 'pass') upstream.write(b);
    });
    upstream.on('data', (b) => {
      if (mode === 'pass') client.write(b);
    });
  });
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve) =>
      server.listen(port, '127.0.0.1', () => {
        port = (server.address() as AddressInfo).port;
        resolve();
      }),
    );
  const stopListening = () => new Promise<void>((resolve) => server.close(() => resolve()));
  await listen();
  return {
    port,
    async set(next) {
      if (next === mode) return;
      if (next === 'refuse') {
        mode = next;
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
        await stopListening();
        return;
      }
      if (mode === 'refuse') {
        mode = next;
        await listen();
        return;
      }
      // Bytes dropped while stalled left those conversations broken: they go, new ones are whole.
      if (mode === 'stall')
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
      mode = next;
    },
    async close() {
      mode = 'refuse';
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      if (server.listening) await stopListening();
    },
  };
}
