/**
 * The service image's HEALTHCHECK (the image has no shell, so no curl either). Which process the
 * container runs decides the probe: the API must answer GET /healthz on its PORT; a worker has no
 * HTTP server and is healthy while it can open a connection to TEMPORAL_ADDRESS (its pollers are
 * visible in Temporal itself). Exit 0 healthy, 1 not, as Docker expects.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';

const TIMEOUT_MS = 3000;

export type Role = 'api' | 'worker';

/** The role from a process's argv (what /proc/1/cmdline holds, NUL-separated). */
export function roleOf(cmdline: string): Role {
  return cmdline.split('\0').some((arg) => /(^|\/)worker\/main\.(js|ts)$/.test(arg)) ? 'worker' : 'api';
}

/** host:port → the pair net.connect takes; `[v6]:port` included. */
export function parseAddress(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  if (!m?.[1] || !m[2]) throw new Error(`not host:port: ${address}`);
  return { host: m[1], port: Number(m[2]) };
}

async function probeApi(port: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (!res.ok) throw new Error(`/healthz answered ${res.status}`);
}

function probeTcp(address: string): Promise<void> {
  const { host, port } = parseAddress(address);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, timeout: TIMEOUT_MS });
    socket.once('connect', () => {
      socket.end();
      resolve();
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`no connection to ${address} in ${TIMEOUT_MS} ms`));
    });
    socket.once('error', reject);
  });
}

async function main(): Promise<void> {
  const role = roleOf(readFileSync('/proc/1/cmdline', 'utf8'));
  if (role === 'worker') await probeTcp(process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233');
  else await probeApi(process.env.PORT ?? '8080');
  process.stdout.write(`${role}: healthy\n`);
}

if (process.argv[1]?.endsWith('healthcheck.js')) {
  main().catch((err: unknown) => {
    process.stdout.write(`unhealthy: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
