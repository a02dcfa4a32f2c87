/**
 * The service's log lines (src/log.ts, src/api/request-context.ts), read back from the logger's
 * destination stream: secrets never appear, and every line written while serving a request carries
 * its request id and the workspace its route names, also past a body parser and on the error path;
 * the request's duration is counted under its route pattern, never its URL; an activity's lines
 * carry the workflow that scheduled it and its workspace.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { Context as ActivityContext } from '@temporalio/activity';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { requestContext } from '../../src/api/request-context.js';
import { registry } from '../../src/api/metrics.js';
import { activityLogContext } from '../../src/worker/index.js';
import { waitFor } from '../setup/wait-for.js';

type Line = Record<string, unknown>;

function capture(): { stream: Writable; text: () => string; lines: () => Line[] } {
  let out = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      out += chunk.toString();
      done();
    },
  });
  return {
    stream,
    text: () => out,
    lines: () =>
      out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Line),
  };
}

describe('log redaction', () => {
  it('drops authorization headers, tokens and secret fields by key, and minted tokens and hidden values anywhere', () => {
    const out = capture();
    const adminToken = 'admin-token-0123456789abcdef';
    const log = createLogger({ level: 'debug', destination: out.stream, hide: [adminToken] });
    const orgKey = `wo_org_${'A'.repeat(32)}`;
    const wsToken = `wo_ws_${'b'.repeat(32)}`;
    log.info(
      {
        headers: { authorization: `Bearer ${orgKey}` },
        req: { headers: { authorization: 'Bearer plain-secret-bearer' } },
        token: 'some-token-value',
        secret: 'some-secret-value',
        nested: { password: 'hunter2-hunter2' },
        note: `the agent said ${wsToken}`,
      },
      `calling with ${adminToken} and ${orgKey}`,
    );
    log.warn({ err: new Error(`failed for "${adminToken}"`) }, 'quoted');
    const text = out.text();
    for (const leaked of [
      orgKey,
      wsToken,
      adminToken,
      'plain-secret-bearer',
      'some-token-value',
      'some-secret-value',
      'hunter2-hunter2',
    ])
      expect(text).not.toContain(leaked);
    expect(text).toContain('[REDACTED]');
    const [first, second] = out.lines();
    expect(first!.msg).toBe('calling with [REDACTED] and [REDACTED]');
    expect((first!.headers as Line).authorization).toBe('[REDACTED]');
    expect((second!.err as Line).message).toBe('failed for "[REDACTED]"');
  });
});

describe('request context', () => {
  const out = capture();
  const log = createLogger({ level: 'debug', destination: out.stream });
  let server: Server;
  let base = '';

  beforeAll(async () => {
    const app = express();
    app.use(requestContext(log));
    const v1 = express.Router();
    v1.use(express.json({ limit: '1mb' }));
    const ws = express.Router();
    ws.post('/:id/things', (req, res) => {
      log.info({ got: (req.body as { n: number }).n }, 'inside the handler');
      res.status(201).json({ ok: true });
    });
    ws.get('/', (_req, res) => {
      res.json({ items: [] });
    });
    ws.get('/:id/broken', async () => {
      await Promise.resolve();
      throw new Error('boom');
    });
    ws.get('/:id/stream', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
    });
    v1.use('/workspaces', ws);
    app.use('/v1', v1);
    app.use((_req, res) => {
      res.status(404).json({ error: { code: 'not_found', message: 'no such route' } });
    });
    app.use((err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      log.error({ err }, 'unhandled error');
      res.status(500).json({ error: { code: 'internal', message: 'internal error' } });
    });
    server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const linesOf = (requestId: string) => out.lines().filter((l) => l.requestId === requestId);

  it('binds the inbound request id and the route’s workspace to every line, past the body parser', async () => {
    const res = await fetch(`${base}/v1/workspaces/w123/things`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-abc.1' },
      // Large enough to arrive in several chunks: the handler runs from the parser's stream events.
      body: JSON.stringify({ n: 7, pad: 'x'.repeat(300_000) }),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('x-request-id')).toBe('req-abc.1');
    const lines = linesOf('req-abc.1');
    expect(lines.map((l) => l.msg)).toEqual(['inside the handler', 'request answered']);
    for (const l of lines) {
      expect(l.workspaceId).toBe('w123');
      expect(l.workflowId).toBe('workspace:w123');
    }
    expect(lines[0]!.got).toBe(7);
    expect(lines[1]).toMatchObject({ route: '/v1/workspaces/:id/things', status: 201, method: 'POST' });
  });

  it('keeps the context and the route pattern on the error path, and replaces an unsafe request id', async () => {
    const res = await fetch(`${base}/v1/workspaces/w456/broken`, {
      headers: { 'x-request-id': 'has spaces and "quotes"' },
    });
    expect(res.status).toBe(500);
    const id = res.headers.get('x-request-id')!;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const lines = linesOf(id);
    expect(lines.map((l) => l.msg)).toEqual(['unhandled error', 'request answered']);
    for (const l of lines) expect(l.workspaceId).toBe('w456');
    expect(lines[1]).toMatchObject({ route: '/v1/workspaces/:id/broken', status: 500 });
    expect(out.text()).not.toContain('has spaces');
  });

  it('logs and counts a stream the client left, once', async () => {
    const aborted = new AbortController();
    const res = await fetch(`${base}/v1/workspaces/w789/stream`, {
      headers: { 'x-request-id': 'req-stream' },
      signal: aborted.signal,
    });
    expect(res.status).toBe(200);
    aborted.abort();
    const lines = await waitFor(() => (linesOf('req-stream').length > 0 ? linesOf('req-stream') : null), {
      timeoutMs: 5_000,
      describe: 'the left stream to be logged',
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      msg: 'request closed before its answer ended',
      route: '/v1/workspaces/:id/stream',
      workspaceId: 'w789',
      status: 200,
    });
  });

  it('counts durations under the route pattern, or unmatched, never a raw URL', async () => {
    expect((await fetch(`${base}/no/such/path-xyz`)).status).toBe(404);
    expect((await fetch(`${base}/v1/workspaces`)).status).toBe(200);
    const text = await registry.getSingleMetricAsString('wo_http_request_duration_seconds');
    expect(text).toMatch(
      /wo_http_request_duration_seconds_count\{route="\/v1\/workspaces\/:id\/things",method="POST",status="201"\} [1-9]/,
    );
    expect(text).toMatch(
      /wo_http_request_duration_seconds_count\{route="\/v1\/workspaces\/:id\/broken",method="GET",status="500"\} [1-9]/,
    );
    expect(text).toMatch(
      /wo_http_request_duration_seconds_count\{route="unmatched",method="GET",status="404"\} [1-9]/,
    );
    // A mounted router's root is the mount itself, without a trailing slash.
    expect(text).toMatch(
      /wo_http_request_duration_seconds_count\{route="\/v1\/workspaces",method="GET",status="200"\} [1-9]/,
    );
    expect(text).not.toMatch(/w123|w456|w789|path-xyz/);
  });
});

describe('activity log context', () => {
  it('binds the scheduling workflow and the input’s workspace to the activity’s lines', async () => {
    const out = capture();
    const log = createLogger({ destination: out.stream });
    // Only `info.workflowExecution` is read of the activity context.
    const ctx = {
      info: { workflowExecution: { workflowId: 'workspace:w9', runId: 'r1' } },
    } as unknown as Pick<ActivityContext, 'info'>;
    const interceptors = activityLogContext(ctx);
    await interceptors.inbound!.execute!(
      { args: [{ workspaceId: 'w9', generation: 2 }], headers: {} },
      async () => {
        await Promise.resolve();
        log.info('ec2 instance starting');
      },
    );
    expect(out.lines()[0]).toMatchObject({
      msg: 'ec2 instance starting',
      workflowId: 'workspace:w9',
      workspaceId: 'w9',
    });
    expect(interceptors.outbound!.getLogAttributes!({ activityType: 'startResource' }, (a) => a)).toEqual({
      activityType: 'startResource',
      workspaceId: 'w9',
    });
  });
});
