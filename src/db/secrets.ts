import { redact } from '../security/redact.js';
import type { SecretBox } from '../security/secrets.js';
import { inTransaction, type Queryable, type Transactable } from './queryable.js';
import { BOOTSTRAP_REFETCH_WINDOW_MS } from './tokens.js';
import { HOT_TTL_MS, TtlCache } from './ttl-cache.js';

/**
 * The A2A proxy's redactors (every call needs one, and building it is a query plus a decryption per
 * secret), by the workspaces they cover, trusted for HOT_TTL_MS. Any secret written or deleted in
 * this process drops them all at once (an org default reaches every workspace of the org).
 */
const redactors = new TtlCache<string, Redactor>({ ttlMs: HOT_TTL_MS, maxEntries: 1_000 });

/**
 * Secrets of a workspace (`secrets`) and org-wide defaults (`org_secrets`), sealed with the key
 * ring's current key; the key id is stored per row so a rotated key still opens older rows.
 */
export type SecretOwner = { workspaceId: string } | { orgId: string };

const target = (owner: SecretOwner) =>
  'orgId' in owner
    ? { table: 'org_secrets', column: 'org_id', id: owner.orgId }
    : { table: 'secrets', column: 'workspace_id', id: owner.workspaceId };

/**
 * A CTE (`retired`) that keeps the owner's current value of `key` ($1 the owner, $2 the key) in
 * `retired_secrets` as the statement replaces or deletes it: running agents may still hold it.
 */
function retiring(owner: SecretOwner): string {
  const { table, column } = target(owner);
  const org = 'orgId' in owner ? '$1' : '(SELECT org_id FROM workspaces WHERE id = $1)';
  const workspace = 'orgId' in owner ? 'NULL' : '$1';
  return `retired AS (
      INSERT INTO retired_secrets (org_id, workspace_id, value_enc, key_id, set_at)
      SELECT ${org}, ${workspace}, value_enc, key_id, updated_at FROM ${table} WHERE ${column} = $1 AND key = $2
    )`;
}

export async function putSecret(
  db: Queryable,
  box: SecretBox,
  owner: SecretOwner,
  key: string,
  value: string,
): Promise<void> {
  const { table, column, id } = target(owner);
  const sealed = box.seal(value);
  // One statement: the old value is retired exactly when it is replaced.
  await db.query(
    `WITH ${retiring(owner)}
     INSERT INTO ${table} (${column}, key, value_enc, key_id) VALUES ($1, $2, $3, $4)
     ON CONFLICT (${column}, key) DO UPDATE
       SET value_enc = EXCLUDED.value_enc, key_id = EXCLUDED.key_id, updated_at = now()`,
    [id, key, sealed.value, sealed.keyId],
  );
  redactors.clear();
}

/**
 * putSecret unless it would add a key past `max` for its owner (replacing one is always allowed):
 * `over_quota` then, nothing written; or unless the owner workspace is being deleted (`deleting`:
 * its secrets are dropped at the delete's end, and one written after that would outlive it). The
 * owner's row is locked before the checks, so concurrent writes of new keys cannot overshoot.
 */
export async function putSecretWithin(
  pool: Transactable,
  box: SecretBox,
  owner: SecretOwner,
  key: string,
  value: string,
  max: number,
): Promise<'stored' | 'over_quota' | 'deleting'> {
  const { table, column, id } = target(owner);
  const verdict = await inTransaction(pool, async (tx) => {
    const workspace = !('orgId' in owner);
    const locked = await tx.query<{ status: string | null }>(
      `SELECT ${workspace ? 'status' : 'NULL AS status'} FROM ${workspace ? 'workspaces' : 'orgs'} WHERE id = $1 FOR UPDATE`,
      [id],
    );
    const status = locked.rows[0]?.status;
    if (status === 'deleting' || status === 'deleted') return 'deleting' as const;
    const { rows } = await tx.query<{ n: number; has: boolean | null }>(
      `SELECT count(*)::int AS n, bool_or(key = $2) AS has FROM ${table} WHERE ${column} = $1`,
      [id, key],
    );
    if (!rows[0]?.has && (rows[0]?.n ?? 0) >= max) return 'over_quota' as const;
    await putSecret(tx, box, owner, key, value);
    return 'stored' as const;
  });
  // Again after the commit: a redactor built while the transaction was open missed the value.
  if (verdict === 'stored') redactors.clear();
  return verdict;
}

