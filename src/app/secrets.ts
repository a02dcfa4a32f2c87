/**
 * Secrets of a workspace or of an org (the org's are defaults a workspace secret of the same key
 * overrides): write-only values, sealed at rest, delivered to agents at their next (re)start.
 */
import { deleteSecret, listSecretKeys, putSecretWithin, type SecretOwner } from '../db/secrets.js';
import type { Queryable, Transactable } from '../db/queryable.js';
import type { SecretBox } from '../security/secrets.js';
import { missing, quotaExceeded } from './errors.js';

/** Keys one workspace, or one org's defaults, may hold (SECRETS_MAX_KEYS). */
export const SECRETS_MAX_KEYS = 200;

export type { SecretOwner };

/** The keys and when each was last set; never a value. */
export const listKeys = (db: Queryable, owner: SecretOwner) => listSecretKeys(db, owner);

/** Stores (or replaces) one secret; a new key past the owner's SECRETS_MAX_KEYS → quota_exceeded. */
export async function setSecret(
  deps: { db: Transactable; secrets: SecretBox; settings?: { secretsMaxKeys?: number } },
  owner: SecretOwner,
  key: string,
  value: string,
): Promise<void> {
  const max = deps.settings?.secretsMaxKeys ?? SECRETS_MAX_KEYS;
  if (!(await putSecretWithin(deps.db, deps.secrets, owner, key, value, max))) {
    throw quotaExceeded(
      `${'orgId' in owner ? 'the org' : 'the workspace'} holds ${max} secrets, its quota; delete one first`,
    );
  }
}

export async function removeSecret(db: Queryable, owner: SecretOwner, key: string): Promise<void> {
  if (!(await deleteSecret(db, owner, key))) throw missing('secret');
}
