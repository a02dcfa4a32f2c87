import { agentCredential } from '../security/agent-credential.js';
import type { SecretBox } from '../security/secrets.js';
import type { Queryable } from './queryable.js';
import { HOT_TTL_MS, TtlCache } from './ttl-cache.js';

/**
 * What the proxy presents, by `workspace:generation`: fixed once issued (first issue wins), so the
 * TTL only bounds memory and a credential first issued by another process.
 */
const presented = new TtlCache<string, string>({ ttlMs: HOT_TTL_MS, maxEntries: 10_000 });

/**
 * A generation's A2A credential, as handed to its agent. Derived from the current secrets key
 * when first issued, then kept sealed: after SECRETS_KEY rotates (and the old key is dropped once
 * `secrets re-encrypt` has run), the proxy still presents exactly what the running agent holds.
 */
export async function issueAgentCredential(
  db: Queryable,
  box: SecretBox,
  workspaceId: string,
  generation: number,
): Promise<string> {
  const sealed = box.seal(agentCredential(box, workspaceId, generation));
  // First issue wins: a bundle re-fetched after a rotation hands out the same credential.
  await db.query(
    `INSERT INTO agent_credentials (workspace_id, generation, credential_enc, key_id) VALUES ($1, $2, $3, $4)
     ON CONFLICT (workspace_id, generation) DO NOTHING`,
    [workspaceId, generation, sealed.value, sealed.keyId],
  );
  presented.delete(`${workspaceId}:${generation}`);
  return (await storedAgentCredential(db, box, workspaceId, generation))!;
}

/** What the proxy presents to the generation's agent. */
export async function presentedAgentCredential(
  db: Queryable,
  box: SecretBox,
  workspaceId: string,
  generation: number,
): Promise<string> {
  // None stored: a generation booted before credentials were kept; derived as it was then.
  return presented.get(
    `${workspaceId}:${generation}`,
    async () =>
      (await storedAgentCredential(db, box, workspaceId, generation)) ??
      agentCredential(box, workspaceId, generation),
  );
}

async function storedAgentCredential(
  db: Queryable,
  box: SecretBox,
  workspaceId: string,
  generation: number,
): Promise<string | null> {
  const { rows } = await db.query<{ credential_enc: string; key_id: string | null }>(
    `SELECT credential_enc, key_id FROM agent_credentials WHERE workspace_id = $1 AND generation = $2`,
    [workspaceId, generation],
  );
  const row = rows[0];
  return row ? box.open(row.credential_enc, row.key_id) : null;
}