export async function listSecretKeys(
  db: Queryable,
  owner: SecretOwner,
): Promise<{ key: string; updatedAt: Date }[]> {
  const { table, column, id } = target(owner);
  const { rows } = await db.query<{ key: string; updated_at: Date }>(
    `SELECT key, updated_at FROM ${table} WHERE ${column} = $1 ORDER BY key`,
    [id],
  );
  return rows.map((r) => ({ key: r.key, updatedAt: r.updated_at }));
}

export async function deleteSecret(db: Queryable, owner: SecretOwner, key: string): Promise<boolean> {
  const { table, column, id } = target(owner);
  const { rowCount } = await db.query(
    `WITH ${retiring(owner)} DELETE FROM ${table} WHERE ${column} = $1 AND key = $2`,
    [id, key],
  );
  redactors.clear();
  return (rowCount ?? 0) > 0;
}

interface SealedRow {
  key: string;
  value_enc: string;
  key_id: string | null;
  /** 0 = the org's default, 1 = the workspace's own. */
  own: number;
}

/**
 * How long before a bundle fetch a retirement still counts as after it. A retirement is stamped
 * with its statement's start, and a fetch reads the secrets in a statement after stamping
 * `used_at`: a retirement that began just before the stamp and committed after the read left the
 * old value in the bundle with a stamp older than the fetch. Covering an old value a little longer
 * costs nothing; missing one leaks it.
 */
const RETIREMENT_SLACK = `interval '60 seconds'`;

/**
 * How long after a bundle fetch a value set then may still have reached the agent: the same token
 * fetches the bundle again (read anew) within the re-fetch window, and each fetch reads the secrets
 * a statement after the stamp; then the same slack as above.
 */
const DELIVERY_WINDOW = `interval '${BOOTSTRAP_REFETCH_WINDOW_MS / 1000 + 60} seconds'`;

/**
 * SQL, after `workspaces w`: `fetched.at`, when its running generation fetched its bundle (null:
 * not yet), read once per workspace for MAY_HOLD's two bounds.
 */
const FETCHED = `CROSS JOIN LATERAL (SELECT max(b.used_at) AS at FROM bootstrap_tokens b
        WHERE b.workspace_id = w.id AND b.generation = w.generation) fetched`;

/**
 * SQL: the running generation of workspace `w` may hold retired value `r` (see retiredRows; needs
 * FETCHED): it was retired after the fetch, and set before the fetch's delivery window closed (a
 * value set and replaced later never reached it). Before any fetch, every retired value counts.
 */
const MAY_HOLD = `r.retired_at > COALESCE(fetched.at, '-infinity') - ${RETIREMENT_SLACK}
      AND (r.set_at IS NULL OR r.set_at < COALESCE(fetched.at, 'infinity') + ${DELIVERY_WINDOW})`;

/**
 * Retired values the workspace's agent may still hold: its own and its org's, retired after the
 * running generation fetched its bootstrap bundle (or all of them, when it has not fetched one yet:
 * the previous generation's agent may still run).
 */
async function retiredRows(
  db: Queryable,
  workspaceId: string,
): Promise<Array<{ value_enc: string; key_id: string | null }>> {
  const { rows } = await db.query<{ value_enc: string; key_id: string | null }>(
    `SELECT r.value_enc, r.key_id
       FROM workspaces w ${FETCHED}
       JOIN retired_secrets r ON r.org_id = w.org_id AND (r.workspace_id IS NULL OR r.workspace_id = w.id)
      WHERE w.id = $1 AND ${MAY_HOLD}`,
    [workspaceId],
  );
  return rows;
}

/**
 * Drops the org's (or the workspace's org's) retired values that no workspace of it may still hold (each one concerned is
 * deleted, or its running generation fetched a bundle after the retirement): they would otherwise
 * stay, sealed, for as long as the org. A later generation fetches the live values, never these.
 * Returns how many went.
 */
