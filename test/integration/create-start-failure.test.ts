/**
 * POST /v1/workspaces when starting the workflow fails: the row is deleted only when Temporal says
 * no workflow exists; when that cannot be known the row stays (a workflow may be running for it);
 * when the workflow exists after all, the create succeeded. The API runs over the real database,
 * with an entity client whose start fails the way a timed-out or refused call does.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app.js';
import type { ApiDeps } from '../../src/api/deps.js';
import type { EntityClient } from '../../src/api/entity.js';
import { SecretBox } from '../../src/security/secrets.js';
import { apiSettings } from '../../src/service.js';
import { ApiClient, useStack } from '../support/stack.js';

describe('create when the workflow start fails', () => {
  const t = useStack({ worker: false });
  let exists: boolean | null = false;
  let server: Server;
  let api: ApiClient;

  beforeAll(async () => {
    const c = t.stack.config;
    // Only the two calls the create route makes; the start fails as a deadline would.
    const entity = {
      start: async () => {
        throw new Error('deadline exceeded');
      },
      exists: async () => exists,
    } as unknown as EntityClient;
    const deps: ApiDeps = {
      db: t.stack.service.db.pool,
      entity,
      backends: t.stack.service.backends,
      secrets: new SecretBox(c.SECRETS_KEY),
      log: pino({ level: 'silent' }),
      settings: apiSettings(c),
      readiness: {},
    };
    server = createServer(createApp(deps));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    api = new ApiClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  const rows = async (name: string) =>
    (
      await t.stack.service.db.pool.query('SELECT id FROM workspaces WHERE org_id = $1 AND name = $2', [
        t.orgId,
        name,
      ])
    ).rows.map((r: { id: string }) => r.id);

  it('no workflow exists → 503 + Retry-After, the row is gone', async () => {
    exists = false;
    const res = await api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'gone', backend: 'docker' },
    });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('temporal_unavailable');
    expect(res.headers.get('retry-after')).toBeTruthy();
    expect(await rows('gone')).toEqual([]);
  });

  it('unknown whether it exists → 503 naming the id, the row stays', async () => {
    exists = null;
    const res = await api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'maybe', backend: 'docker' },
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBeTruthy();
    const ids = await rows('maybe');
    expect(ids).toHaveLength(1);
    expect(res.body.error.message).toContain(ids[0]);
  });

  it('the workflow exists after all → 202 as usual', async () => {
    exists = true;
    const res = await api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'there', backend: 'docker' },
    });
    expect(res.status).toBe(202);
    expect(await rows('there')).toEqual([res.body.id]);
  });
});
