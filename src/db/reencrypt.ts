import type { SecretBox } from '../security/secrets.js';
import type { Queryable } from './queryable.js';

/** Every column sealed with the secrets key, with its key-id column and its primary key. */
const SEALED_COLUMNS = [
  { table: 'secrets', value: 'value_enc', keyId: 'key_id', pk: ['workspace_id', 'key'] },
  { table: 'org_secrets', value: 'value_enc', keyId: 'key_id', pk: ['org_id', 'key'] },
  { table: 'retired_secrets', value: 'value_enc', keyId: 'key_id', pk: ['id'] },
  {
    table: 'agent_credentials',
    value: 'credential_enc',
    keyId: 'key_id',
    pk: ['workspace_id', 'generation'],
  },
  { table: 'ssh_keys', value: 'private_key_enc', keyId: 'key_id', pk: ['workspace_id', 'generation'] },
  {
    table: 'bootstrap_tokens',
    value: 'workspace_token_enc',
    keyId: 'workspace_token_key_id',
    pk: ['token_hash'],
  },
] as const;

export interface SealedCount {
  table: string;
  /** null: sealed before key ids were recorded. */
  keyId: string | null;
  rows: number;
}

/** How many sealed values each key id holds, per table (what `secrets status` prints). */
export async function sealedCounts(db: Queryable): Promise<SealedCount[]> {
  const out: SealedCount[] = [];
  for (const c of SEALED_COLUMNS) {
    const { rows } = await db.query<{ key_id: string | null; n: string }>(
      `SELECT ${c.keyId} AS key_id, count(*) AS n FROM ${c.table}
       WHERE ${c.value} IS NOT NULL GROUP BY ${c.keyId} ORDER BY ${c.keyId}`,
    );
    for (const r of rows) out.push({ table: c.table, keyId: r.key_id, rows: Number(r.n) });
  }
  return out;
}

const BATCH = 200;

/**
 * Rewrites every sealed value not under the current key with the current key. Each row is swapped
 * only if it still holds the value that was read (a concurrent write of a fresh value wins and is
 * already current), so it is safe while the service runs, and re-running it is a no-op. Afterwards
 * no row needs an old key: it can be dropped from SECRETS_OLD_KEYS.
 */
export async function reencryptAll(db: Queryable, box: SecretBox): Promise<Record<string, number>> {
  const rewritten: Record<string, number> = {};
  for (const c of SEALED_COLUMNS) {
    let n = 0;
    const pk = c.pk.join(', ');
    // Keyset paging: each row is visited once, even one a concurrent writer keeps stale.
    let after: (string | number | null)[] | null = null;
    for (;;) {
      const cursor: string = after ? `AND (${pk}) > (${c.pk.map((_, i) => `$${i + 2}`).join(', ')})` : '';
      type Row = Record<string, string | number | null>;
      const { rows }: { rows: Row[] } = await db.query<Row>(
        `SELECT ${pk}, ${c.value} AS sealed, ${c.keyId} AS key_id FROM ${c.table}
         WHERE ${c.value} IS NOT NULL AND ${c.keyId} IS DISTINCT FROM $1 ${cursor}
         ORDER BY ${pk} LIMIT ${BATCH}`,
        [box.currentKeyId, ...(after ?? [])],
      );
      if (rows.length === 0) break;
      for (const r of rows) {
        const plain = box.open(String(r.sealed), r.key_id === null ? null : String(r.key_id));
        const sealed = box.seal(plain);
        const where = c.pk.map((k, i) => `${k} = $${i + 4}`).join(' AND ');
        const { rowCount } = await db.query(
          `UPDATE ${c.table} SET ${c.value} = $1, ${c.keyId} = $2 WHERE ${c.value} = $3 AND ${where}`,
          [sealed.value, sealed.keyId, r.sealed, ...c.pk.map((k) => r[k])],
        );
        n += rowCount ?? 0;
      }
      const last: Row = rows[rows.length - 1]!;
      after = c.pk.map((k) => last[k] ?? null);
    }
    rewritten[c.table] = n;
  }
  return rewritten;
}
