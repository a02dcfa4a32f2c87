/** Where the reference agent keeps its bundle and secrets: outside the configs volume, root-only. */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Bundle } from '../../src/agent/bundle.js';
import {
  loadSavedBundle,
  materializeConfigs,
  removeLegacyState,
  sha256Hex,
  writeSecrets,
} from '../../src/agent/configs.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function layout(): { configs: string; state: string; outside: string } {
  const root = mkdtempSync(join(tmpdir(), 'wo-agent-state-'));
  dirs.push(root);
  return { configs: join(root, 'configs'), state: join(root, 'var', 'lib', 'wo'), outside: root };
}

const bundle: Bundle = {
  workspaceId: 'ws1',
  orgId: 'org1',
  name: 'one',
  runtime: 'echo',
  generation: 2,
  configHash: 'h2',
  config: { runtime: 'echo' },
  configYaml: 'runtime: echo\n',
  files: [{ path: 'notes/a.md', contentBase64: Buffer.from('a').toString('base64') }],
  plugins: [],
  secrets: { API_KEY: 'k-123' },
  workspaceToken: 'wo_ws_token',
  agentCredential: 'cred',
  heartbeatIntervalMs: 1000,
};

describe('agent state dir', () => {
  it('writes bundle.json and secrets.env 0600 in a 0700 state dir, nothing of them under /configs', async () => {
    const d = layout();
    await materializeConfigs(d.configs, d.state, bundle, sha256Hex('boot'));
    await writeSecrets(d.state, bundle.secrets);
    expect(statSync(d.state).mode & 0o777).toBe(0o700);
    expect(statSync(join(d.state, 'bundle.json')).mode & 0o777).toBe(0o600);
    expect(statSync(join(d.state, 'secrets.env')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(d.state, 'secrets.env'), 'utf8')).toBe('API_KEY=k-123\n');
    expect(readFileSync(join(d.configs, 'config.yaml'), 'utf8')).toBe('runtime: echo\n');
    expect(existsSync(join(d.configs, '.wo'))).toBe(false);
    const saved = await loadSavedBundle(d.state, d.configs);
    expect(saved).toMatchObject({ workspaceToken: 'wo_ws_token', bootstrapTokenSha256: sha256Hex('boot') });
  });

  it('reads an older agent’s /configs/.wo/bundle.json once (reboot), and the legacy dir is then removed', async () => {
    const d = layout();
    mkdirSync(join(d.configs, '.wo'), { recursive: true });
    const legacy = { ...bundle, bootstrapTokenSha256: sha256Hex('old-boot') };
    writeFileSync(join(d.configs, '.wo', 'bundle.json'), JSON.stringify(legacy));
    writeFileSync(join(d.configs, '.wo', 'secrets.env'), 'API_KEY=k-123\n');

    expect(await loadSavedBundle(d.state, d.configs)).toMatchObject({
      workspaceToken: 'wo_ws_token',
      bootstrapTokenSha256: sha256Hex('old-boot'),
    });
    await materializeConfigs(d.configs, d.state, bundle, sha256Hex('old-boot'));
    await removeLegacyState(d.configs);
    expect(existsSync(join(d.configs, '.wo'))).toBe(false);
    // From now on the state dir answers.
    expect((await loadSavedBundle(d.state, d.configs))?.bootstrapTokenSha256).toBe(sha256Hex('old-boot'));
  });

  it('removing the legacy dir removes a planted symlink itself, never what it points to', async () => {
    const d = layout();
    mkdirSync(d.configs, { recursive: true });
    const precious = join(d.outside, 'precious');
    mkdirSync(precious);
    writeFileSync(join(precious, 'keep.txt'), 'keep');
    symlinkSync(precious, join(d.configs, '.wo'));
    await removeLegacyState(d.configs);
    expect(existsSync(join(d.configs, '.wo'))).toBe(false);
    expect(readFileSync(join(precious, 'keep.txt'), 'utf8')).toBe('keep');
  });

  it('no saved bundle anywhere: first boot', async () => {
    const d = layout();
    expect(await loadSavedBundle(d.state, d.configs)).toBeNull();
  });
});
