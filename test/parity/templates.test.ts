/**
 * Templates: a workspace created from a template starts from its runtime and config (copied at
 * provision through the one bootstrap fetch, on both backends); on EC2 the template also
 * overrides the placement (here the instance type) of what is launched.
 */
import { describe, expect, test } from 'vitest';
import { waitForStatus } from '../support/stack.js';
import { instancesOf, CONCURRENT_BLOCK, PARITY_BACKENDS, useParityStack } from './backends.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

const TEMPLATES = {
  analyst: {
    runtime: 'langgraph',
    config: { model: 'template-model', tools: ['search'] },
    ec2: { instanceType: 't3.large' },
  },
};

describe.each(PARITY_BACKENDS)('%s: templates', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend, { env: { TEMPLATES: JSON.stringify(TEMPLATES) } });

  it('a template supplies runtime, config and placement; the request config is merged on top', async () => {
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
    const unknown = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'x', backend, template: 'nope' },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.field).toBe('template');
    await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key });
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });
});
