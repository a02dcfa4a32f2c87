/**
 * bench/a2a.ts's bare keep-alive reverse proxy, in a process of its own (as anyone would run one):
 * a node:http server that forwards each request through an undici Pool (kept-alive upstream
 * connections) with the agent credential, streaming both bodies. No auth, no lookups, no log: the
 * floor any proxy in front of the agent pays. Protocol: child.ts.
 *
 *   start {endpoint, credential, connections}  → {url}
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';
import { AGENT_CREDENTIAL_HEADER } from '../src/security/agent-credential.js';
import { serveChild } from './child-serve.js';

let close: (() => Promise<void>) | undefined;

serveChild(
  {
    start: async (arg: { endpoint: string; credential: string; connections: number }) => {
      if (close) throw new Error('already started');
      const pool = new Pool(new URL(arg.endpoint).origin, { connections: arg.connections, pipelining: 1 });
      const server = http.createServer((req, res) => {
        void (async () => {
          const upstream = await pool.request({
            path: '/',
            method: 'POST',
            headers: {
              'content-type': req.headers['content-type'] ?? 'application/json',
              accept: req.headers.accept ?? 'application/json',
              [AGENT_CREDENTIAL_HEADER]: arg.credential,
            },
            body: req,
          });
          res.writeHead(upstream.statusCode, {
            'content-type': String(upstream.headers['content-type'] ?? 'application/json'),
          });
          await pipeline(upstream.body, res);
        })().catch((err: unknown) => {
          if (!res.headersSent) res.writeHead(502).end(String(err));
          else res.destroy();
        });
      });
      server.keepAliveTimeout = 30_000;
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      close = async () => {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await pool.close();
      };
      const { port } = server.address() as AddressInfo;
      return { url: `http://127.0.0.1:${port}/` };
    },
  },
  async () => {
    await close?.();
  },
);
