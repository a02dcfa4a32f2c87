import type { SecretBox } from '../security/secrets.js';
import type { Queryable } from './queryable.js';

export async function putSecret(
  db: Queryable,
  box: SecretBox,
  workspaceId: string,
  key: string,
  value: string,
) {
  await db.query(
    `INSERT INTO secrets (workspace_id, key, value_enc) VALUES ($1, $2, $3)
     ON CONFLICT (workspace_id, key) DO UPDATE SET value_enc = EXCLUDED.value_enc, updated_at = now()`,
    [workspaceId, key, box.seal(value)],
  );
}

export async function listSecretKeys(
  db: Queryable,
  workspaceId: string,
): Promise<{ key: string; updatedAt: Date }[]> {
  const { rows } = await db.query<{ key: string; updated_at: Date }>(
    `SELECT key, updated_at FROM secrets WHERE workspace_id = $1 ORDER BY key`,
    [workspaceId],
  );
  return rows.map((r) => ({ key: r.key, updatedAt: r.updated_at }));
}

export async function deleteSecret(db: Queryable, workspaceId: string, key: string): Promise<boolean> {
  const { rowCount } = await db.query(`DELETE FROM secrets WHERE workspace_id = $1 AND key = $2`, [
    workspaceId,
    key,
  ]);
  return (rowCount ?? 0) > 0;
}

/** Decrypted values: only the bootstrap bundle and the redaction function ever see these. */
export async function secretValues(
  db: Queryable,
  box: SecretBox,
  workspaceId: string,
): Promise<Record<string, string>> {
  const { rows } = await db.query<{ key: string; value_enc: string }>(
    `SELECT key, value_enc FROM secrets WHERE workspace_id = $1`,
    [workspaceId],
  );
  return Object.fromEntries(rows.map((r) => [r.key, box.open(r.value_enc)]));
}
