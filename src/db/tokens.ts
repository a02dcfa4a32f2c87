import type { SecretBox } from '../security/secrets.js';
import { hashToken, mintToken } from '../security/tokens.js';
import type { Queryable } from './queryable.js';

/**
 * How long after its first use a bootstrap token still answers, with the same bundle and the same
 * workspace token: an answer lost on the way (agent timeout, dropped connection) must not strand
 * the generation. The window closes early once the agent registers (delivery proven).
 */
export const BOOTSTRAP_REFETCH_WINDOW_MS = 120_000;

export interface TokenOwner {
  workspaceId: string;
  generation: number;
}

const owner = (row: { workspace_id: string; generation: number } | undefined): TokenOwner | null =>
  row ? { workspaceId: row.workspace_id, generation: row.generation } : null;

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

/**
 * SQL condition: the bootstrap token's org is not deleted. A deleted org's workspaces keep running
 * (and may reboot) until its cascade reaches each; from the org's delete on, their agents get no
 * bundle (its secrets) and no workspace token, as their workspace tokens stop then too.
 */
const ORG_ALIVE = `EXISTS (SELECT 1 FROM workspaces w JOIN orgs o ON o.id = w.org_id AND o.deleted_at IS NULL
   WHERE w.id = bootstrap_tokens.workspace_id)`;

/** SQL condition: the bootstrap token row may still fetch its bundle (unused, or re-fetch window). */
const USABLE = `((used_at IS NULL AND expires_at > now())
   OR (workspace_token_enc IS NOT NULL AND used_at > now() - ($2::int * interval '1 millisecond')))
   AND ${ORG_ALIVE}`;

/** Whom a bootstrap token is for, without spending it; null when unknown, spent or expired. */
export async function lookupBootstrapToken(db: Queryable, token: string): Promise<TokenOwner | null> {
  const { rows } = await db.query<{ workspace_id: string; generation: number }>(
    `SELECT workspace_id, generation FROM bootstrap_tokens WHERE token_hash = $1 AND ${USABLE}`,
    [hashToken(token), BOOTSTRAP_REFETCH_WINDOW_MS],
  );
  return owner(rows[0]);
}

/**
 * Redeems a bootstrap token for the generation's workspace token. The first use mints it (stored
 * hashed for auth, and sealed on the bootstrap row) in one statement, so concurrent fetches cannot
 * both mint; a re-fetch inside the window answers the same token. Null when unknown, expired, or
 * spent (window over, or the agent already registered).
 */
export async function redeemBootstrapToken(
  db: Queryable,
  box: SecretBox,
  token: string,
): Promise<(TokenOwner & { workspaceToken: string }) | null> {
  const workspaceToken = mintToken('ws');
  const sealed = box.seal(workspaceToken);
  const first = await db.query<{ workspace_id: string; generation: number }>(
    `WITH claimed AS (
       UPDATE bootstrap_tokens SET used_at = now(), workspace_token_enc = $2, workspace_token_key_id = $4
       WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() AND ${ORG_ALIVE}
       RETURNING workspace_id, generation
     ), minted AS (
       INSERT INTO workspace_tokens (token_hash, workspace_id, generation)
       SELECT $3, workspace_id, generation FROM claimed
     )
     SELECT workspace_id, generation FROM claimed`,
    [hashToken(token), sealed.value, hashToken(workspaceToken), sealed.keyId],
  );
  const claimed = owner(first.rows[0]);
  if (claimed) return { ...claimed, workspaceToken };

  const again = await db.query<{
    workspace_id: string;
    generation: number;
    workspace_token_enc: string;
    workspace_token_key_id: string | null;
  }>(
    `SELECT workspace_id, generation, workspace_token_enc, workspace_token_key_id FROM bootstrap_tokens
     WHERE token_hash = $1 AND workspace_token_enc IS NOT NULL
       AND used_at > now() - ($2::int * interval '1 millisecond') AND ${ORG_ALIVE}`,
    [hashToken(token), BOOTSTRAP_REFETCH_WINDOW_MS],
  );
  const row = again.rows[0];
  if (!row) return null;
  const redelivered = box.open(row.workspace_token_enc, row.workspace_token_key_id);
  // Revoked meanwhile (superseded generation): the sealed copy must not outlive the token.
  if (!(await lookupWorkspaceToken(db, redelivered))) return null;
  return { ...owner(row)!, workspaceToken: redelivered };
}

/** The agent registered with its workspace token: the bundle arrived, the re-fetch window closes. */
export async function closeBootstrapRedelivery(
  db: Queryable,
  workspaceId: string,
  generation: number,
): Promise<void> {
  await db.query(
    `UPDATE bootstrap_tokens SET workspace_token_enc = NULL, workspace_token_key_id = NULL
     WHERE workspace_id = $1 AND generation = $2 AND workspace_token_enc IS NOT NULL`,
    [workspaceId, generation],
  );
}

/** A workspace token for a generation, outside the bootstrap path (tests, tooling). */
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

export async function lookupWorkspaceToken(db: Queryable, token: string): Promise<TokenOwner | null> {
  // A deleted org's workspaces stay up until its cascade reaches each (which may wait on Temporal):
  // their tokens stop with the org, in the same lookup, on every route (A2A, MCP, registry, files).
  const { rows } = await db.query<{ workspace_id: string; generation: number }>(
    `SELECT t.workspace_id, t.generation FROM workspace_tokens t
       JOIN workspaces w ON w.id = t.workspace_id
       JOIN orgs o ON o.id = w.org_id AND o.deleted_at IS NULL
     WHERE t.token_hash = $1`,
    [hashToken(token)],
  );
  return owner(rows[0]);
}

/**
 * Revokes the workspace and bootstrap tokens of every generation older than `current`: once a new
 * generation is prepared, the old one may neither call the registry nor act as an A2A caller.
 */
export async function revokeSupersededTokens(
  db: Queryable,
  workspaceId: string,
  current: number,
): Promise<void> {
  await db.query(`DELETE FROM workspace_tokens WHERE workspace_id = $1 AND generation < $2`, [
    workspaceId,
    current,
  ]);
  await db.query(`DELETE FROM bootstrap_tokens WHERE workspace_id = $1 AND generation < $2`, [
    workspaceId,
    current,
  ]);
  await db.query(`DELETE FROM agent_credentials WHERE workspace_id = $1 AND generation < $2`, [
    workspaceId,
    current,
  ]);
}

export async function revokeWorkspaceTokens(db: Queryable, workspaceId: string): Promise<void> {
  await db.query(`DELETE FROM workspace_tokens WHERE workspace_id = $1`, [workspaceId]);
  await db.query(`DELETE FROM bootstrap_tokens WHERE workspace_id = $1`, [workspaceId]);
  await db.query(`DELETE FROM agent_credentials WHERE workspace_id = $1`, [workspaceId]);
}
