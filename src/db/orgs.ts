import { hashToken, mintToken, newId } from '../security/tokens.js';
import type { Queryable } from './queryable.js';

export interface Org {
  id: string;
  name: string;
  createdAt: Date;
}

export async function createOrg(db: Queryable, name: string): Promise<{ org: Org; apiKey: string }> {
  const id = newId();
  const apiKey = mintToken('org');
  const { rows } = await db.query<{ id: string; name: string; created_at: Date }>(
    `WITH o AS (INSERT INTO orgs (id, name) VALUES ($1, $2) RETURNING *),
          k AS (INSERT INTO api_keys (id, org_id, key_hash) SELECT $3, id, $4 FROM o)
     SELECT id, name, created_at FROM o`,
    [id, name, newId(), hashToken(apiKey)],
  );
  const row = rows[0]!;
  return { org: { id: row.id, name: row.name, createdAt: row.created_at }, apiKey };
}

export async function orgIdForApiKey(db: Queryable, apiKey: string): Promise<string | null> {
  const { rows } = await db.query<{ org_id: string }>('SELECT org_id FROM api_keys WHERE key_hash = $1', [
    hashToken(apiKey),
  ]);
  return rows[0]?.org_id ?? null;
}

export async function orgExists(db: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM orgs WHERE id = $1', [id]);
  return (rowCount ?? 0) > 0;
}

/**
 * Inside a create's transaction: locks the org row, so concurrent creates in one org are counted
 * one after another, and counts its live (not deleted) workspaces. Null when the org does not exist.
 */
export async function lockOrgAndCountWorkspaces(
  tx: Queryable,
  orgId: string,
): Promise<{ liveWorkspaces: number } | null> {
  const { rowCount } = await tx.query('SELECT 1 FROM orgs WHERE id = $1 FOR UPDATE', [orgId]);
  if (!rowCount) return null;
  const { rows } = await tx.query<{ n: string }>(
    `SELECT count(*) AS n FROM workspaces WHERE org_id = $1 AND status <> 'deleted'`,
    [orgId],
  );
  return { liveWorkspaces: Number(rows[0]!.n) };
}
