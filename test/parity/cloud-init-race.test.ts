/**
 * The seed's cloud-init race: on EC2 templates arrived after the workspace said it was up. Here a
 * slow boot (late config on both backends; plus slow user-data on EC2, the real cloud-init delay)
 * keeps the workspace `provisioning` until the agent proves the current generation and config, and
 * a boot carrying a config that is no longer the saved one never makes it online.
 */
import { describe, expect, test } from 'vitest';
import { waitFor } from '../setup/wait-for.js';
import { waitForStatus } from '../support/stack.js';
import { CONCURRENT_BLOCK, PARITY_BACKENDS, useParityStack } from './backends.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

const SLOW_MS = 3000;

describe.each(PARITY_BACKENDS)('%s: slow boot (cloud-init race)', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  it('stays provisioning until platform-health-ok with the current config; an outdated boot never goes online', async () => {
    // EC2: user-data itself is slow, like a cloud-init still running when the instance is "running".
    const key = backend === 'ec2' ? await t.orgWithKnobs({ userDataDelayMs: SLOW_MS }) : t.key;
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: key,
      body: { name: 'slowpoke', backend, config: { v: 1, agent: { materializeDelayMs: SLOW_MS } } },
    });
    const id: string = created.body.id;

    // The agent has booted (boot phase reported) but its config is not materialized yet.
    await waitFor(
      async () => {
        const log = (await t.stack.api.call('GET', `/v1/workspaces/${id}/boot-log`, { token: key })).body;
        return log.events.some((e: { phase: string }) => e.phase === 'boot');
      },
      { timeoutMs: 60_000, describe: 'the first boot phase' },
    );
    const booting = (await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: key })).body;
    expect(booting.status).toBe('provisioning');
    expect(booting.generation).toBe(1);

    // A config saved now is newer than what generation 1 is booting with.
    const saved = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, {
      token: key,
      body: { config: { v: 2 } },
    });
    expect(saved.status).toBe(200);

    const online = await waitForStatus(t.stack, key, id, 'online', 120_000);
    expect(online.configHash).toBe(saved.body.configHash);
    expect(online.generation).toBe(2);
    const yaml = (
      await t.stack.service.backends[backend].readFile(id, 2, '/configs', 'config.yaml')
    ).toString();
    expect(yaml).toMatch(/^v: 2$/m);

    // Generation 1 did finish its boot (it proved itself) but was never declared online.
    const transitions = await t.stack.service.db.pool.query(
      `SELECT status, generation FROM workspace_transitions WHERE workspace_id = $1 ORDER BY id`,
      [id],
    );
    const onlineGenerations = transitions.rows.filter((r) => r.status === 'online').map((r) => r.generation);
    expect(onlineGenerations).toEqual([2]);
    const phases = await t.stack.service.db.pool.query(
      `SELECT phase FROM boot_events WHERE workspace_id = $1 AND generation = 1 ORDER BY id`,
      [id],
    );
    expect(phases.rows.map((r) => r.phase)).toContain('platform-health-ok');

    await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: key });
    await waitForStatus(t.stack, key, id, 'deleted');
  });

  it('the same config saved again while it boots is no newer config: online at generation 1, no restart', async () => {
    const config = { v: 1, agent: { materializeDelayMs: SLOW_MS } };
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'reapplied', backend, config },
    });
    const id: string = created.body.id;
    await waitFor(
      async () => {
        const log = (await t.stack.api.call('GET', `/v1/workspaces/${id}/boot-log`, { token: t.key })).body;
        return log.events.some((e: { phase: string }) => e.phase === 'boot');
      },
      { timeoutMs: 60_000, describe: 'the first boot phase' },
    );
    const booting = (await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key })).body;
    expect(booting).toMatchObject({ status: 'provisioning', generation: 1 });
    // A client re-applying its settings: the same config, then an empty save.
    for (const body of [{ config }, {}]) {
      const saved = await t.stack.api.call('PATCH', `/v1/workspaces/${id}/config`, { token: t.key, body });
      expect(saved.status).toBe(200);
      expect(saved.body.configHash).toBe(booting.configHash);
    }
    const online = await waitForStatus(t.stack, t.key, id, 'online', 120_000);
    expect(online).toMatchObject({ generation: 1, configHash: booting.configHash });
    const transitions = await t.stack.service.db.pool.query(
      `SELECT DISTINCT status FROM workspace_transitions WHERE workspace_id = $1`,
      [id],
    );
    expect(transitions.rows.map((r) => r.status).sort()).toEqual(['online', 'provisioning']);

    await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });
});
