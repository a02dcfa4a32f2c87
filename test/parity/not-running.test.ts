/**
 * The database says `online` but the resource is not running (a dockerd restart, a stop or a
 * removal behind the platform's back, before a health sweep has seen it): the files API answers
 * 409 `not_online` as for a workspace known to be stopped (api.md), the terminal closes 4409, and a
 * plugin install ends `pending` (the next start's bundle applies it), never `failed`. Both
 * backends alike: docker (exec refused or no container), ec2 (instance stopped or gone).
 */
import path from 'node:path';
import WebSocket from 'ws';
import { describe, expect, test } from 'vitest';
import { waitFor } from '../setup/wait-for.js';
import { waitForStatus } from '../support/stack.js';
import { CONCURRENT_BLOCK, PARITY_BACKENDS, useParityStack } from './backends.js';

const it = test.sequential;

const CATALOG = path.resolve(import.meta.dirname, '../../plugins');

function terminalCloseCode(baseUrl: string, id: string, token: string): Promise<number> {
  const ws = new WebSocket(new URL(`/v1/workspaces/${id}/terminal`, baseUrl.replace(/^http/, 'ws')), {
    headers: { authorization: `Bearer ${token}` },
  });
  ws.on('error', () => undefined);
  return new Promise((resolve) => ws.once('close', (code) => resolve(code)));
}

describe.each(PARITY_BACKENDS)(
  '%s: online in the database, not running in fact',
  CONCURRENT_BLOCK,
  (backend) => {
    const t = useParityStack(backend, { env: { PLUGINS_DIR: CATALOG } });

    const api = (method: string, p: string, body?: unknown) =>
      t.stack.api.call(method, p, { token: t.key, ...(body === undefined ? {} : { body }) });

    /** Every files route that needs the resource, and the terminal: refused as not online. */
    async function expectRefusedAsNotOnline(id: string, what: string) {
      const at = (p: string) => `/v1/workspaces/${id}/files${p}`;
      const file = 'root=%2Fworkspace&path=notes.txt';
      const listed = await api('GET', at('?root=%2Fworkspace&path='));
      expect(listed.status, `${what}: list`).toBe(409);
      expect(listed.body.error.code, `${what}: list`).toBe('not_online');
      const put = await fetch(`${t.stack.url}${at(`/content?${file}`)}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/octet-stream' },
        body: 'x',
        signal: AbortSignal.timeout(60_000),
      });
      expect(put.status, `${what}: write`).toBe(409);
      expect(((await put.json()) as { error: { code: string } }).error.code, `${what}: write`).toBe(
        'not_online',
      );
      const del = await api('DELETE', at(`/content?${file}`));
      expect(del.status, `${what}: delete`).toBe(409);
      expect(del.body.error.code, `${what}: delete`).toBe('not_online');
      expect(await terminalCloseCode(t.stack.url, id, t.key), `${what}: terminal`).toBe(4409);
    }

    it('stopped, then gone: files 409 not_online, terminal 4409, a plugin install pending', async () => {
      const created = await api('POST', '/v1/workspaces', { name: 'not-running', backend });
      expect(created.status).toBe(202);
      const id: string = created.body.id;
      await waitForStatus(t.stack, t.key, id, 'online');
      const resources = t.stack.service.backends[backend];

      // Stopped behind the platform's back (no sweep runs in tests: the database keeps `online`).
      await resources.stop(id, 1);
      await waitFor(async () => (await resources.status(id, 1)) === 'stopped', {
        timeoutMs: 60_000,
        describe: `${id}'s resource to be stopped`,
      });
      expect((await api('GET', `/v1/workspaces/${id}`)).body.status).toBe('online');
      await expectRefusedAsNotOnline(id, 'stopped');

      const install = await api('POST', `/v1/workspaces/${id}/plugins`, { source: 'local://hello-tools' });
      expect(install.status).toBe(202);
      const settled = await waitFor(
        async () => {
          const res = await api('GET', `/v1/workspaces/${id}/plugins`);
          const p = (res.body.items as Array<{ name: string; status: string }>).find(
            (x) => x.name === 'hello-tools',
          );
          return p && p.status !== 'installing' ? p : null;
        },
        { timeoutMs: 90_000, intervalMs: 250, describe: 'the install to settle' },
      );
      expect(settled.status).toBe('pending');

      // Its resource removed (volumes kept), the database still saying online.
      await resources.remove(id, { generation: 1 });
      expect((await api('GET', `/v1/workspaces/${id}`)).body.status).toBe('online');
      await expectRefusedAsNotOnline(id, 'gone');

      expect((await api('DELETE', `/v1/workspaces/${id}`)).status).toBe(202);
      await waitForStatus(t.stack, t.key, id, 'deleted');
    });
  },
);
