/**
 * Secrets of a workspace or of an org (the org's are defaults a workspace secret of the same key
 * overrides): write-only values, sealed at rest, delivered to agents at their next (re)start.
 */
import type { Logger } from 'pino';
import {
  deleteSecret,
  listSecretKeys,
  pruneRetiredSecrets,
  putSecretWithin,
  type SecretOwner,
} from '../db/secrets.js';
import type { Queryable, Transactable } from '../db/queryable.js';
import { SECRETS_MAX_KEYS } from '../domain/quotas.js';
import type { SecretBox } from '../security/secrets.js';
import { beingDeleted, missing, quotaExceeded } from './errors.js';

export type { SecretOwner };

/** The keys and when each was last set; never a value. */
export const listKeys = (db: Queryable, owner: SecretOwner) => listSecretKeys(db, owner);

interface SecretDeps {
  db: Transactable;
  secrets: SecretBox;
  settings?: { secretsMaxKeys?: number };
  log?: Logger;
}

/**
 * After a write, the retired values no agent may hold go (a value rewritten again and again while a
 * workspace runs never reached its agent). Best effort: one kept longer is only redacted longer.
 */
async function pruneAfterWrite(deps: SecretDeps, owner: SecretOwner): Promise<void> {
  await pruneRetiredSecrets(deps.db, owner).catch((err: unknown) => {
    deps.log?.warn({ err, ...owner }, 'retired secrets not pruned');
  });
}

/** Stores (or replaces) one secret; a new key past the owner's SECRETS_MAX_KEYS → quota_exceeded. */
export async function setSecret(
  deps: SecretDeps,
  owner: SecretOwner,
  key: string,
  value: string,
): Promise<void> {
  const max = deps.settings?.secretsMaxKeys ?? SECRETS_MAX_KEYS;
  const verdict = await putSecretWithin(deps.db, deps.secrets, owner, key, value, max);
  if (verdict === 'deleting') throw beingDeleted();
  if (verdict === 'over_quota') {
    throw quotaExceeded(
      `${'orgId' in owner ? 'the org' : 'the workspace'} holds ${max} secrets, its quota; delete one first`,
    );
  }
  await pruneAfterWrite(deps, owner);
}

export async function removeSecret(deps: SecretDeps, owner: SecretOwner, key: string): Promise<void> {
  if (!(await deleteSecret(deps.db, owner, key))) throw missing('secret');
  await pruneAfterWrite(deps, owner);
}
