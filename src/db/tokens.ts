import { hashToken, mintToken } from '../security/tokens.js';
import type { Queryable } from './queryable.js';

export async function mintBootstrapToken(
  db: Queryable,
  workspaceId: string,
  generation: number,
  ttlMs: number,
): Promise<string> {
  const token = mintToken('boot');
  await db.query(
    `INSERT INTO bootstrap_tokens (token_hash, workspace_id, generation, expires_at)
     VALUES ($1, $2, $3, now() + ($4::int * interval '1 millisecond'))`,
    [hashToken(token), workspaceId, generation, ttlMs],
  );
  return token;
}

/** Marks the token used and returns whom it was for; null when unknown, used or expired. */
export async function consumeBootstrapToken(
  db: Queryable,
  token: string,
): Promise<{ workspaceId: string; generation: number } | null> {
  const { rows } = await db.query<{ workspace_id: string; generation: number }>(
    `UPDATE bootstrap_tokens SET used_at = now()
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
     RETURNING workspace_id, generation`,
    [hashToken(token)],
  );
  return rows[0] ? { workspaceId: rows[0].workspace_id, generation: rows[0].generation } : null;
}

export async function mintWorkspaceToken(
  db: Queryable,
  workspaceId: string,
  generation: number,
): Promise<string> {
  const token = mintToken('ws');
  await db.query(`INSERT INTO workspace_tokens (token_hash, workspace_id, generation) VALUES ($1, $2, $3)`, [
    hashToken(token),
    workspaceId,
    generation,
  ]);
  return token;
}

export async function lookupWorkspaceToken(
  db: Queryable,
  token: string,
): Promise<{ workspaceId: string; generation: number } | null> {
  const { rows } = await db.query<{ workspace_id: string; generation: number }>(
    `SELECT workspace_id, generation FROM workspace_tokens WHERE token_hash = $1`,
    [hashToken(token)],
  );
  return rows[0] ? { workspaceId: rows[0].workspace_id, generation: rows[0].generation } : null;
}

export async function revokeWorkspaceTokens(db: Queryable, workspaceId: string): Promise<void> {
  await db.query(`DELETE FROM workspace_tokens WHERE workspace_id = $1`, [workspaceId]);
  await db.query(`DELETE FROM bootstrap_tokens WHERE workspace_id = $1`, [workspaceId]);
}
