/**
 * Keeps the recorded A2A endpoint true. The address always comes from the backend (docker inspect /
 * DescribeInstances), never from the agent: a container Docker restarted on its own gets a new host
 * port, and the registry (register, heartbeat) and the proxy (after a failed forward) re-read it.
 */
import http from 'node:http';

/**
 * The one re-read, shared with the proxy's forwarding path (src/a2a/proxy.ts). Who may call it how
 * often (heartbeat, register, failed forward) is bounded in src/a2a/backend-reads.ts.
 */
export { refreshEndpoint } from '../a2a/proxy.js';

/** One GET /health of the agent: does it answer at this address at all? */
export function probeHealth(endpoint: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(new URL('/health', endpoint), { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 500) < 500);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
  });
}
