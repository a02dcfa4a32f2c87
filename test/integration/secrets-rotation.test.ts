/**
 * Org default secrets and SECRETS_KEY rotation on the real service and PostgreSQL (no worker: the
 * bundle is fetched through the registry with a minted bootstrap token). The database is this
 * file's own, so `secrets re-encrypt` sees no other file's rows (sealed under other keys).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DbSshKeyStore } from '../../src/db/ssh-keys.js';
import { mintBootstrapToken } from '../../src/db/tokens.js';
import { prepareGeneration } from '../../src/db/workspaces.js';
import { SecretBox, secretKeyId } from '../../src/security/secrets.js';
import { createFreshDatabase, type FreshDatabase } from '../setup/databases.js';
import { createOrg, insertWorkspaceRow, REPO_ROOT, startStack, type Stack } from '../support/stack.js';
import { TS_NODE_ARGS } from '../support/ts-node-args.js';

const run = promisify(execFile);
const KEY_A = randomBytes(32).toString('base64');
const KEY_B = randomBytes(32).toString('base64');
// One admin token across the restarts: only the keys change.
const ADMIN_TOKEN = randomBytes(16).toString('hex');
const ORG_ONLY = 'org-default-value-5c1e';
const ORG_OVERRIDDEN = 'org-api-default-77aa';
const WS_OVERRIDE = 'ws-api-override-90fe';
const LEGACY = 'legacy-value-before-key-ids';
const SSH_PRIVATE = '-----BEGIN OPENSSH PRIVATE KEY----- test-only';
const ALL_VALUES = [ORG_ONLY, ORG_OVERRIDDEN, WS_OVERRIDE, LEGACY];

describe('org secrets and key rotation', () => {
  let fresh: FreshDatabase;
  let stack: Stack | undefined;
  const start = async (env: Record<string, string>) => {
    await stack?.close();
    stack = await startStack({ worker: false, env: { DATABASE_URL: fresh.url, ADMIN_TOKEN, ...env } });
    return stack;
  };
  const cli = (command: string, env: Record<string, string>) =>
    run(process.execPath, [...TS_NODE_ARGS, path.join(REPO_ROOT, 'src/cli/secrets.ts'), command], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH, DATABASE_URL: fresh.url, ...env },
    });

  beforeAll(async () => {
    fresh = await createFreshDatabase(inject('DATABASE_URL'), 'secrets_rotation');
  });
  afterAll(async () => {
    await stack?.close();
    await fresh?.drop();
  });

  it('org defaults reach the bundle under workspace overrides, and survive a rotation and re-encrypt', async () => {
    let s = await start({ SECRETS_KEY: KEY_A });
    const pool = () => s.service.db.pool;
    const org = await createOrg(s, 'rotating');
    const other = await createOrg(s, 'other');
    const admin = s.adminToken;

    // The org routes: admin only (like every /v1/orgs route), values never answered.
    const put = (orgId: string, key: string, value: unknown, token = admin) =>
      s.api.call('PUT', `/v1/orgs/${orgId}/secrets/${key}`, { token, body: { value } });
    expect((await put(org.id, 'ORG_TOKEN', ORG_ONLY)).status).toBe(204);
    expect((await put(org.id, 'API_KEY', ORG_OVERRIDDEN)).status).toBe(204);
    expect((await put(org.id, 'ORG_TOKEN', ORG_ONLY, org.apiKey)).status).toBe(403);
    expect((await s.api.call('GET', `/v1/orgs/${org.id}/secrets`, { token: other.apiKey })).status).toBe(403);
    expect((await put('0123456789abcdef', 'ORG_TOKEN', ORG_ONLY)).status).toBe(404);
    const badKey = await put(org.id, 'lower', 'x');
    expect(badKey.status).toBe(400);
    expect(badKey.body.error.field).toBe('key');
    expect((await put(org.id, 'EMPTY', '')).status).toBe(400);
    const list = await s.api.call('GET', `/v1/orgs/${org.id}/secrets`, { token: admin });
    expect(list.status).toBe(200);
    expect(list.body.items.map((i: { key: string }) => i.key)).toEqual(['API_KEY', 'ORG_TOKEN']);
    expect(JSON.stringify(list.body)).not.toContain(ORG_ONLY);
    expect((await put(org.id, 'GONE', 'soon-gone-value')).status).toBe(204);
    expect((await s.api.call('GET', `/v1/orgs/${other.id}/secrets`, { token: admin })).body.items).toEqual(
      [],
    );
    const stored = await pool().query('SELECT value_enc, key_id FROM org_secrets WHERE org_id = $1', [
      org.id,
    ]);
    for (const row of stored.rows) {
      expect(row.key_id).toBe(secretKeyId(KEY_A));
      expect(row.value_enc).not.toContain(ORG_ONLY);
    }

    // A workspace: its own API_KEY overrides the org's; one row from before key ids existed.
    const id = await insertWorkspaceRow(pool(), org.id);
    const ws = await s.api.call('PUT', `/v1/workspaces/${id}/secrets/API_KEY`, {
      token: org.apiKey,
      body: { value: WS_OVERRIDE },
    });
    expect(ws.status).toBe(204);
    await pool().query(`INSERT INTO secrets (workspace_id, key, value_enc) VALUES ($1, 'LEGACY', $2)`, [
      id,
      new SecretBox(KEY_A).seal(LEGACY).value,
    ]);
    await new DbSshKeyStore(pool(), new SecretBox(KEY_A)).put(id, 1, {
      privateKey: SSH_PRIVATE,
      publicKey: 'ssh-ed25519 AAAA test',
    });
    await prepareGeneration(pool(), id, 1);
    const bootToken = await mintBootstrapToken(pool(), id, 1, 600_000);
    const expected = { API_KEY: WS_OVERRIDE, LEGACY, ORG_TOKEN: ORG_ONLY };
    const bundle = async () => {
      const r = await s.api.call('GET', '/v1/registry/bootstrap', { token: bootToken });
      expect(r.status).toBe(200);
      return r.body as { secrets: Record<string, string>; workspaceToken: string; agentCredential: string };
    };
    const first = await bundle();
    expect(first.secrets).toEqual({ ...expected, GONE: 'soon-gone-value' });
    // Deleted while the agent that got it runs: kept (sealed) to redact what it may still print.
    expect((await s.api.call('DELETE', `/v1/orgs/${org.id}/secrets/GONE`, { token: admin })).status).toBe(
      204,
    );
    expect((await s.api.call('DELETE', `/v1/orgs/${org.id}/secrets/GONE`, { token: admin })).status).toBe(
      404,
    );
    expect(first.agentCredential).toMatch(/^[A-Za-z0-9_-]{43}$/);

    // The one redaction covers the org's defaults, the overridden one too, before storage.
    const echoed = await s.api.call('POST', '/v1/registry/boot-events', {
      token: first.workspaceToken,
      body: {
        workspaceId: id,
        generation: 1,
        phase: 'configs-written',
        message: `echo ${ALL_VALUES.join(' ')}`,
      },
    });
    expect(echoed.status).toBe(200);
    const events = await pool().query('SELECT message FROM boot_events WHERE workspace_id = $1', [id]);
    expect(events.rows).toHaveLength(1);
    for (const v of ALL_VALUES) expect(events.rows[0].message).not.toContain(v);
    expect(events.rows[0].message).toContain('[REDACTED]');

    // Rotation: B seals from now on, A still opens everything sealed before.
    s = await start({ SECRETS_KEY: KEY_B, SECRETS_OLD_KEYS: KEY_A });
    expect((await put(org.id, 'ROTATED', 'sealed-under-b-value')).status).toBe(204);
    const rotated = await pool().query(`SELECT key_id FROM org_secrets WHERE key = 'ROTATED'`);
    expect(rotated.rows[0].key_id).toBe(secretKeyId(KEY_B));
    const during = await bundle();
    expect(during.secrets).toEqual({ ...expected, ROTATED: 'sealed-under-b-value' });
    // The re-fetch window answers the same workspace token, sealed under A.
    expect(during.workspaceToken).toBe(first.workspaceToken);
    // The A2A credential the running agent holds stays what the proxy presents, under any key.
    expect(during.agentCredential).toBe(first.agentCredential);

    const before = await cli('status', { SECRETS_KEY: KEY_B, SECRETS_OLD_KEYS: KEY_A });
    expect(before.stdout).toContain(`secrets\t${secretKeyId(KEY_A)}`);
    expect(before.stdout).toMatch(/secrets\t-\t1\tno key id/);
    const reencrypt = await cli('re-encrypt', { SECRETS_KEY: KEY_B, SECRETS_OLD_KEYS: KEY_A });
    expect(reencrypt.stdout).toMatch(/^secrets: 2 re-encrypted$/m);
    expect(reencrypt.stdout).toMatch(/^org_secrets: 2 re-encrypted$/m);
    // The deleted GONE, kept sealed for redaction while agents may hold it.
    expect(reencrypt.stdout).toMatch(/^retired_secrets: 1 re-encrypted$/m);
    expect(reencrypt.stdout).toMatch(/^ssh_keys: 1 re-encrypted$/m);
    expect(reencrypt.stdout).toMatch(/^agent_credentials: 1 re-encrypted$/m);
    expect(reencrypt.stdout).toMatch(/^bootstrap_tokens: 1 re-encrypted$/m);
    expect(reencrypt.stdout).toContain(`every sealed value is under key ${secretKeyId(KEY_B)}`);
    for (const v of [...ALL_VALUES, SSH_PRIVATE])
      expect(reencrypt.stdout + reencrypt.stderr).not.toContain(v);
    // Again: nothing left to do.
    expect((await cli('re-encrypt', { SECRETS_KEY: KEY_B })).stdout).toMatch(/^secrets: 0 re-encrypted$/m);

    // The old key dropped: everything still opens, through the service and the SSH key store.
    s = await start({ SECRETS_KEY: KEY_B });
    const after = await bundle();
    expect(after.secrets).toEqual({ ...expected, ROTATED: 'sealed-under-b-value' });
    expect(after.workspaceToken).toBe(first.workspaceToken);
    expect(after.agentCredential).toBe(first.agentCredential);
    expect((await new DbSshKeyStore(pool(), new SecretBox(KEY_B)).get(id, 1))?.privateKey).toBe(SSH_PRIVATE);
    const log = await s.api.call('GET', `/v1/workspaces/${id}/boot-log`, { token: org.apiKey });
    expect(log.status).toBe(200);
    for (const v of ALL_VALUES) expect(JSON.stringify(log.body)).not.toContain(v);
    const status = await cli('status', { SECRETS_KEY: KEY_B });
    expect(status.stdout).not.toMatch(/NOT CONFIGURED|no key id/);
  });
});
