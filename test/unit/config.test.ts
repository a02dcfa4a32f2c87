import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, platformUrls, publicUrl } from '../../src/config.js';

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
    expect(platformUrls(c, 8080)).toEqual({
      docker: 'http://host.docker.internal:8080',
      ec2: 'http://127.0.0.1:8080',
    });
    expect(c.runtimeImages['claude-code']).toBe('wo-runtime:test');
    expect(c.DATABASE_URL).toBeUndefined();
  });

  it('PUBLIC_URL: the configured base (trailing slash dropped), else the listen URL', () => {
    expect(publicUrl(loadConfig(base), 4321)).toBe('http://127.0.0.1:4321');
    expect(publicUrl(loadConfig({ ...base, BIND_HOST: '10.1.2.3' }), 80)).toBe('http://10.1.2.3:80');
    expect(publicUrl(loadConfig({ ...base, BIND_HOST: '::1' }), 80)).toBe('http://[::1]:80');
    const configured = loadConfig({ ...base, PUBLIC_URL: 'https://wo.example.com/' });
    expect(publicUrl(configured, 4321)).toBe('https://wo.example.com');
    for (const bad of ['not a url', 'ftp://wo.example.com']) {
      expect(() => loadConfig({ ...base, PUBLIC_URL: bad }), bad).toThrow(/PUBLIC_URL/);
    }
  });

  it.each(['ACTIVITY_RETENTION_DAYS', 'HISTORY_RETENTION_DAYS'] as const)(
    '%s: 90 days by default, a whole number of days from 1 to 36500, or off',
    (name) => {
      expect(loadConfig(base)[name]).toBe(90);
      expect(loadConfig({ ...base, [name]: '7' })[name]).toBe(7);
      expect(loadConfig({ ...base, [name]: ' 36500 ' })[name]).toBe(36_500);
      expect(loadConfig({ ...base, [name]: 'off' })[name]).toBe('off');
      for (const bad of ['0', '-1', '1.5', '36501', 'forever', '']) {
        expect(() => loadConfig({ ...base, [name]: bad }), bad).toThrow(
          new RegExp(`${name} must be off or a whole number of days from 1 to 36500`),
        );
      }
    },
  );

  it('API_HEADERS_TIMEOUT_MS: 15 s by default, from 1 s to 300 s (Node’s whole-request timeout)', () => {
    expect(loadConfig(base).API_HEADERS_TIMEOUT_MS).toBe(15_000);
    expect(loadConfig({ ...base, API_HEADERS_TIMEOUT_MS: '2000' }).API_HEADERS_TIMEOUT_MS).toBe(2000);
    for (const bad of ['999', '300001', '1.5', 'soon']) {
      expect(() => loadConfig({ ...base, API_HEADERS_TIMEOUT_MS: bad }), bad).toThrow(
        /API_HEADERS_TIMEOUT_MS/,
      );
    }
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

  it('terminal sessions: refreshed every 20 s, stale after 90 s, reaped every 30 s; stale must be two refreshes', () => {
    const c = loadConfig(base);
    expect([c.TERMINAL_SESSION_REFRESH_MS, c.TERMINAL_SESSION_STALE_MS, c.TERMINAL_REAP_INTERVAL_MS]).toEqual(
      [20_000, 90_000, 30_000],
    );
    const short = { TERMINAL_SESSION_REFRESH_MS: '200', TERMINAL_SESSION_STALE_MS: '400' };
    expect(loadConfig({ ...base, ...short }).TERMINAL_SESSION_STALE_MS).toBe(400);
    // A live session whose refresh is late by one period must not look dead.
    expect(() => loadConfig({ ...base, ...short, TERMINAL_SESSION_STALE_MS: '399' })).toThrow(
      /TERMINAL_SESSION_STALE_MS/,
    );
  });

  it('WORKER_METRICS_ADDRESS: host:port, a range host:first-last (at most 100 ports) or off; anything else is named', () => {
    expect(loadConfig(base).WORKER_METRICS_ADDRESS).toBe('127.0.0.1:9464');
    for (const good of [
      'off',
      '0.0.0.0:9464',
      '[::1]:9464',
      'worker.local:9464',
      '127.0.0.1:9464-9473',
      '127.0.0.1:9464-9563',
    ])
      expect(loadConfig({ ...base, WORKER_METRICS_ADDRESS: good }).WORKER_METRICS_ADDRESS, good).toBe(good);
    for (const bad of [
      '9464',
      '127.0.0.1',
      '127.0.0.1:0',
      '127.0.0.1:70000',
      '127.0.0.1:9473-9464',
      '127.0.0.1:9464-9564',
      '127.0.0.1:9464-',
      'a b:9464',
      'on',
    ])
      expect(() => loadConfig({ ...base, WORKER_METRICS_ADDRESS: bad }), bad).toThrow(
        /WORKER_METRICS_ADDRESS/,
      );
  });

  it('SECRETS_OLD_KEYS: unset is none; a comma list of 32-byte base64 keys; anything else is named', () => {
    expect(loadConfig(base).SECRETS_OLD_KEYS).toEqual([]);
    const old = [randomBytes(32).toString('base64'), randomBytes(32).toString('base64')];
    expect(loadConfig({ ...base, SECRETS_OLD_KEYS: ` ${old[0]}, ${old[1]},` }).SECRETS_OLD_KEYS).toEqual(old);
    expect(() => loadConfig({ ...base, SECRETS_OLD_KEYS: `${old[0]},short` })).toThrow(/SECRETS_OLD_KEYS/);
  });

  it('enables ec2 only with an AMI, and derives its platform URL from the sim gateway', () => {
    expect(() => loadConfig({ ...base, ENABLE_EC2: '1' })).toThrow(/EC2_AMI_ID/);
    const c = loadConfig({
      ...base,
      ENABLE_EC2: '1',
      EC2_AMI_ID: 'ami-1',
      EC2_PLATFORM_HOST: '172.31.255.254',
    });
    expect(c.ENABLED_BACKENDS).toEqual(['docker', 'ec2']);
    expect(c.ec2Region).toBe('us-east-1');
    expect(platformUrls(c, 9000).ec2).toBe('http://172.31.255.254:9000');
  });

  it('parses TEMPLATES and names a bad one', () => {
    const c = loadConfig({
      ...base,
      TEMPLATES: '{"a":{"runtime":"langgraph","ec2":{"instanceType":"t3.large"}}}',
    });
    expect(c.TEMPLATES.a).toEqual({ runtime: 'langgraph', config: {}, ec2: { instanceType: 't3.large' } });
    expect(() => loadConfig({ ...base, TEMPLATES: '{"Bad Name":{}}' })).toThrow(/TEMPLATES/);
    expect(() => loadConfig({ ...base, TEMPLATES: 'not json' })).toThrow(/TEMPLATES/);
  });

  it('maps runtimes to images from RUNTIME_IMAGES', () => {
    const c = loadConfig({ ...base, RUNTIME_IMAGES: '{"custom":"img:1","langgraph":"img:2"}' });
    expect(c.runtimeImages.custom).toBe('img:1');
    expect(c.runtimeImages.langgraph).toBe('img:2');
    expect(c.runtimeImages['claude-code']).toBe('wo-runtime:test');
    expect(() => loadConfig({ ...base, RUNTIME_IMAGES: '[1]' })).toThrow(/RUNTIME_IMAGES/);
  });
});
