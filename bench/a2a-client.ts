/**
 * bench/a2a.ts's load generator, in a process of its own so that its event loop is nobody else's:
 * a bounded closed loop (node:http, one keep-alive agent per kind, `concurrency` requests in flight)
 * sending JSON-RPC `message/send`. Protocol: child.ts.
 *
 *   init {maxSockets, kinds}                                  → null
 *   load {kind, url, headers, requests, concurrency}          → LoadResult
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { serveChild } from './child-serve.js';

/** Per-request cap; a slower answer counts as an error. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Cap on one block of the load loop: the loop stops issuing requests past it. */
const BLOCK_TIMEOUT_MS = 120_000;

export interface LoadResult {
  latencies: number[];
  errors: number;
  firstError: string | null;
  wallMs: number;
}

export interface LoadCall {
  kind: string;
  url: string;
  headers: Record<string, string>;
  requests: number;
  concurrency: number;
}

function sendBody(i: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      jsonrpc: '2.0',
      id: i,
      method: 'message/send',
      params: {
        message: {
          kind: 'message',
          role: 'user',
          messageId: randomUUID(),
          parts: [{ kind: 'text', text: `bench ping ${i}` }],
        },
      },
    }),
  );
}

function once(agent: http.Agent, url: URL, headers: Record<string, string>, body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      agent,
      headers: {
        ...headers,
        'content-type': 'application/json',
        accept: 'application/json',
        'content-length': String(body.length),
      },
      timeout: REQUEST_TIMEOUT_MS,
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
        try {
          const rpc = JSON.parse(text) as { result?: unknown };
          if (typeof rpc.result !== 'object' || rpc.result === null)
            return reject(new Error(`no JSON-RPC result: ${text.slice(0, 200)}`));
        } catch {
          return reject(new Error(`not JSON: ${text.slice(0, 200)}`));
        }
        resolve();
      });
    });
    req.end(body);
  });
}

/** `requests` requests, `concurrency` in flight at any time, bounded by BLOCK_TIMEOUT_MS. */
async function load(agent: http.Agent, call: LoadCall): Promise<LoadResult> {
  const url = new URL(call.url);
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let next = 0;
  const t0 = performance.now();
  const deadline = t0 + BLOCK_TIMEOUT_MS;
  const worker = async () => {
    while (next < call.requests && performance.now() < deadline) {
      const i = next++;
      const body = sendBody(i);
      const start = performance.now();
      try {
        await once(agent, url, call.headers, body);
        latencies.push(performance.now() - start);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: call.concurrency }, worker));
  return { latencies, errors, firstError, wallMs: performance.now() - t0 };
}

const agents = new Map<string, http.Agent>();

serveChild(
  {
    init: async (arg: { maxSockets: number; kinds: string[] }) => {
      for (const kind of arg.kinds)
        agents.set(kind, new http.Agent({ keepAlive: true, maxSockets: arg.maxSockets }));
      return null;
    },
    load: async (arg: LoadCall) => {
      const agent = agents.get(arg.kind);
      if (!agent) throw new Error(`no agent for ${arg.kind}: call init first`);
      return load(agent, arg);
    },
  },
  async () => {
    for (const a of agents.values()) a.destroy();
  },
);
