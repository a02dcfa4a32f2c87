import { hashToken, mintToken, newId } from '../security/tokens.js';
import type { Queryable } from './queryable.js';
import { HOT_TTL_MS, TtlCache } from './ttl-cache.js';

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

/**
 * Known keys (by hash) → their org, trusted for HOT_TTL_MS: every API call authenticates. An unknown
 * key is never kept (a key minted next works at once); deleting an org forgets every key here at once.
 */
const apiKeyOrgs = new TtlCache<string, string | null>({
  ttlMs: HOT_TTL_MS,
  maxEntries: 10_000,
  keep: (orgId) => orgId !== null,
});

/** Forgets every cached key → org (an org's keys were dropped in this process). */
export function forgetApiKeys(): void {
  apiKeyOrgs.clear();
}

export async function orgIdForApiKey(
  db: Queryable,
  apiKey: string,
  /** hashToken(apiKey), when the caller already has it. */
  hash = hashToken(apiKey),
): Promise<string | null> {
  return apiKeyOrgs.get(hash, async () => {
    // The join is a second guard: a deleted org's keys are dropped with it, in the same transaction.
    const { rows } = await db.query<{ org_id: string }>(
      `SELECT k.org_id FROM api_keys k JOIN orgs o ON o.id = k.org_id
       WHERE k.key_hash = $1 AND o.deleted_at IS NULL`,
      [hash],
    );
    return rows[0]?.org_id ?? null;
  });
}

/** A live (not deleted) org, or null. */
export async function getOrg(db: Queryable, id: string): Promise<Org | null> {
  const { rows } = await db.query<{ id: string; name: string; created_at: Date }>(
    'SELECT id, name, created_at FROM orgs WHERE id = $1 AND deleted_at IS NULL',
    [id],
  );
  const row = rows[0];
  return row ? { id: row.id, name: row.name, createdAt: row.created_at } : null;
}

/**
 * One page of the orgs that are not deleted, newest first (as workspaces are listed), after the
 * org `afterId` (keyset: stable under inserts); `more` when others follow. A cursor naming an org
 * deleted since still pages on from where it stood. No `limit`: all of them.
 */
export async function listOrgs(
  db: Queryable,
  q: { limit?: number; afterId?: string },
): Promise<{ items: Org[]; more: boolean }> {
  const { rows } = await db.query<{ id: string; name: string; created_at: Date }>(
    `SELECT id, name, created_at FROM orgs
     WHERE deleted_at IS NULL
       AND ($1::text IS NULL OR (created_at, id) < (SELECT created_at, id FROM orgs WHERE id = $1))
     ORDER BY created_at DESC, id DESC LIMIT $2`,
    [q.afterId ?? null, q.limit === undefined ? null : q.limit + 1],
  );
  const limit = q.limit ?? rows.length;
  const items = rows
    .slice(0, limit)
    .map((row) => ({ id: row.id, name: row.name, createdAt: row.created_at }));
  return { items, more: rows.length > limit };
}

/**
 * Inside a transaction: marks the org deleted and drops its API keys, so they stop working at once.
 * The org row is locked first, the same lock a workspace create takes, so no create slips in after
 * the cascade listed the org's workspaces. `already` when it was deleted before (the caller starts
 * the cascade again: a first attempt may have failed to), `missing` when no such org ever existed.
 */
export async function markOrgDeleted(tx: Queryable, id: string): Promise<'deleted' | 'already' | 'missing'> {
  const { rows } = await tx.query<{ deleted: boolean }>(
    'SELECT deleted_at IS NOT NULL AS deleted FROM orgs WHERE id = $1 FOR UPDATE',
    [id],
  );
  if (!rows[0]) return 'missing';
  if (rows[0].deleted) return 'already';
  await tx.query('UPDATE orgs SET deleted_at = now() WHERE id = $1', [id]);
  await tx.query('DELETE FROM api_keys WHERE org_id = $1', [id]);
  // Now and again once committed (the caller): a lookup between the two must not keep the key.
  forgetApiKeys();
  return 'deleted';
}

/**
 * Inside a create's transaction: locks the org row, so concurrent creates in one org are counted
 * one after another, and counts its live (not deleted) workspaces. Null when the org does not exist
 * (or is deleted).
 */
export async function lockOrgAndCountWorkspaces(
  tx: Queryable,
  orgId: string,
): Promise<{ name: string; liveWorkspaces: number } | null> {
  const org = await tx.query<{ name: string }>(
    'SELECT name FROM orgs WHERE id = $1 AND deleted_at IS NULL FOR UPDATE',
    [orgId],
  );
  const name = org.rows[0]?.name;
  if (name === undefined) return null;
  const { rows } = await tx.query<{ n: string }>(
    `SELECT count(*) AS n FROM workspaces WHERE org_id = $1 AND status <> 'deleted'`,
    [orgId],
  );
  return { name, liveWorkspaces: Number(rows[0]!.n) };
}
