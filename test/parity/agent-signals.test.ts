/** What the agent reports after it is online: secrets delivery, heartbeats, runtime wedge. */
import { describe, expect, test } from 'vitest';
import { waitFor } from '../setup/wait-for.js';
import { waitForStatus } from '../support/stack.js';
import { launchTextOf, CONCURRENT_BLOCK, PARITY_BACKENDS, stateFileOf, useParityStack } from './backends.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

describe.each(PARITY_BACKENDS)('%s: agent after boot', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  it('delivers secrets only through the bootstrap fetch, never in the container env or logs', async () => {
    const secret = 'sk-live-0123456789abcdef';
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'keeper', backend, secrets: { API_KEY: secret }, config: { marker: 'cfg-marker-7f3a' } },
    });
    const id: string = created.body.id;
    await waitForStatus(t.stack, t.key, id, 'online');
    // In the agent's root-only state dir, outside the roots the files API serves.
    const envFile = await stateFileOf(backend, t.stack.docker, id, 1, 'secrets.env');
    expect(envFile.content.toString()).toContain(`API_KEY=${secret}`);
    expect(envFile.mode).toBe(0o600);
    // What the resource was launched with (container env / user-data) holds no secret value and
    // no config content: both arrive only through the bootstrap fetch.
    const launchText = await launchTextOf(backend, t.stack.docker, id, 1);
    expect(launchText).not.toContain(secret);
    expect(launchText).not.toContain('cfg-marker-7f3a');
    expect(launchText).toMatch(/WO_BOOTSTRAP_TOKEN=/);
    // EC2's per-generation SSH key is stored sealed (docker needs none).
    const keys = await t.stack.service.db.pool.query(
      'SELECT private_key_enc FROM ssh_keys WHERE workspace_id = $1',
      [id],
    );
    expect(keys.rows).toHaveLength(backend === 'ec2' ? 1 : 0);
    for (const row of keys.rows) expect(row.private_key_enc).not.toMatch(/PRIVATE KEY/);
    const log = (await t.stack.api.call('GET', `/v1/workspaces/${id}/boot-log`, { token: t.key })).body;
    expect(JSON.stringify(log)).not.toContain(secret);
    // Heartbeats land in Postgres (not workflow history): lastHeartbeatAt moves.
    const first = (await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key })).body
      .lastHeartbeatAt;
    expect(first).toBeTruthy();
    await waitFor(
      async () =>
        (await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key })).body.lastHeartbeatAt >
        first,
      { timeoutMs: 15_000, describe: 'a later heartbeat' },
    );
    await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });

  it('a wedged runtime reported by heartbeat degrades the workspace through its entity', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'wedgy', backend, config: { agent: { runtimeState: 'wedged' } } },
    });
    const id: string = created.body.id;
    await waitForStatus(t.stack, t.key, id, 'degraded');
    const events = await fetch(`${t.stack.url}/v1/workspaces/${id}/events`, {
      headers: { authorization: `Bearer ${t.key}` },
      signal: AbortSignal.timeout(2000),
    });
    const reader = events.body!.getReader();
    let text = '';
    while (!text.includes('"degraded"')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    await reader.cancel();
    const statuses = [...text.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]!).status);
    expect(statuses.slice(-2)).toEqual(['online', 'degraded']);
    await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });
});
