/** The pure parts of the service image build and of its shell-less HEALTHCHECK. */
import { describe, expect, it } from 'vitest';
import { parseAddress, roleOf } from '../../src/cli/healthcheck.js';
import { hostRustTriple, productionPackages } from '../../src/cli/service-image.js';

describe('service image contents', () => {
  it('takes the production closure of the lockfile: no dev packages, nested ones kept', () => {
    const lock = {
      packages: {
        '': {},
        'node_modules/express': {},
        'node_modules/vitest': { dev: true },
        'node_modules/@swc/core-darwin-arm64': { optional: true },
        'node_modules/ssh2/node_modules/nan': {},
        'node_modules/@types/pg': { devOptional: true },
      },
    };
    expect(productionPackages(lock)).toEqual([
      'node_modules/@swc/core-darwin-arm64',
      'node_modules/@types/pg',
      'node_modules/express',
      'node_modules/ssh2/node_modules/nan',
    ]);
  });

  it('keeps the Temporal core bridge build of the host platform only', () => {
    expect(hostRustTriple('x64')).toBe('x86_64-unknown-linux-gnu');
    expect(hostRustTriple('arm64')).toBe('aarch64-unknown-linux-gnu');
    expect(() => hostRustTriple('s390x')).toThrow(/linux\/s390x/);
  });
});

describe('healthcheck', () => {
  it('tells a worker container from an API container by its command line', () => {
    expect(roleOf('node\0dist/worker/main.js\0')).toBe('worker');
    expect(roleOf('/usr/bin/node\0/app/dist/worker/main.js')).toBe('worker');
    expect(roleOf('node\0dist/api/main.js\0')).toBe('api');
    expect(roleOf('node\0dist/not-worker/main.js\0')).toBe('api');
  });

  it('reads TEMPORAL_ADDRESS as host:port', () => {
    expect(parseAddress('temporal:7233')).toEqual({ host: 'temporal', port: 7233 });
    expect(parseAddress('[::1]:7233')).toEqual({ host: '::1', port: 7233 });
    expect(() => parseAddress('temporal')).toThrow(/host:port/);
  });
});
