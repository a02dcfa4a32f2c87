/**
 * The unauthenticated probes cost other systems work per call (/readyz: the database, Temporal,
 * each backend, an EC2 API call on ec2; /metrics: the database and the workers' pages). A flood of
 * them does that work at most once a second per API process, shared by every caller meanwhile,
 * instead of once per call (which could spend an account's EC2 request quota or the API's request
 * pool). Counted on the real dockerd backend's ping and on a worker page's server.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPS_REUSE_MS } from '../../src/api/routes/ops.js';
import { startStack, type Stack } from '../support/stack.js';

const PAGE = '# TYPE temporal_probe_page gauge\ntemporal_probe_page 1\n';

/** `waves` rounds of `width` concurrent GETs of `path`; each answer's status and body, and how long it took. */
async function flood(url: string, waves: number, width: number) {
  const began = Date.now();
  const answers: Array<{ status: number; text: string }> = [];
  for (let w = 0; w < waves; w++) {
    answers.push(
      ...(await Promise.all(
        Array.from({ length: width }, async () => {
          const res = await fetch(url);
          return { status: res.status, text: await res.text() };
        }),
      )),
    );
  }
  return { answers, elapsedMs: Date.now() - began };
}

/** The most rounds of work that may start in `elapsedMs`: one per reuse period, and the edges. */
const allowed = (elapsedMs: number) => Math.floor(elapsedMs / OPS_REUSE_MS) + 2;

describe('readiness and metrics under a flood', () => {
  let page: Server;
  let pageHits = 0;
  let stack: Stack;
  let pings = 0;

  beforeAll(async () => {
    page = createServer((_req, res) => {
      pageHits++;
      res.setHeader('content-type', 'text/plain');
      res.end(PAGE);
    });
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
    const pageUrl = `http://127.0.0.1:${(page.address() as AddressInfo).port}/metrics`;
    stack = await startStack({ worker: false, env: { WORKER_METRICS_URL: pageUrl } });
    // The real backend the API probes, its ping counted on the way to dockerd.
    const docker = stack.service.backends.docker;
    const ping = docker.ping.bind(docker);
    docker.ping = () => {
      pings++;
      return ping();
    };
  });
  afterAll(async () => {
    await stack?.close();
    await new Promise((resolve) => (page ? page.close(resolve) : resolve(undefined)));
  });

  it('/readyz: 200 calls probe the backends about once a second, every caller answered alike', async () => {
    const { answers, elapsedMs } = await flood(`${stack.url}/readyz`, 20, 10);
    expect(answers).toHaveLength(200);
    // No worker polls this stack's task queue: 503 naming it, the other parts ok, for every caller.
    for (const a of answers) {
      expect(a.status).toBe(503);
      expect(JSON.parse(a.text).checks).toMatchObject({
        database: 'ok',
        temporal: 'ok',
        'backend:docker': 'ok',
      });
    }
    expect(pings).toBeGreaterThanOrEqual(1);
    expect(pings).toBeLessThanOrEqual(allowed(elapsedMs));
  });

  it('/metrics: 200 calls read the database and the workers once a second, the process series fresh each time', async () => {
    const hitsBefore = pageHits;
    const { answers, elapsedMs } = await flood(`${stack.url}/metrics`, 20, 10);
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.text).toContain('temporal_probe_page 1');
      expect(a.text).toMatch(/^wo_workspaces\{/m);
      expect(a.text).toMatch(/^wo_http_requests_total\{/m);
    }
    expect(pageHits - hitsBefore).toBeGreaterThanOrEqual(1);
    expect(pageHits - hitsBefore).toBeLessThanOrEqual(allowed(elapsedMs));
  });

  it('an answer is reused for a second at most: the next probe after it looks again', async () => {
    await fetch(`${stack.url}/readyz`);
    const before = pings;
    // Past the reuse period (a condition on the clock, not a wait for readiness).
    const since = Date.now();
    while (Date.now() - since <= OPS_REUSE_MS) await new Promise((resolve) => setTimeout(resolve, 50));
    await fetch(`${stack.url}/readyz`);
    expect(pings).toBe(before + 1);
  });
});
