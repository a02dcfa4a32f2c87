/**
 * The MCP endpoint's edges, over a fake store, through a real Express app: it answers one JSON-RPC
 * message per HTTP request (a batch would let one request, counted once by the per-key rate limit,
 * fan out into up to 100 concurrent tool calls, each `send_message` an A2A call to a peer), and a
 * tool that fails unexpectedly answers a generic error (logged), never the error's own text.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorHandler } from '../../src/api/errors.js';
import type { ApiDeps } from '../../src/api/deps.js';
import { mcpRouter } from '../../src/api/routes/mcp.js';
import type { Queryable } from '../../src/db/queryable.js';

const CALLER = '1000000000000001';
const ORG = 'a000000000000001';

const sql: string[] = [];
/** Set: the peers query fails with this message (a database error that names what it should not). */
let failWith: string | null = null;
const logged: Array<{ obj: object; msg: string }> = [];
const log = { error: (obj: object, msg: string) => logged.push({ obj, msg }) };
const db = {
  query(text: string) {
    sql.push(text);
    if (failWith && !text.includes('WHERE id = $1')) return Promise.reject(new Error(failWith));
    // The caller's row (by id); every other query (the peers list) finds nothing.
    const rows = text.includes('WHERE id = $1')
      ? [{ id: CALLER, org_id: ORG, name: 'caller', status: 'online', generation: 1, runtime: 'x' }]
      : [];
    return Promise.resolve({ rows, rowCount: rows.length });
  },
} as unknown as Queryable;

let server: Server;
let url: string;

beforeAll(async () => {
  const app = express();
  app.use((_req, res, next) => {
    res.locals.principal = { kind: 'workspace', workspaceId: CALLER, generation: 1 };
    next();
  });
  app.use(express.json());
  app.use('/v1/mcp', mcpRouter({ db, log } as unknown as ApiDeps));
  app.use(errorHandler({ error: () => {}, warn: () => {} }));
  server = app.listen(0, '127.0.0.1');
  await new Promise((ok) => server.once('listening', ok));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/mcp`;
});
afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

const post = (body: unknown) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify(body),
  });

const listPeers = (id: number) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name: 'list_peers', arguments: {} },
});

describe('MCP endpoint', () => {
  it('refuses a JSON-RPC batch before any tool runs', async () => {
    sql.length = 0;
    const res = await post(Array.from({ length: 50 }, (_, i) => listPeers(i + 1)));
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: number; message: string } };
    expect(body.error.code).toBe(-32600);
    expect(body.error.message).toMatch(/batch/i);
    expect(sql.filter((q) => !q.includes('WHERE id = $1'))).toEqual([]);
  });

  it('still answers a single call', async () => {
    const res = await post(listPeers(1));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { result: { structuredContent: { peers: unknown[] } } };
    expect(body.result.structuredContent.peers).toEqual([]);
  });

  it('refuses a peer or a message with a NUL at the edge: no query with it, nothing logged as a failure', async () => {
    for (const args of [
      { peer: 'a\u0000b', text: 'hi' },
      { peer: 'b', text: 'x\u0000y' },
    ]) {
      sql.length = 0;
      logged.length = 0;
      for (const name of ['send_message', 'chat_history']) {
        if (name === 'chat_history' && !args.peer.includes('\u0000')) continue;
        const res = await post({
          jsonrpc: '2.0',
          id: 9,
          method: 'tools/call',
          params: { name, arguments: args },
        });
        const text = await res.text();
        expect(text, `${name} ${JSON.stringify(args)}`).not.toContain('internal error');
        expect(text).toMatch(/invalid|storable|NUL/i);
        expect(sql.filter((q) => !q.includes('WHERE id = $1'))).toEqual([]);
        expect(logged).toEqual([]);
      }
    }
  });

  it('answers an unexpected failure as a generic tool error, and logs it', async () => {
    failWith = 'password authentication failed for user "wo" (s3cr3t-db-pass)';
    try {
      const res = await post(listPeers(7));
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).not.toContain('s3cr3t-db-pass');
      const body = JSON.parse(text) as { result: { isError: boolean; content: Array<{ text: string }> } };
      expect(body.result.isError).toBe(true);
      expect(body.result.content[0]!.text).toBe('internal error');
      expect(logged.map((l) => l.msg)).toContain('MCP tool failed');
    } finally {
      failWith = null;
    }
  });
});
