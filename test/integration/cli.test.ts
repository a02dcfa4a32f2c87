/**
 * `wsctl` end to end, as a user runs it: a child process (the real entry point, through tsx)
 * against a running service (API + worker + PostgreSQL + Temporal + dockerd). Create with live
 * progress to online, list, files put/get, A2A send (plain and streamed), terminal, restart into a
 * new generation, rm; and the exit code plus one-line reason for a bad token and an unknown id.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { EXIT } from '../../src/cli/wsctl/errors.js';
import { REPO_ROOT, useStack, waitForStatus } from '../support/stack.js';
import { tempDir } from '../support/temp-dirs.js';
import { TS_NODE_ARGS } from '../support/ts-node-args.js';

// The tests share one workspace and run in order.
const it = test.sequential;

const CLI = path.join(REPO_ROOT, 'src/cli/wsctl.ts');
const AGENT = JSON.stringify({ agent: { streamChunks: 3, streamIntervalMs: 200 } });

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** wsctl runs with the org key in WO_TOKEN (flags can override it); never blocks the event loop. */
function runner(url: () => string, key: () => string, configHome: string) {
  return (
    args: string[],
    opts: { input?: string; token?: string; timeoutMs?: number } = {},
  ): Promise<Run> => {
    const env: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: configHome, WO_URL: url() };
    env.WO_TOKEN = opts.token ?? key();
    const child = spawn(process.execPath, [...TS_NODE_ARGS, CLI, ...args], {
      cwd: REPO_ROOT,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(opts.input ?? '');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`wsctl ${args.join(' ')} did not finish:\n${stdout}\n${stderr}`));
      }, opts.timeoutMs ?? 60_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  };
}

