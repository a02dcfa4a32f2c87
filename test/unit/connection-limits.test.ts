import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import {
  defaultMaxConnections,
  headerTimeouts,
  resolveConnectionLimits,
} from '../../src/api/connection-limits.js';
import { loadConfig } from '../../src/config.js';

const base = {
  ADMIN_TOKEN: 'a'.repeat(32),
  SECRETS_KEY: randomBytes(32).toString('base64'),
  RUNTIME_IMAGE: 'wo-runtime:test',
  DATA_DIR: '/tmp/wo-config-test',
};

/** /proc/self/limits as Linux writes it, with the given soft limit of open files. */
const limitsFile = (soft: string) =>
  [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max processes             95634                95634                processes ',
    `Max open files            ${soft.padEnd(21)}1048576              files     `,
  ].join('\n');

describe('connection caps', () => {
  it('default cap: a third of the descriptor limit, between 16 and 10,000', () => {
    expect(defaultMaxConnections(limitsFile('1024'))).toBe(341);
    expect(defaultMaxConnections(limitsFile('20000'))).toBe(6666);
    expect(defaultMaxConnections(limitsFile('1048576'))).toBe(10_000);
    expect(defaultMaxConnections(limitsFile('unlimited'))).toBe(10_000);
    expect(defaultMaxConnections(limitsFile('20'))).toBe(16);
    // Not Linux (no /proc): a fixed default.
    expect(defaultMaxConnections(null)).toBe(4096);
    // This machine's own file is read when none is given.
    expect(defaultMaxConnections()).toBeGreaterThanOrEqual(16);
  });

  it('API_MAX_CONNECTIONS and _PER_CLIENT: auto, a count, off; the per-peer auto is off behind a proxy', () => {
    const limits = (env: Record<string, string>) =>
      resolveConnectionLimits(loadConfig({ ...base, ...env }), limitsFile('1200'));
    expect(limits({})).toEqual({ max: 400, perClient: 100 });
    expect(limits({ API_MAX_CONNECTIONS: '80' })).toEqual({ max: 80, perClient: 20 });
    expect(limits({ API_MAX_CONNECTIONS: '2', API_MAX_CONNECTIONS_PER_CLIENT: 'auto' })).toEqual({
      max: 2,
      perClient: 1,
    });
    expect(limits({ API_MAX_CONNECTIONS_PER_CLIENT: '7' })).toEqual({ max: 400, perClient: 7 });
    expect(limits({ API_MAX_CONNECTIONS_PER_CLIENT: 'off' })).toEqual({ max: 400, perClient: null });
    expect(limits({ TRUST_PROXY: 'loopback' })).toEqual({ max: 400, perClient: null });
    expect(limits({ TRUST_PROXY: '1', API_MAX_CONNECTIONS_PER_CLIENT: '50' })).toEqual({
      max: 400,
      perClient: 50,
    });
  });

  it('refuses anything else, naming the variable', () => {
    for (const [name, value] of [
      ['API_MAX_CONNECTIONS', '0'],
      ['API_MAX_CONNECTIONS', 'off'],
      ['API_MAX_CONNECTIONS', '-5'],
      ['API_MAX_CONNECTIONS', '1.5'],
      ['API_MAX_CONNECTIONS', '10000001'],
      ['API_MAX_CONNECTIONS_PER_CLIENT', 'none'],
      ['API_MAX_CONNECTIONS_PER_CLIENT', '0'],
    ] as const) {
      expect(() => loadConfig({ ...base, [name]: value }), `${name}=${value}`).toThrow(
        new RegExp(`${name}:`),
      );
    }
  });
});

describe('headerTimeouts (API_HEADERS_TIMEOUT_MS)', () => {
  it('checks at most every 5 s, a quarter of the limit below 20 s, whole ms that Node accepts', () => {
    expect(headerTimeouts(15_000)).toEqual({ headersTimeout: 15_000, connectionsCheckingInterval: 3_750 });
    expect(headerTimeouts(300_000).connectionsCheckingInterval).toBe(5_000);
    expect(headerTimeouts(1_000).connectionsCheckingInterval).toBe(250);
    // Any value the setting allows, not only multiples of 4: Node refuses a fractional interval.
    for (const ms of [1_000, 1_001, 1_003, 15_001, 19_999, 299_999, 300_000]) {
      const server = createServer(headerTimeouts(ms));
      expect(server.headersTimeout).toBe(ms);
      server.close();
    }
  });
});
