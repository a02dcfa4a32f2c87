/**
 * Secrets overwritten or deleted while an agent runs: the agent still holds the old values (they
 * reach it only through its bootstrap bundle), so redaction keeps covering them until the
 * workspace's running generation has fetched a bundle with the new ones. Real service and
 * PostgreSQL, no worker: generations are prepared and their bundles fetched as the workflow and the
 * agent would.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createActivities } from '../../src/activities/index.js';
import { UnconfiguredBackend } from '../../src/backends/unconfigured.js';
import { pruneRetiredSecrets, redactorFor } from '../../src/db/secrets.js';
import { mintBootstrapToken } from '../../src/db/tokens.js';
import { prepareGeneration } from '../../src/db/workspaces.js';
import { SecretBox } from '../../src/security/secrets.js';
import { insertWorkspaceRow, useStack } from '../support/stack.js';

const OLD_WS = 'ws-old-value-3f1a9c';
const NEW_WS = 'ws-new-value-8be20d';
const OLD_ORG = 'org-old-value-c47d51';

describe('retired secrets', () => {
  const t = useStack({ worker: false });

  it('a value overwritten or deleted while the agent runs stays redacted until a new generation fetched its bundle', async () => {
    const pool = t.stack.service.db.pool;
    const box = new SecretBox(t.stack.config.SECRETS_KEY, t.stack.config.SECRETS_OLD_KEYS);
    const id = await insertWorkspaceRow(pool, t.orgId, (i) => `retired-${i}`);
    const putWs = (key: string, value: string) =>
      t.stack.api.call('PUT', `/v1/workspaces/${id}/secrets/${key}`, { token: t.key, body: { value } });
    const orgSecret = (method: 'PUT' | 'DELETE', key: string, value?: string) =>
      t.stack.api.call(method, `/v1/orgs/${t.orgId}/secrets/${key}`, {
        token: t.stack.adminToken,
        ...(value === undefined ? {} : { body: { value } }),
      });
    const bundle = async (generation: number) => {
      await prepareGeneration(pool, id, generation);
      const token = await mintBootstrapToken(pool, id, generation, 600_000);
      const r = await t.stack.api.call('GET', '/v1/registry/bootstrap', { token });
      expect(r.status).toBe(200);
      return r.body.secrets as Record<string, string>;
    };
    const bundleWithToken = async (generation: number) => {
      await prepareGeneration(pool, id, generation);
      const token = await mintBootstrapToken(pool, id, generation, 600_000);
      const r = await t.stack.api.call('GET', '/v1/registry/bootstrap', { token });
      expect(r.status).toBe(200);
      return {
        token: r.body.workspaceToken as string,
        configHash: r.body.configHash as string,
        secrets: r.body.secrets as Record<string, string>,
      };
    };
    const redacted = async () => [...(await redactorFor(pool, box, id)).values].sort();
    const retiredLeft = async () =>
      (
        await pool.query<{ workspace_id: string | null }>(
          'SELECT workspace_id FROM retired_secrets WHERE org_id = $1',
          [t.orgId],
        )
      ).rows;

    expect((await putWs('API_KEY', OLD_WS)).status).toBe(204);
    expect((await orgSecret('PUT', 'ORG_TOKEN', OLD_ORG)).status).toBe(204);
    // Generation 1's agent fetches its bundle: it holds the old values from now on.
    expect(await bundle(1)).toEqual({ API_KEY: OLD_WS, ORG_TOKEN: OLD_ORG });

    // While it runs: its own value overwritten, the org's default deleted.
    expect((await putWs('API_KEY', NEW_WS)).status).toBe(204);
    expect((await orgSecret('DELETE', 'ORG_TOKEN')).status).toBe(204);
    expect(await redacted()).toEqual([NEW_WS, OLD_ORG, OLD_WS].sort());
    const clean = await redactorFor(pool, box, id);
    expect(clean(`echo ${OLD_WS} ${OLD_ORG}`)).not.toMatch(/old-value/);
    // Sealed at rest like the live values.
    const stored = await pool.query<{ value_enc: string }>(
      'SELECT value_enc FROM retired_secrets WHERE org_id = $1',
      [t.orgId],
    );
    expect(stored.rows).toHaveLength(2);
    for (const r of stored.rows) expect(r.value_enc).not.toMatch(/old-value/);

    // Generation 2 fetches the current values: no agent of the workspace holds the old ones now.
    // A retirement this recent still counts as after the fetch (one that began before the fetch
    // stamped its use and committed after it read the secrets left the old value in the bundle).
    const { token: gen2Token, configHash: bootHash, secrets: gen2Secrets } = await bundleWithToken(2);
    expect(gen2Secrets).toEqual({ API_KEY: NEW_WS });
    expect(await redacted()).toEqual([NEW_WS, OLD_ORG, OLD_WS].sort());
    expect(await pruneRetiredSecrets(pool, { orgId: t.orgId })).toBe(0);

    // A second workspace of the org that has not fetched a bundle yet may run an agent with the
    // org's old default; the first workspace's own old value concerns only the first.
    const other = await insertWorkspaceRow(pool, t.orgId, (i) => `retired-other-${i}`);
    // A minute and more later (the retirements moved back instead of the test waiting):
    await pool.query(
      `UPDATE retired_secrets SET retired_at = retired_at - interval '5 minutes' WHERE org_id = $1`,
      [t.orgId],
    );
    expect(await redacted()).toEqual([NEW_WS]);

    // Generation 2's agent registers: what no agent may hold any more goes, the rest stays.
    const reg = await t.stack.api.call('POST', '/v1/registry/register', {
      token: gen2Token,
      body: { workspaceId: id, generation: 2, configHash: bootHash },
    });
    expect(reg.status).toBe(200);
    expect(await retiredLeft()).toEqual([{ workspace_id: null }]);
    expect([...(await redactorFor(pool, box, other)).values]).toContain(OLD_ORG);

    // The second workspace is deleted (the entity's last transition): nothing holds the default.
    const acts = createActivities({
      db: pool,
      backends: { docker: new UnconfiguredBackend('docker'), ec2: new UnconfiguredBackend('ec2') },
      platformUrls: { docker: 'http://platform', ec2: 'http://platform' },
      bootstrapTokenTtlMs: 1000,
      secrets: box,
    });
    await new MockActivityEnvironment().run(acts.recordTransition, {
      workspaceId: other,
      generation: 1,
      status: 'deleted' as const,
      phase: null,
      message: null,
      error: null,
    });
    expect(await retiredLeft()).toEqual([]);
  });

  it('a value set and replaced after the running generation fetched its bundle never reached it: neither redacted nor kept', async () => {
    const pool = t.stack.service.db.pool;
    const box = new SecretBox(t.stack.config.SECRETS_KEY, t.stack.config.SECRETS_OLD_KEYS);
    const id = await insertWorkspaceRow(pool, t.orgId, (i) => `churn-${i}`);
    const put = (value: string) =>
      t.stack.api.call('PUT', `/v1/workspaces/${id}/secrets/CHURN`, { token: t.key, body: { value } });
    expect((await put('delivered-value-51c0')).status).toBe(204);
    await prepareGeneration(pool, id, 1);
    const token = await mintBootstrapToken(pool, id, 1, 600_000);
    const fetched = await t.stack.api.call('GET', '/v1/registry/bootstrap', { token });
    expect(fetched.body.secrets).toEqual({ CHURN: 'delivered-value-51c0' });
    // Ten minutes on (the fetch and the value's write moved back instead of the test waiting): the
    // delivery window has closed; then the secret is rewritten over and over.
    await pool.query(
      `UPDATE bootstrap_tokens SET used_at = used_at - interval '10 minutes' WHERE workspace_id = $1`,
      [id],
    );
    await pool.query(
      `UPDATE secrets SET updated_at = updated_at - interval '10 minutes' WHERE workspace_id = $1`,
      [id],
    );
    for (let i = 0; i < 30; i++) expect((await put(`churned-${i}-9d2e`)).status).toBe(204);

    // Redacted: what the agent holds (the delivered value) and the live one; none of the 29 between.
    const values = [...(await redactorFor(pool, box, id)).values].sort();
    expect(values).toEqual(['churned-29-9d2e', 'delivered-value-51c0']);
    const kept = await pool.query('SELECT 1 FROM retired_secrets WHERE workspace_id = $1', [id]);
    expect(kept.rowCount).toBe(1);
  });
});
