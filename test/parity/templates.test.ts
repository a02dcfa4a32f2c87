/**
 * Templates: a workspace created from a template starts from its runtime and config, and gets the
 * template's files in /configs, all through the one bootstrap fetch on both backends; its limits
 * apply (docker: the container's HostConfig; ec2: the instance type moto launched). The catalog
 * (`templates/`) and the older `TEMPLATES` setting are one list.
 */
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { describe, expect, test } from 'vitest';
import { loadTemplateDir } from '../../src/templates/catalog.js';
import { waitForStatus } from '../support/stack.js';
import { instancesOf, CONCURRENT_BLOCK, PARITY_BACKENDS, useParityStack } from './backends.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

const CATALOG = path.resolve(import.meta.dirname, '../../templates');
/** The example shipped in the catalog: what the test expects is read from its folder. */
const EXAMPLE = loadTemplateDir(path.join(CATALOG, 'research-assistant'), 'research-assistant');

const TEMPLATES = {
  analyst: {
    runtime: 'langgraph',
    config: { model: 'template-model', tools: ['search'] },
    ec2: { instanceType: 't3.large' },
  },
};

describe.each(PARITY_BACKENDS)('%s: templates', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend, {
    env: { TEMPLATES: JSON.stringify(TEMPLATES), TEMPLATES_DIR: CATALOG },
  });

  /** A file of the workspace through the files API, as bytes. */
  async function configsFile(id: string, rel: string): Promise<{ status: number; body: Buffer }> {
    const q = new URLSearchParams({ root: '/configs', path: rel });
    const res = await fetch(`${t.stack.url}/v1/workspaces/${id}/files/content?${q}`, {
      headers: { authorization: `Bearer ${t.key}` },
      signal: AbortSignal.timeout(30_000),
    });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  }

  it('GET /v1/templates lists the catalog and the TEMPLATES entries', async () => {
    expect((await t.stack.api.call('GET', '/v1/templates')).status).toBe(401);
    const res = await t.stack.api.call('GET', '/v1/templates', { token: t.key });
    expect(res.status).toBe(200);
    expect(res.body.items).toEqual(
      expect.arrayContaining([
        { name: 'analyst', runtime: 'langgraph', plugins: [] },
        {
          name: EXAMPLE.name,
          runtime: EXAMPLE.runtime,
          description: EXAMPLE.description,
          plugins: EXAMPLE.plugins,
        },
      ]),
    );
  });

  it('a catalog template: /configs holds its files and config, its limits and placement apply', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'from-catalog', backend, template: EXAMPLE.name, config: { extra: 1 } },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    const online = await waitForStatus(t.stack, t.key, id, 'online');
    expect(online.runtime).toBe(EXAMPLE.runtime);

    expect(EXAMPLE.files.length).toBeGreaterThan(0);
    for (const file of EXAMPLE.files) {
      const res = await configsFile(id, file.path);
      expect(res.status, file.path).toBe(200);
      expect(res.body.equals(Buffer.from(file.contentBase64, 'base64')), file.path).toBe(true);
    }
    const listing = await t.stack.api.call('GET', `/v1/workspaces/${id}/files?root=/configs&path=.&depth=5`, {
      token: t.key,
    });
    expect(listing.status).toBe(200);
    const listed = (listing.body.items as { path: string }[]).map((i) => i.path.replace(/^\.?\//, ''));
    for (const file of EXAMPLE.files) expect(listed).toContain(file.path);

    const configYaml = await configsFile(id, 'config.yaml');
    expect(configYaml.status).toBe(200);
    expect(parseYaml(configYaml.body.toString('utf8'))).toEqual({
      ...EXAMPLE.config,
      extra: 1,
      runtime: EXAMPLE.runtime,
    });

    if (backend === 'docker') {
      const limits = EXAMPLE.limits!;
      const host = (await t.stack.docker.getContainer(`ws-${id}-g${online.generation}`).inspect()).HostConfig;
      expect(host.Memory).toBe(limits.memoryMb! * 1024 * 1024);
      expect(host.NanoCpus).toBe(Math.round(limits.cpus! * 1e9));
      expect(host.PidsLimit).toBe(limits.pids);
    } else {
      const [instance] = await instancesOf(id);
      expect(instance?.InstanceType).toBe(EXAMPLE.ec2!.instanceType);
    }
    await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });

  it('a TEMPLATES entry supplies runtime, config and placement; the request config is merged on top', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'from-template', backend, template: 'analyst', config: { extra: 1 } },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    const online = await waitForStatus(t.stack, t.key, id, 'online');
    expect(online.runtime).toBe('langgraph');
    const yaml = (
      await t.stack.service.backends[backend].readFile(id, 1, '/configs', 'config.yaml')
    ).toString();
    expect(yaml).toMatch(/^runtime: langgraph$/m);
    expect(yaml).toMatch(/^model: template-model$/m);
    expect(yaml).toMatch(/^extra: 1$/m);
    if (backend === 'ec2') {
      const [instance] = await instancesOf(id);
      expect(instance?.InstanceType).toBe('t3.large');
    }
    await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });

  it('an unknown template answers 400 naming `template`, inherited property names included', async () => {
    for (const template of ['nope', 'constructor', 'toString', '__proto__']) {
      const res = await t.stack.api.call('POST', '/v1/workspaces', {
        token: t.key,
        body: { name: 'x', backend, template },
      });
      expect(res.status, template).toBe(400);
      expect(res.body.error.field, template).toBe('template');
    }
    const list = await t.stack.api.call('GET', '/v1/workspaces', { token: t.key });
    expect(list.body.items.filter((w: { name: string }) => w.name === 'x')).toEqual([]);
  });
});
