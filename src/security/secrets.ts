import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';

/** A value sealed at rest: base64(iv[12] || tag[16] || ciphertext) and the id of the key used. */
export interface Sealed {
  keyId: string;
  value: string;
}

/** A row names a key this process was not given (SECRETS_KEY / SECRETS_OLD_KEYS). */
export class UnknownSecretKeyError extends Error {
  constructor(readonly keyId: string) {
    super(`sealed with key id ${keyId}, which is neither SECRETS_KEY nor in SECRETS_OLD_KEYS`);
    this.name = 'UnknownSecretKeyError';
  }
}

function keyBytes(keyBase64: string): Buffer {
  const key = Buffer.from(keyBase64, 'base64');
  if (key.length !== 32) throw new Error('secrets key must be 32 bytes');
  return key;
}

/**
 * A key's id: a fingerprint (not the key: SHA-256 of a 256-bit key under a fixed label), so
 * operators rotate by moving base64 keys between settings, with no ids to invent or keep in sync.
 */
export function secretKeyId(keyBase64: string): string {
  return createHash('sha256')
    .update('wo:secrets-key-id:')
    .update(keyBytes(keyBase64))
    .digest('hex')
    .slice(0, 16);
}

/**
 * AES-256-GCM at rest over a key ring: the current key seals, every configured key opens what it
 * sealed (rows store the key id), so SECRETS_KEY can be rotated and old rows re-encrypted later.
 */
export class SecretBox {
  readonly currentKeyId: string;
  private readonly keys = new Map<string, Buffer>();

  constructor(currentBase64: string, oldBase64: readonly string[] = []) {
    this.currentKeyId = secretKeyId(currentBase64);
    this.keys.set(this.currentKeyId, keyBytes(currentBase64));
    for (const old of oldBase64) {
      const id = secretKeyId(old);
      if (!this.keys.has(id)) this.keys.set(id, keyBytes(old));
    }
  }

  /** Ids of every key this box can open with, the current one first. */
  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  /** A separate key for `purpose` (HKDF-SHA256), so the secrets key itself is used for one thing. */
  deriveKey(purpose: string): Buffer {
    const key = this.keys.get(this.currentKeyId)!;
    return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `wo:${purpose}`, 32));
  }

  seal(plain: string): Sealed {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.currentKeyId)!, iv);
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return {
      keyId: this.currentKeyId,
      value: Buffer.concat([iv, cipher.getAuthTag(), data]).toString('base64'),
    };
  }

  /**
   * Opens a value sealed under `keyId`. A null id is a row from before key ids existed: it was
   * sealed with the then SECRETS_KEY, so every configured key is tried (GCM's tag tells which).
   * Throws on an unknown key id or a tampered value; never returns garbage.
   */
  open(value: string, keyId: string | null): string {
    if (keyId !== null) {
      const key = this.keys.get(keyId);
      if (!key) throw new UnknownSecretKeyError(keyId);
      return openWith(key, value);
    }
    let last: unknown;
    for (const key of this.keys.values()) {
      try {
        return openWith(key, value);
      } catch (err) {
        last = err;
      }
    }
    throw last instanceof Error ? last : new Error('cannot open sealed value');
  }
}

function openWith(key: Buffer, sealed: string): string {
  const raw = Buffer.from(sealed, 'base64');
  if (raw.length < 28) throw new Error('sealed value too short');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
}
