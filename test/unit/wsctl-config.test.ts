/**
 * wsctl's endpoint and token resolution (flags > env > config file > default, per value), the
 * config file's mode, and the same precedence through the real command line against a local HTTP
 * server that records what it was sent.
 */
import { statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  configPath,
  DEFAULT_URL,
  readConfigFile,
  resolveConnection,
  writeConfigFile,
} from '../../src/cli/wsctl/config.js';
import { CliError, EXIT } from '../../src/cli/wsctl/errors.js';
import { runWsctl } from '../../src/cli/wsctl/program.js';
import { readSse } from '../../src/cli/wsctl/sse.js';
import { textOf } from '../../src/cli/wsctl/commands/a2a.js';
import { tempDir } from '../support/temp-dirs.js';

const tmp = () => tempDir('wsctl-');

describe('resolveConnection', () => {
  const file = { url: 'http://file.example:1', token: 'file-token' };
  const env = { WO_URL: 'http://env.example:2', WO_TOKEN: 'env-token' };

  it('prefers flags, then env, then the config file, then the default', () => {
    expect(resolveConnection({ url: 'http://flag.example:3', token: 'flag-token' }, env, file)).toEqual({
      url: 'http://flag.example:3',
      token: 'flag-token',
      sources: { url: 'flag', token: 'flag' },
    });
    expect(resolveConnection({}, env, file)).toMatchObject({
      url: 'http://env.example:2',
      token: 'env-token',
      sources: { url: 'env', token: 'env' },
    });
    expect(resolveConnection({}, {}, file)).toMatchObject({
      url: 'http://file.example:1',
      token: 'file-token',
      sources: { url: 'config', token: 'config' },
    });
    expect(resolveConnection({}, {}, {})).toEqual({
      url: DEFAULT_URL,
      token: null,
      sources: { url: 'default', token: null },
    });
  });

  it('resolves each value on its own', () => {
    expect(
      resolveConnection({ token: 'flag-token' }, { WO_URL: 'http://env.example:2' }, file),
    ).toMatchObject({
      url: 'http://env.example:2',
      token: 'flag-token',
      sources: { url: 'env', token: 'flag' },
    });
    // An empty env var does not hide the config file.
    expect(resolveConnection({}, { WO_TOKEN: '' }, file).token).toBe('file-token');
  });

  it('refuses a URL that is not http(s), as a usage error', () => {
    const err = (() => {
      try {
        resolveConnection({ url: 'ftp://x' }, {}, {});
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(EXIT.usage);
  });
});

describe('config file', () => {
  it('lives under XDG_CONFIG_HOME, else ~/.config', () => {
    expect(configPath({ XDG_CONFIG_HOME: '/x/cfg', HOME: '/home/u' })).toBe('/x/cfg/wsctl/config.json');
    expect(configPath({ HOME: '/home/u' })).toBe('/home/u/.config/wsctl/config.json');
    expect(configPath({ HOME: '/home/u' }, '/explicit.json')).toBe('/explicit.json');
  });

  it('is written 0600 (even over a looser file) and read back; absent is empty, broken is an error', () => {
    const file = path.join(tmp(), 'wsctl', 'config.json');
    expect(readConfigFile(file)).toEqual({});
    writeConfigFile(file, { url: 'http://a:1', token: 't' });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readConfigFile(file)).toEqual({ url: 'http://a:1', token: 't' });
    writeFileSync(file, 'not json', { mode: 0o644 });
    expect(() => readConfigFile(file)).toThrow(/not valid JSON/);
    writeConfigFile(file, { token: 'u' });
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
});

describe('wsctl against a recording server', () => {
  let server: Server;
  let url: string;
  const seen: { auth: string | undefined; body: string }[] = [];
  beforeAll(async () => {
    server = createServer(async (req, res) => {
      let body = '';
      for await (const c of req) body += c;
      seen.push({ auth: req.headers.authorization, body });
      res.setHeader('content-type', 'application/json');
      if (req.method === 'POST') {
        res.statusCode = 202;
        return res.end(JSON.stringify({ id: 'abc', status: 'provisioning', workflowId: 'w' }));
      }
      if (req.headers.authorization === 'Bearer bad') {
        res.statusCode = 401;
        return res.end(JSON.stringify({ error: { code: 'unauthorized', message: 'invalid token' } }));
      }
      if (req.url?.startsWith('/v1/workspaces/missing')) {
        res.statusCode = 404;
        return res.end(JSON.stringify({ error: { code: 'not_found', message: 'workspace not found' } }));
      }
      res.end(JSON.stringify({ items: [], nextCursor: null }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  async function run(argv: string[], env: Record<string, string>) {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (d) => (out += d));
    stderr.on('data', (d) => (err += d));
    const code = await runWsctl(argv, { stdout, stderr, stdin: new PassThrough(), env });
    return { code, out, err };
  }

  it('sends the flag token over the env token over the saved one', async () => {
    const dir = tmp();
    writeConfigFile(path.join(dir, 'wsctl', 'config.json'), { url, token: 'from-file' });
    const env = { XDG_CONFIG_HOME: dir };

    seen.length = 0;
    expect((await run(['ws', 'ls', '--json'], env)).code).toBe(0);
    expect((await run(['ws', 'ls', '--json'], { ...env, WO_TOKEN: 'from-env' })).code).toBe(0);
    expect((await run(['--token', 'from-flag', 'ws', 'ls'], { ...env, WO_TOKEN: 'from-env' })).code).toBe(0);
    // Global options may also follow the subcommand.
    expect((await run(['ws', 'ls', '--token', 'late-flag'], env)).code).toBe(0);
    expect(seen.map((s) => s.auth)).toEqual([
      'Bearer from-file',
      'Bearer from-env',
      'Bearer from-flag',
      'Bearer late-flag',
    ]);
  });

  it('login writes the file the next command uses', async () => {
    const dir = tmp();
    const login = await run(['login', '--url', url, '--token', 'saved'], { XDG_CONFIG_HOME: dir });
    expect(login.code).toBe(0);
    expect(statSync(path.join(dir, 'wsctl', 'config.json')).mode & 0o777).toBe(0o600);
    seen.length = 0;
    const ls = await run(['ws', 'ls', '--json'], { XDG_CONFIG_HOME: dir });
    expect(ls.code).toBe(0);
    expect(JSON.parse(ls.out)).toEqual({ items: [], nextCursor: null });
    expect(seen.map((s) => s.auth)).toEqual(['Bearer saved']);
  });

  it("passes a subcommand's --config through (not taken for the config file)", async () => {
    seen.length = 0;
    const r = await run(
      [
        '--url',
        url,
        '--token',
        'ok',
        'ws',
        'create',
        'x',
        '--config',
        '{"agent":{"streamChunks":3}}',
        '--no-wait',
      ],
      { XDG_CONFIG_HOME: tmp() },
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(seen[0]!.body)).toEqual({
      name: 'x',
      backend: 'docker',
      config: { agent: { streamChunks: 3 } },
    });
  });

  it('maps 401 and 404 to their exit codes with one line on stderr', async () => {
    const bad = await run(['--url', url, '--token', 'bad', 'ws', 'ls'], {});
    expect(bad.code).toBe(EXIT.auth);
    expect(bad.err).toBe('wsctl: GET /v1/workspaces: 401 unauthorized: invalid token\n');
    const missing = await run(['--url', url, '--token', 'ok', 'ws', 'get', 'missing'], {});
    expect(missing.code).toBe(EXIT.notFound);
    expect(missing.err.trimEnd().split('\n')).toHaveLength(1);
    expect(missing.err).toMatch(/404 not_found: workspace not found/);
    const none = await run(['--url', url, 'ws', 'ls'], { XDG_CONFIG_HOME: tmp() });
    expect(none.code).toBe(EXIT.auth);
    expect(none.err).toMatch(/no token/);
    const usage = await run(['ws', 'nope'], {});
    expect(usage.code).toBe(EXIT.usage);
  });
});

describe('stream parsing', () => {
  it('reads SSE events split across chunks, skipping comments', async () => {
    const chunks = [': keep-alive\n\nid: 1\nda', 'ta: {"a":1}\n\n', 'id: 2\r\ndata: x\r\ndata: y\r\n\r\n'];
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const s of chunks) c.enqueue(new TextEncoder().encode(s));
        c.close();
      },
    });
    const events = [];
    for await (const e of readSse(body)) events.push(e);
    expect(events).toEqual([
      { id: '1', event: null, data: '{"a":1}' },
      { id: '2', event: null, data: 'x\ny' },
    ]);
  });

  it('finds the text of a message, a task status or an artifact update', () => {
    expect(
      textOf({
        kind: 'message',
        parts: [
          { kind: 'text', text: 'a' },
          { kind: 'text', text: 'b' },
        ],
      }),
    ).toBe('ab');
    expect(textOf({ status: { message: { parts: [{ kind: 'text', text: 'st' }] } } })).toBe('st');
    expect(textOf({ artifact: { parts: [{ kind: 'text', text: 'art' }] } })).toBe('art');
    expect(textOf({ text: 'chunk 1 of 5' })).toBe('chunk 1 of 5');
  });
});