export async function pruneRetiredSecrets(
  db: Queryable,
  of: { orgId: string } | { workspaceId: string },
): Promise<number> {
  const org = 'orgId' in of ? '$1' : '(SELECT org_id FROM workspaces WHERE id = $1)';
  const { rowCount } = await db.query(
    `DELETE FROM retired_secrets r
      WHERE r.org_id = ${org}
        AND NOT EXISTS (
          SELECT 1 FROM workspaces w ${FETCHED}
           WHERE w.org_id = r.org_id AND (r.workspace_id IS NULL OR w.id = r.workspace_id)
             AND w.status <> 'deleted' AND ${MAY_HOLD})`,
    ['orgId' in of ? of.orgId : of.workspaceId],
  );
  return rowCount ?? 0;
}

/**
 * A deleted workspace's sealed values: its own secrets and its agents' A2A credentials. Nothing
 * reads them once it is deleted (what it logged was redacted when written), and a sealed value
 * kept for good is one more to leak and to re-encrypt at every key rotation.
 */
export async function dropWorkspaceSecrets(db: Queryable, workspaceId: string): Promise<void> {
  await db.query(
    `WITH s AS (DELETE FROM secrets WHERE workspace_id = $1)
     DELETE FROM agent_credentials WHERE workspace_id = $1`,
    [workspaceId],
  );
}

/**
 * A deleted org's default secrets and retired values, once none of its workspaces is left short of
 * `deleted` (until then they still redact what those workspaces log while they go). False while
 * some are left, or when the org is not deleted.
 */
export async function dropDeletedOrgSecrets(db: Queryable, orgId: string): Promise<boolean> {
  const { rows } = await db.query<{ gone: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM orgs WHERE id = $1 AND deleted_at IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM workspaces WHERE org_id = $1 AND status <> 'deleted') AS gone`,
    [orgId],
  );
  if (!rows[0]?.gone) return false;
  await db.query(
    `WITH s AS (DELETE FROM org_secrets WHERE org_id = $1)
     DELETE FROM retired_secrets WHERE org_id = $1`,
    [orgId],
  );
  return true;
}

/** The org defaults and the workspace's own rows, defaults first. */
async function sealedRows(db: Queryable, workspaceId: string): Promise<SealedRow[]> {
  const { rows } = await db.query<SealedRow>(
    `SELECT s.key, s.value_enc, s.key_id, 0 AS own
       FROM org_secrets s JOIN workspaces w ON w.org_id = s.org_id WHERE w.id = $1
     UNION ALL
     SELECT key, value_enc, key_id, 1 AS own FROM secrets WHERE workspace_id = $1
     ORDER BY own, key`,
    [workspaceId],
  );
  return rows;
}

/**
 * What the workspace's agent gets (only through its bootstrap bundle): the org defaults, with the
 * workspace's own value winning for a key both have.
 */
export async function secretValues(
  db: Queryable,
  box: SecretBox,
  workspaceId: string,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const r of await sealedRows(db, workspaceId)) out[r.key] = box.open(r.value_enc, r.key_id);
  return out;
}

/**
 * A text cleaner bound to a set of secret values (see `redactorFor`); `values` are exposed for
 * cleaners that must know them, such as a capped tail that may cut a secret in two.
 */
export type Redactor = ((text: string) => string) & { readonly values: readonly string[] };

/**
 * The one redaction function, bound to every secret value the given workspaces could hold or see:
 * their own, and every default of their orgs (an overridden default too: it may still be echoed),
 * and the values retired since their running agents fetched theirs (still in those agents).
 * Applied before anything is stored or answered: boot events, console logs, transition messages
 * and errors, activity summaries and excerpts, memories.
 */
export async function redactorFor(
  db: Queryable,
  box: SecretBox,
  ...workspaceIds: string[]
): Promise<Redactor> {
  const values = new Set<string>();
  // The live and the retired values of every workspace read at once, not one query after another.
  const reads = [...new Set(workspaceIds)].flatMap((id) => [sealedRows(db, id), retiredRows(db, id)]);
  for (const rows of await Promise.all(reads)) {
    for (const r of rows) values.add(box.open(r.value_enc, r.key_id));
  }
  const list = [...values];
  return Object.assign((text: string) => redact(text, list), { values: list });
}

/** redactorFor, cached (see `redactors`): for the A2A proxy's per-call redaction. */
export function cachedRedactorFor(
  db: Queryable,
  box: SecretBox,
  ...workspaceIds: string[]
): Promise<Redactor> {
  const ids = [...new Set(workspaceIds)].sort();
  return redactors.get(ids.join(','), () => redactorFor(db, box, ...ids));
}
