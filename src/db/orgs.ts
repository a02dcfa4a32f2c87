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