const ok = (r: Run): Run => {
  if (r.code !== 0) throw new Error(`wsctl exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
};

describe('wsctl against a running service (docker)', () => {
  const t = useStack();
  const configHome = tempDir('wsctl-home-');

  const wsctl = runner(
    () => t.stack.url,
    () => t.key,
    configHome,
  );

  let id = '';
  let jsonId = '';

  it('creates a workspace with live progress, ending with its URLs', async () => {
    const r = ok(await wsctl(['ws', 'create', 'cli-one', '--config', AGENT], { timeoutMs: 200_000 }));
    const m = /creating workspace cli-one \(([0-9a-f]+)\) on docker/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    id = m![1]!;
    // Each finished phase is a line with its duration; the last is online.
    const steps = r.stdout.split('\n').filter((l) => l.startsWith('✔ '));
    expect(steps.length).toBeGreaterThanOrEqual(2);
    expect(steps[0]).toMatch(/^✔ provisioning.* \(\d+(\.\d)?m?s\)$/);
    expect(steps[steps.length - 1]).toMatch(/^✔ online( · \S+)?$/);
    expect(r.stdout).toContain(`workspace cli-one (${id}) is online at generation 1`);
    expect(r.stdout).toContain(`a2a:        ${t.stack.url}/v1/workspaces/${id}/a2a`);
    expect(r.stdout).toContain(
      `terminal:   ${t.stack.url.replace('http', 'ws')}/v1/workspaces/${id}/terminal`,
    );
    expect(r.stderr).toBe('');
    expect((await waitForStatus(t.stack, t.key, id, 'online', 1000)).generation).toBe(1);
  }, 240_000);

  it('with --json, create prints one object: the workspace online, its URLs and timed steps', async () => {
    const r = ok(await wsctl(['ws', 'create', 'cli-two', '--json'], { timeoutMs: 200_000 }));
    const w = JSON.parse(r.stdout);
    expect(w).toMatchObject({ name: 'cli-two', status: 'online', backend: 'docker', generation: 1 });
    expect(w.urls.a2a).toBe(`${t.stack.url}/v1/workspaces/${w.id}/a2a`);
    expect(w.steps.length).toBeGreaterThanOrEqual(1);
    for (const s of w.steps) expect(typeof s.durationMs).toBe('number');
    jsonId = w.id;
  }, 240_000);

  it('lists workspaces as a table and as JSON', async () => {
    const table = ok(await wsctl(['ws', 'ls']));
    const row = table.stdout.split('\n').find((l) => l.includes(id));
    expect(row).toMatch(/cli-one .*docker .*online/);
    const json = JSON.parse(ok(await wsctl(['ws', 'ls', '--json'])).stdout);
    expect(json.items.map((w: { id: string }) => w.id)).toEqual(expect.arrayContaining([id, jsonId]));
    expect(json.items.find((w: { id: string }) => w.id === id).status).toBe('online');
    const one = JSON.parse(ok(await wsctl(['ws', 'get', id, '--json'])).stdout);
    expect(one).toMatchObject({ id, name: 'cli-one', status: 'online' });
    const log = JSON.parse(ok(await wsctl(['ws', 'logs', id, '--json'])).stdout);
    expect(log.backend).toBe('docker');
    expect(log.events.length).toBeGreaterThan(0);
  });

  it('manages secrets, schedules and plugins; orgs and sweeps with the admin token; lints a template', async () => {
    ok(await wsctl(['ws', 'secrets', 'set', id, 'CLI_KEY'], { input: 'sk-cli-secret\n' }));
    const secrets = JSON.parse(ok(await wsctl(['ws', 'secrets', 'ls', id, '--json'])).stdout);
    expect(secrets.items.map((x: { key: string }) => x.key)).toContain('CLI_KEY');
    expect(JSON.stringify(secrets)).not.toContain('sk-cli-secret');
    ok(await wsctl(['ws', 'secrets', 'rm', id, 'CLI_KEY']));

    const added = JSON.parse(
      ok(
        await wsctl(['ws', 'schedules', 'add', id, '--cron', '*/5 * * * *', '--prompt', 'status?', '--json']),
      ).stdout,
    );
    const listed = ok(await wsctl(['ws', 'schedules', 'ls', id]));
    expect(listed.stdout).toContain(added.id);
    expect(listed.stdout).toContain('status?');
    ok(await wsctl(['ws', 'schedules', 'rm', id, added.id]));
    expect(JSON.parse(ok(await wsctl(['ws', 'schedules', 'ls', id, '--json'])).stdout).items).toEqual([]);

    expect(JSON.parse(ok(await wsctl(['ws', 'plugins', 'ls', id, '--json'])).stdout).items).toEqual(
      expect.any(Array),
    );

    const admin = t.stack.adminToken;
    const org = JSON.parse(ok(await wsctl(['orgs', 'create', 'cli-org', '--json'], { token: admin })).stdout);
    expect(org).toMatchObject({ name: 'cli-org', apiKey: expect.any(String) });
    expect(ok(await wsctl(['orgs', 'ls'], { token: admin })).stdout).toContain(org.id);
    ok(await wsctl(['orgs', 'rm', org.id], { token: admin }));
    // An org key may not run admin commands.
    expect((await wsctl(['orgs', 'ls'])).code).toBe(EXIT.auth);
    const sweep = JSON.parse(ok(await wsctl(['sweeps', 'run', 'health', '--json'], { token: admin })).stdout);
    expect(typeof sweep).toBe('object');
    expect((await wsctl(['sweeps', 'run', 'nope'], { token: admin })).code).toBe(EXIT.notFound);

    const lint = ok(
      await wsctl(['template', 'lint', path.join(REPO_ROOT, 'templates/research-assistant'), '--json']),
    );
    expect(JSON.parse(lint.stdout)).toMatchObject({ ok: true, problems: [] });
  });

  it('puts a file from stdin and gets the same bytes back', async () => {
    const content = `hello from wsctl ${id}\nsecond line ✓\n`;
    ok(await wsctl(['ws', 'files', 'put', id, 'notes/hello.txt'], { input: content }));
    const got = ok(await wsctl(['ws', 'files', 'get', id, 'notes/hello.txt']));
    expect(got.stdout).toBe(content);
    const ls = JSON.parse(ok(await wsctl(['ws', 'files', 'ls', id, 'notes', '--json'])).stdout);
    expect(ls.items).toEqual([
      expect.objectContaining({ path: 'notes/hello.txt', type: 'file', size: Buffer.byteLength(content) }),
    ]);
    ok(await wsctl(['ws', 'files', 'rm', id, 'notes/hello.txt']));
    const gone = await wsctl(['ws', 'files', 'get', id, 'notes/hello.txt']);
    expect(gone.code).toBe(EXIT.notFound);
  });

  it("sends an A2A message and prints the agent's answer, streamed when it streams", async () => {
    const r = ok(await wsctl(['ws', 'a2a', 'send', id, 'hello', 'there']));
    expect(r.stdout).toMatch(
      new RegExp(`^workspace cli-one \\(${id}\\) on runtime \\S+ received: hello there\\n$`),
    );
    const s = ok(await wsctl(['ws', 'a2a', 'send', id, '--stream', 'stream me']));
    const lines = s.stdout.trimEnd().split('\n');
    expect(lines.map((l) => l.slice(0, 12))).toEqual(['chunk 1 of 3', 'chunk 2 of 3', 'chunk 3 of 3']);
  });

  it('runs a shell non-interactively over the terminal WebSocket', async () => {
    const r = ok(await wsctl(['ws', 'terminal', id], { input: 'echo "wsctl-$((40+2))"\nexit\n' }));
    expect(r.stdout).toContain('wsctl-42');
  });

  it('restarts into a new generation, online', async () => {
    const r = ok(await wsctl(['ws', 'restart', id, '--json'], { timeoutMs: 200_000 }));
    const w = JSON.parse(r.stdout);
    expect(w).toMatchObject({ id, status: 'online', generation: 2 });
    expect((await waitForStatus(t.stack, t.key, id, 'online', 1000)).generation).toBe(2);
  }, 240_000);

  it('exits 3 with one line on a bad token, 4 with one line on an unknown id', async () => {
    const bad = await wsctl(['ws', 'ls'], { token: 'not-a-real-token' });
    expect(bad.code).toBe(EXIT.auth);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^wsctl: GET \/v1\/workspaces: 401 \S+: .+\n$/);
    const unknown = await wsctl(['ws', 'get', 'ffffffffffffffff']);
    expect(unknown.code).toBe(EXIT.notFound);
    expect(unknown.stderr).toMatch(/^wsctl: GET \/v1\/workspaces\/ffffffffffffffff: 404 not_found: .+\n$/);
    const unknownRestart = await wsctl(['ws', 'restart', 'ffffffffffffffff']);
    expect(unknownRestart.code).toBe(EXIT.notFound);
    expect(unknownRestart.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    const badTerminal = await wsctl(['ws', 'terminal', id], { token: 'not-a-real-token' });
    expect(badTerminal.code).toBe(EXIT.auth);
    expect(badTerminal.stderr).toMatch(/^wsctl: terminal: .+\n$/);
  });

  it('deletes workspaces and waits until they are gone', async () => {
    const r = ok(await wsctl(['ws', 'rm', id], { timeoutMs: 200_000 }));
    expect(r.stdout).toContain(`workspace cli-one (${id}) is deleted`);
    // Right after the first rm ended its event stream on `deleted` (the feed's regression:
    // test/integration/transition-feed-last-unsubscribe.test.ts).
    const j = JSON.parse(ok(await wsctl(['ws', 'rm', jsonId, '--json'], { timeoutMs: 200_000 })).stdout);
    expect(j).toMatchObject({ id: jsonId, status: 'deleted' });
    const after = await t.stack.api.call('GET', `/v1/workspaces/${id}`, { token: t.key });
    expect(after.body.status).toBe('deleted');
  }, 240_000);
});

describe('wsctl create of a workspace that fails to boot (docker)', () => {
  // The agent never proves health; the boot deadline fails the generation quickly.
  const t = useStack({ env: { BOOT_DEADLINE_MS: '10000' } });
  const wsctl = runner(
    () => t.stack.url,
    () => t.key,
    tempDir('wsctl-home-'),
  );

  it('ends with the failure reason and the boot log, exit 1 and one line on stderr', async () => {
    const r = await wsctl(['ws', 'create', 'cli-doomed', '--config', '{"agent":{"neverHealthy":true}}'], {
      timeoutMs: 200_000,
    });
    expect(r.code, r.stdout + r.stderr).toBe(EXIT.generic);
    const id = /creating workspace cli-doomed \(([0-9a-f]+)\)/.exec(r.stdout)![1]!;
    expect(r.stdout).toMatch(/^✖ failed/m);
    expect(r.stdout).toMatch(new RegExp(`^workspace cli-doomed \\(${id}\\) failed: .*boot deadline`, 'm'));
    // The boot log: the phases the agent reported before the deadline struck.
    expect(r.stdout).toMatch(/ g1 {2}agent-started/);
    expect(r.stderr).toMatch(new RegExp(`^wsctl: workspace ${id} failed: .*boot deadline.*\\n$`));
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
  }, 240_000);
});
