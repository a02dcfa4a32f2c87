/**
 * The lifecycle end to end on the real stack, the same test for each backend: API → Temporal entity
 * workflow → dockerd / EC2 (moto + ec2-sim) → the reference agent proving readiness.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { describe, expect, test } from 'vitest';
import { stateQuery, workspaceWorkflowId } from '../../src/workflows/messages.js';
import { waitFor } from '../setup/wait-for.js';
import { REPO_ROOT, waitForStatus, type Stack } from '../support/stack.js';
import { expectEntityReplays } from '../support/workflow-bundle.js';
import {
  createOnline,
  leftovers,
  CONCURRENT_BLOCK,
  PARITY_BACKENDS,
  resourcesOf,
  useParityStack,
} from './backends.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

describe.each(PARITY_BACKENDS)('%s workspace lifecycle', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  it('create → online → config+restart → online at g+1 → stop → start → delete leaves nothing', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'alpha', backend, runtime: 'claude-code', config: { model: 'small' } },
    });
    expect(created.status).toBe(202);
    expect(created.body.status).toBe('provisioning');
    const id: string = created.body.id;
    expect(created.body.workflowId).toBe(workspaceWorkflowId(id));

    const online = await waitForStatus(t.stack, t.key, id, 'online');
    expect(online.generation).toBe(1);
    expect(online.runtime).toBe('claude-code');
    // Where the backend says the agent answers: a loopback port (docker) or the private IP (ec2).
    expect(online.endpoint).toMatch(
      backend === 'docker' ? /^http:\/\/127\.0\.0\.1:\d+$/ : /^http:\/\/172\.31\.[\d.]+:8080$/,
    );
    expect(online.instanceId).toBeTruthy();

    // Every boot phase was reported for generation 1 before it went online.
    const bootLog = await t.stack.api.call('GET', `/v1/workspaces/${id}/boot-log`, { token: t.key });
    expect(bootLog.status).toBe(200);
    expect(bootLog.body.backend).toBe(backend);
    const phases = bootLog.body.events
      .filter((e: { generation: number }) => e.generation === 1)
      .map((e: { phase: string }) => e.phase);
    expect(phases).toEqual([
      'boot',
      'config-materialized',
      'plugins-installed',
      'agent-started',
      'platform-health-ok',
    ]);

    // Read over the backend's own path (ec2: SSH with g1's key, which pins g1's host key).
    await t.stack.service.backends[backend].readFile(id, 1, '/configs', 'config.yaml');
    const pool = t.stack.service.db.pool;
    const sealed = async () => ({
      sshKeys: (
        await pool.query<{ generation: number }>(
          'SELECT generation FROM ssh_keys WHERE workspace_id = $1 ORDER BY generation',
          [id],
        )
      ).rows.map((r) => r.generation),
      hostKeys: (await pool.query('SELECT 1 FROM ssh_host_keys WHERE instance_id = $1', [online.instanceId]))
        .rowCount,
      secrets: (await pool.query('SELECT 1 FROM secrets WHERE workspace_id = $1', [id])).rowCount,
      credentials: (await pool.query('SELECT 1 FROM agent_credentials WHERE workspace_id = $1', [id]))
        .rowCount,
    });
    expect(await sealed()).toMatchObject(
      backend === 'ec2' ? { sshKeys: [1], hostKeys: 1 } : { sshKeys: [], hostKeys: 0 },
    );

    // The user's files in /workspace outlive the resource: a restart (a new container / instance:
    // docker's named volume, ec2's data volume) and a stop/start.
    const auth = { authorization: `Bearer ${t.key}` };
    const keptFile = `${t.stack.url}/v1/workspaces/${id}/files/content?root=%2Fworkspace&path=notes%2Fkeep.txt`;
    const note = `written at generation 1 of ${id}\n`;
    const written = await fetch(keptFile, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: note,
    });
    expect(written.status).toBe(204);
    const readKept = async () => {
      const res = await fetch(keptFile, { headers: auth, signal: AbortSignal.timeout(30_000) });
      return `${res.status} ${await res.text()}`;
    };

    const patched = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
      token: t.key,
      body: { runtime: 'langgraph', config: { model: 'large' }, restart: true },
    });
    expect(patched.status).toBe(200);
    expect(patched.body.generation).toBe(2);
    expect(patched.body.configHash).toMatch(/^[0-9a-f]{16}$/);

    const restarted = await waitForStatus(
      t.stack,
      t.key,
      id,
      (w) => w.status === 'online' && w.generation === 2,
    );
    expect(restarted.runtime).toBe('langgraph');
    expect(restarted.configHash).toBe(patched.body.configHash);
    const yaml = (
      await t.stack.service.backends[backend].readFile(id, 2, '/configs', 'config.yaml')
    ).toString();
    expect(yaml).toMatch(/^runtime: langgraph$/m);
    expect(yaml).toMatch(/^model: large$/m);
    expect(await readKept()).toBe(`200 ${note}`);
    const afterRestart = await resourcesOf(backend, t.stack.docker, id);
    expect(afterRestart.map((r) => r.name)).toEqual([`ws-${id}-g2`]);
    // g1 is gone, and so are its key pair and its instance's pinned host key.
    expect(await sealed()).toMatchObject(
      backend === 'ec2' ? { sshKeys: [2], hostKeys: 0 } : { sshKeys: [], hostKeys: 0 },
    );

    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/stop`, { token: t.key })).status).toBe(202);
    const stoppedView = await waitForStatus(t.stack, t.key, id, 'stopped');
    // Its resource answers nowhere while stopped: no stale address is shown.
    expect(stoppedView.endpoint).toBeUndefined();
    expect(stoppedView.instanceId).toBeTruthy();
    const stopped = await resourcesOf(backend, t.stack.docker, id);
    expect(stopped).toHaveLength(1);
    expect(stopped[0]!.running).toBe(false);

    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/start`, { token: t.key })).status).toBe(202);
    const again = await waitForStatus(t.stack, t.key, id, 'online');
    expect(again.generation).toBe(2);
    expect(again.endpoint).toMatch(/^http:\/\//);
    // The same container / instance, started again.
    expect((await resourcesOf(backend, t.stack.docker, id)).map((r) => r.id)).toEqual([stopped[0]!.id]);
    expect(await readKept()).toBe(`200 ${note}`);

    // Stopped, a config saved without a restart, then start: the generation the save named boots
    // it (starting the stopped one again ran the old config), on the same data.
    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/stop`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'stopped');
    const edited = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
      token: t.key,
      body: { config: { model: 'edited' } },
    });
    expect(edited.status).toBe(200);
    expect(edited.body.generation).toBe(3);
    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/start`, { token: t.key })).status).toBe(202);
    const third = await waitForStatus(t.stack, t.key, id, (w) => w.status === 'online' && w.generation === 3);
    expect(third.configHash).toBe(edited.body.configHash);
    const thirdYaml = (
      await t.stack.service.backends[backend].readFile(id, 3, '/configs', 'config.yaml')
    ).toString();
    expect(thirdYaml).toMatch(/^model: edited$/m);
    expect(await readKept()).toBe(`200 ${note}`);

    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
    expect(await leftovers(backend, t.stack.docker, id)).toEqual([]);
    // Nothing sealed of it is kept: key pairs, secrets, agent credentials.
    expect(await sealed()).toEqual({ sshKeys: [], hostKeys: 0, secrets: 0, credentials: 0 });
    // Its reads are served as its record is (empty lists now); changes are refused 404.
    for (const part of ['secrets', 'plugins', 'schedules', 'activity', 'memories', 'budget']) {
      const read = await t.stack.api.call('GET', `/v1/workspaces/${id}/${part}`, { token: t.key });
      expect(read.status, part).toBe(200);
    }
    for (const part of ['secrets', 'plugins', 'schedules']) {
      const read = await t.stack.api.call('GET', `/v1/workspaces/${id}/${part}`, { token: t.key });
      expect(read.body.items, part).toEqual([]);
    }
    const put = await t.stack.api.call('PUT', `/v1/workspaces/${id}/secrets/KEY`, {
      token: t.key,
      body: { value: 'v' },
    });
    expect(put.status).toBe(404);

    // The history of transitions is served as SSE and ends with `deleted`.
    const events = await fetch(`${t.stack.url}/v1/workspaces/${id}/events`, {
      headers: { authorization: `Bearer ${t.key}` },
      signal: AbortSignal.timeout(10_000),
    });
    expect(events.headers.get('content-type')).toMatch(/text\/event-stream/);
    const text = await events.text();
    const statuses = [...text.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]!).status);
    expect(statuses[0]).toBe('provisioning');
    expect(statuses).toContain('restarting');
    expect(statuses).toContain('stopped');
    expect(statuses.at(-1)).toBe('deleted');

    // Deleted is final: lifecycle calls now conflict.
    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/restart`, { token: t.key })).status).toBe(
      409,
    );

    // The whole history replays deterministically against the current workflow code.
    const history = await t.stack.service.temporal.workflow.getHandle(workspaceWorkflowId(id)).fetchHistory();
    await expectEntityReplays(history, workspaceWorkflowId(id));
    if (process.env.RECORD_REPLAY === '1') {
      // `RECORD_REPLAY=1 npx vitest run test/parity/lifecycle.test.ts` refreshes the committed histories.
      writeFileSync(
        path.join(REPO_ROOT, `test/replay/histories/${backend}-lifecycle.json`),
        historyToJSON(history),
      );
    }
  });

  it('a delete while the first start is tried leaves nothing: the start ends before the removal runs', async () => {
    // Each deleted as soon as its start is scheduled (phase `creating`): the delete used to remove
    // while the start was still creating, which then made the container (and docker, its volumes
    // again, unlabelled) after the removal.
    const ids = await Promise.all(
      ['d1', 'd2', 'd3'].map(async (name) => {
        const created = await t.stack.api.call('POST', '/v1/workspaces', {
          token: t.key,
          body: { name, backend, runtime: 'claude-code' },
        });
        expect(created.status).toBe(202);
        const id: string = created.body.id;
        await waitFor(
          async () =>
            (
              await t.stack.service.db.pool.query<{ phase: string | null }>(
                'SELECT phase FROM workspaces WHERE id = $1',
                [id],
              )
            ).rows[0]?.phase === 'creating',
          { timeoutMs: 60_000, intervalMs: 5, describe: `${name} creating` },
        );
        const deleted = await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
        expect(deleted.status).toBe(202);
        return id;
      }),
    );
    for (const id of ids) {
      await waitForStatus(t.stack, t.key, id, 'deleted');
      expect(await leftovers(backend, t.stack.docker, id)).toEqual([]);
      // Nothing the start made was recorded after the delete either.
      const { body } = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key });
      expect([body.status, body.endpoint ?? null, body.instanceId ?? null]).toEqual(['deleted', null, null]);
    }
  });
});

describe.each(PARITY_BACKENDS)('%s entity continue-as-new', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend, { env: { CONTINUE_AS_NEW_AFTER_EVENTS: '15' } });

  it('carries generation, config and status across runs, and keeps serving updates', async () => {
    const { id } = await createOnline(t, 'long-lived', { config: { v: 1 } });
    const handle = t.stack.service.temporal.workflow.getHandle(workspaceWorkflowId(id));
    // The provision alone passes 15 events (its DB steps are local activities, one marker each):
    // the entity continues as new once idle.
    const continued = await waitForContinued(handle);
    expect(continued).toBe(true);
    const state = await handle.query(stateQuery);
    expect(state).toMatchObject({ status: 'online', generation: 1, desired: 'running' });

    const patched = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
      token: t.key,
      body: { config: { v: 2 }, restart: true },
    });
    expect(patched.body.generation).toBe(2);
    await waitForStatus(t.stack, t.key, id, (w) => w.status === 'online' && w.generation === 2);
    const yaml = (
      await t.stack.service.backends[backend].readFile(id, 2, '/configs', 'config.yaml')
    ).toString();
    expect(yaml).toMatch(/^v: 2$/m);
    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
    expect(await leftovers(backend, t.stack.docker, id)).toEqual([]);
  });

  async function waitForContinued(handle: ReturnType<Stack['service']['temporal']['workflow']['getHandle']>) {
    return waitFor(
      async () => {
        const history = await handle.fetchHistory();
        const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
        return Boolean(started?.continuedExecutionRunId);
      },
      { timeoutMs: 30_000, intervalMs: 200, describe: 'the entity to continue as new' },
    );
  }
});
