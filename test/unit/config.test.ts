import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const base = {
  ADMIN_TOKEN: 'a'.repeat(32),
  SECRETS_KEY: randomBytes(32).toString('base64'),
  RUNTIME_IMAGE: 'wo-runtime:test',
  DATA_DIR: '/tmp/wo-config-test',
};

describe('configuration', () => {
  it('applies documented defaults', () => {
    const c = loadConfig(base);
    expect(c.PORT).toBe(8080);
    expect(c.ENABLED_BACKENDS).toEqual(['docker']);
    expect(c.platformUrl).toBe('http://host.docker.internal:8080');
    expect(c.runtimeImages['claude-code']).toBe('wo-runtime:test');
    expect(c.DATABASE_URL).toBeUndefined();
  });

  it('names every bad variable', () => {
    let err: unknown;
    try {
      loadConfig({
        ...base,
        ADMIN_TOKEN: 'short',
        SECRETS_KEY: 'nope',
        PORT: 'x',
        ENABLED_BACKENDS: 'docker,gce',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    for (const name of ['ADMIN_TOKEN', 'SECRETS_KEY', 'PORT', 'ENABLED_BACKENDS'])
      expect(msg).toContain(name);
  });

  it('maps runtimes to images from RUNTIME_IMAGES', () => {
    const c = loadConfig({ ...base, RUNTIME_IMAGES: '{"custom":"img:1","langgraph":"img:2"}' });
    expect(c.runtimeImages.custom).toBe('img:1');
    expect(c.runtimeImages.langgraph).toBe('img:2');
    expect(c.runtimeImages['claude-code']).toBe('wo-runtime:test');
    expect(() => loadConfig({ ...base, RUNTIME_IMAGES: '[1]' })).toThrow(/RUNTIME_IMAGES/);
  });
});
