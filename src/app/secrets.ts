/**
 * Secrets of a workspace or of an org (the org's are defaults a workspace secret of the same key
 * overrides): write-only values, sealed at rest, delivered to agents at their next (re)start.
 */
import { deleteSecret, listSecretKeys, putSecret, type SecretOwner } from '../db/secrets.js';
import type { Queryable } from '../db/queryable.js';
import type { SecretBox } from '../security/secrets.js';
import { missing } from './errors.js';

export type { SecretOwner };

/** The keys and when each was last set; never a value. */
export const listKeys = (db: Queryable, owner: SecretOwner) => listSecretKeys(db, owner);

export function setSecret(
  deps: { db: Queryable; secrets: SecretBox },
  owner: SecretOwner,
  key: string,
  value: string,
): Promise<void> {
  return putSecret(deps.db, deps.secrets, owner, key, value);
}

export async function removeSecret(db: Queryable, owner: SecretOwner, key: string): Promise<void> {
  if (!(await deleteSecret(db, owner, key))) throw missing('secret');
}
