/**
 * The proxy's whole-answer path (what a scheduled run uses), against a local HTTP server standing
 * in for the agent and a fake database that records the activity rows: every outcome writes one
 * redacted row of the caller's type, and the outcome says whether the agent answered a result.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { A2A_DEFAULTS, deliver, type ProxyDeps } from '../../src/a2a/proxy.js';
import type { WorkspaceBackend } from '../../src/backends/backend.js';
import type { WorkspaceRow } from '../../src/db/workspaces.js';
import { AGENT_CREDENTIAL_HEADER } from '../../src/security/agent-credential.js';
import { freePort } from '../setup/free-port.js';
import { answeringIdentity } from '../support/agent-identity.js';

/** `hang`: never answer; `partial`: the headers and the first bytes, then nothing. */
type Answer = { status: number; body: string; type?: string; hold?: 'hang' | 'partial' };
let answer: Answer = { status: 200, body: '{}' };
const seen: Array<{ credential: unknown; body: unknown }> = [];
/** Called once a held request is whole at the agent, with a promise of its connection's close. */
let onHeld: ((held: { closed: Promise<void> }) => void) | null = null;
let server: Server;
let endpoint: string;

beforeAll(async () => {
  // The genuine agent of every workspace generation asked: 'cred' is what deliver() is given.
  server = createServer(
    answeringIdentity(
      () => 'cred',
      (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          seen.push({
            credential: req.headers[AGENT_CREDENTIAL_HEADER],
            body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
          });
          if (answer.hold) {
            if (answer.hold === 'partial') {
              res
                .writeHead(answer.status, { 'content-type': 'application/json' })
                .write(answer.body.slice(0, 5));
            }
            onHeld?.({ closed: new Promise((closed) => res.once('close', () => closed())) });
            return;
          }
          res
            .writeHead(answer.status, { 'content-type': answer.type ?? 'application/json' })
            .end(answer.body);
        });
      },
    ),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function fakeDeps() {
  const rows: unknown[][] = [];
  const deps: ProxyDeps = {
    db: {
      query: (async (q: string | { text: string; values: unknown[] }, params?: unknown[]) => {
        // A batch of activity rows may come as a prepared statement's config.
        const [sql, values] = typeof q === 'string' ? [q, params] : [q.text, q.values];
        if (sql.includes('INSERT INTO activity')) rows.push(values ?? []);
        return { rows: [], rowCount: 0 };
      }) as never, // the fake answers only what deliver() asks
    },
    backends: {
      docker: { describe: async () => null } as unknown as WorkspaceBackend,
      ec2: { describe: async () => null } as unknown as WorkspaceBackend,
    },
    log: { info: () => undefined, warn: () => undefined, error: () => undefined },
  };
  return { deps, rows };
}

const workspace = (over: Partial<WorkspaceRow> = {}) =>
  ({
    id: 'a'.repeat(16),
    backend: 'docker',
    generation: 1,
    status: 'online',
    endpoint,
    ...over,
  }) as WorkspaceRow;

const send = (text: string) => ({
  jsonrpc: '2.0',
  id: 1,
  method: 'message/send',
  params: { message: { role: 'user', messageId: 'm', parts: [{ kind: 'text', text }] } },
});

const clean = (s: string) => s.replaceAll('s3cret', '[REDACTED]');

function opts(onUnreachable?: (endpoint: string) => Promise<void>) {
  return {
    credential: 'cred',
    clean,
    limits: A2A_DEFAULTS,
    type: 'schedule' as const,
    summaryPrefix: 'schedule x: ',
    onUnreachable,
  };
}

// Columns of insertA2AActivity: $1 workspace, $5 status, $7 summary, $8 request, $9 response, $10 type.
const col = (row: unknown[], n: number) => row[n - 1];

describe('deliver', () => {
  it('a result: ok, the credential sent, one redacted row of the given type', async () => {
    answer = {
      status: 200,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        result: { parts: [{ kind: 'text', text: 'echo s3cret' }] },
      }),
    };
    const { deps, rows } = fakeDeps();
    const out = await deliver(deps, workspace(), send('hello s3cret'), opts());
    expect(out).toEqual({ status: 200, ok: true, reply: 'echo [REDACTED]', error: null });
    expect(seen.at(-1)).toMatchObject({ credential: 'cred', body: { method: 'message/send' } });
    expect(rows).toHaveLength(1);
    expect(col(rows[0]!, 5)).toBe('200');
    expect(col(rows[0]!, 7)).toBe('schedule x: hello [REDACTED]');
    expect(col(rows[0]!, 8)).toBe('hello [REDACTED]');
    expect(col(rows[0]!, 9)).toBe('echo [REDACTED]');
    expect(col(rows[0]!, 10)).toBe('schedule');
  });

  it('an answer is read as a stream by its content type, whatever the method (protocol 1.0 shapes)', async () => {
    const event = (text: string, state: string) =>
      `data: ${JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        result: { statusUpdate: { status: { state, message: { parts: [{ text }] } } } },
      })}\n\n`;
    // A `message/send` the agent chose to stream, with a type spelled in capitals and a charset.
    answer = {
      status: 200,
      type: 'Text/Event-Stream; charset=utf-8',
      body: event('working s3cret', 'TASK_STATE_WORKING') + event('done s3cret', 'TASK_STATE_COMPLETED'),
    };
    const { deps, rows } = fakeDeps();
    const out = await deliver(deps, workspace(), send('hi'), opts());
    expect(out).toEqual({ status: 200, ok: true, reply: 'done [REDACTED]', error: null });
    expect(col(rows[0]!, 9)).toBe('done [REDACTED]');

    // A `message/stream` answered with one JSON object (protocol 1.0 wraps it in its kind).
    answer = {
      status: 200,
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, result: { message: { parts: [{ text: 'whole' }] } } }),
    };
    const whole = await deliver(deps, workspace(), { ...send('hi'), method: 'message/stream' }, opts());
    expect(whole).toEqual({ status: 200, ok: true, reply: 'whole', error: null });
  });

  it("a reply whose row cannot be written is withheld: the call's outcome says so", async () => {
    answer = {
      status: 200,
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, result: { parts: [{ text: 'hi' }] } }),
    };
    const { deps } = fakeDeps();
    deps.db = {
      query: (async () => {
        throw Object.assign(new Error('insert refused'), { code: '23503' });
      }) as never,
    };
    const out = await deliver(deps, workspace(), send('hi'), opts());
    expect(out).toEqual({
      status: 502,
      ok: false,
      reply: null,
      error: 'the call could not be logged; its answer is withheld',
    });
  });

  it('a JSON-RPC error answer is not ok, its message is the error', async () => {
    answer = {
      status: 200,
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: -1, message: 'nope' } }),
    };
    const { deps, rows } = fakeDeps();
    const out = await deliver(deps, workspace(), send('hi'), opts());
    expect(out).toMatchObject({ status: 200, ok: false, error: 'error: nope' });
    expect(rows).toHaveLength(1);
  });

  it('an agent 5xx is a 502 row and runs the liveness check', async () => {
    answer = { status: 500, body: 'boom' };
    const { deps, rows } = fakeDeps();
    const checked: string[] = [];
    const out = await deliver(
      deps,
      workspace(),
      send('hi'),
      opts(async (e) => void checked.push(e)),
    );
    expect(out).toMatchObject({ status: 502, ok: false, error: 'the workspace agent answered 500' });
    expect(checked).toEqual([endpoint]);
    expect(col(rows[0]!, 7)).toBe('schedule x: agent error 500: hi');
  });

  it('an agent that cannot be reached is a 502 row and runs the liveness check', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const { deps, rows } = fakeDeps();
    const checked: string[] = [];
    const out = await deliver(
      deps,
      workspace({ endpoint: dead }),
      send('hi'),
      opts(async (e) => void checked.push(e)),
    );
    expect(out).toMatchObject({ status: 502, ok: false });
    expect(out.error).toContain('could not reach the workspace agent');
    expect(checked).toEqual([dead]);
    expect(col(rows[0]!, 5)).toBe('502');
  });

  it('a workspace that does not serve: 409, nothing sent, no row', async () => {
    const before = seen.length;
    const { deps, rows } = fakeDeps();
    const out = await deliver(deps, workspace({ status: 'stopped' }), send('hi'), opts());
    expect(out).toEqual({ status: 409, ok: false, reply: null, error: 'workspace is stopped' });
    expect(seen).toHaveLength(before);
    expect(rows).toEqual([]);
  });
  it.each([
    ['before any byte of the answer', 'hang' as const],
    ['after the first bytes of the answer', 'partial' as const],
  ])("the caller leaving %s cuts the agent's request: a 499 row, no liveness check", async (_, hold) => {
    answer = { status: 200, body: JSON.stringify({ jsonrpc: '2.0', id: 1, result: {} }), hold };
    const { deps, rows } = fakeDeps();
    const checked: string[] = [];
    const caller = new AbortController();
    const held = new Promise<{ closed: Promise<void> }>((resolve) => (onHeld = resolve));
    const out = deliver(deps, workspace(), send('are you there'), {
      ...opts(async (e) => void checked.push(e)),
      signal: caller.signal,
    });
    const agentSide = await held; // the agent has the request and holds it
    caller.abort();
    expect(await out).toEqual({ status: 499, ok: false, reply: null, error: 'the caller left' });
    await agentSide.closed; // and its connection was closed
    expect(checked).toEqual([]);
    expect(rows).toHaveLength(1);
    expect(col(rows[0]!, 5)).toBe('499');
    onHeld = null;
  });

  it("the call's own deadline cuts an agent that holds it: a 504 row", async () => {
    answer = { status: 200, body: '{}', hold: 'hang' };
    const { deps, rows } = fakeDeps();
    const held = new Promise<{ closed: Promise<void> }>((resolve) => (onHeld = resolve));
    const out = await deliver(deps, workspace(), send('hi'), { ...opts(), signal: AbortSignal.timeout(300) });
    expect(out).toEqual({ status: 504, ok: false, reply: null, error: 'the agent did not answer in time' });
    await await held;
    expect(col(rows[0]!, 5)).toBe('504');
    onHeld = null;
  });
});
