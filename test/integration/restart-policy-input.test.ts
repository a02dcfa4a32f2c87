/**
 * Which restart policy a created workspace's entity gets: the create body's `restartPolicy`, else
 * its template's, else AUTO_RESTART_POLICY, with the AUTO_RESTART_* settings. The API runs over the
 * real database with an entity client that records what it is asked to start.
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
import type { WorkspaceWorkflowInput } from '../../src/workflows/messages.js';
import { ApiClient, useStack } from '../support/stack.js';

describe('restart policy of a created workspace', () => {
  const t = useStack({
    worker: false,
    env: {
      AUTO_RESTART_POLICY: 'always',
      AUTO_RESTART_MAX: '7',
      TEMPLATES: JSON.stringify({ fragile: { config: {}, restartPolicy: 'never' } }),
    },
  });
  const started: WorkspaceWorkflowInput[] = [];
  let server: Server;
  let api: ApiClient;

  beforeAll(async () => {
    const c = t.stack.config;
    const entity = {
      start: async (input: WorkspaceWorkflowInput) => {
        started.push(input);
        return `workspace:${input.workspaceId}`;
      },
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

  const policyOf = async (body: Record<string, unknown>) => {
    const res = await api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'p', backend: 'docker', ...body },
    });
    expect(res.status).toBe(202);
    const input = started.find((s) => s.workspaceId === res.body.id);
    expect(input).toBeDefined();
    // A new workspace shows no restart yet.
    const shown = await api.call('GET', `/v1/workspaces/${res.body.id}`, { token: t.key });
    expect(shown.body.restartCount).toBe(0);
    expect(shown.body.lastRestartReason).toBeUndefined();
    return input!.restartPolicy;
  };

  it('body over template over the setting, with the AUTO_RESTART_* settings', async () => {
    expect(await policyOf({})).toEqual(
      expect.objectContaining({ policy: 'always', max: 7, windowMs: 3_600_000 }),
    );
    expect((await policyOf({ template: 'fragile' }))?.policy).toBe('never');
    expect((await policyOf({ template: 'fragile', restartPolicy: 'always' }))?.policy).toBe('always');
    expect((await policyOf({ restartPolicy: 'never' }))?.policy).toBe('never');
  });

  it('an unknown policy is a 400 naming the field', async () => {
    const res = await api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'p', backend: 'docker', restartPolicy: 'sometimes' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe('restartPolicy');
  });
});
