/**
 * Which restart policy a created workspace's entity gets: the create body's `restartPolicy`, else
 * its template's, else AUTO_RESTART_POLICY, with the AUTO_RESTART_* settings. The API runs over the
 * real database with an entity client that records what it is asked to start.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkspaceWorkflowInput } from '../../src/workflows/messages.js';
import { serveApiWith, useStack, type ApiClient } from '../support/stack.js';

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
  let served: Awaited<ReturnType<typeof serveApiWith>> | undefined;
  let api: ApiClient;

  beforeAll(async () => {
    const entity = {
      start: async (input: WorkspaceWorkflowInput) => {
        started.push(input);
        return `workspace:${input.workspaceId}`;
      },
    };
    served = await serveApiWith(t.stack, entity);
    api = served.api;
  });
  afterAll(async () => {
    await served?.close();
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
