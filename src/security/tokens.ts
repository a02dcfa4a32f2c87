import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Bearer tokens carry a prefix naming their kind, so a leaked one is recognisable in logs. */
export type TokenKind = 'org' | 'ws' | 'boot';

export function mintToken(kind: TokenKind): string {
  return `wo_${kind}_${randomBytes(24).toString('base64url')}`;
}

/** Only this digest is stored; tokens have 192 bits of entropy, so no slow hash is needed. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

export function newId(): string {
  // Lower-case hex keeps ids valid in Docker names, EC2 tags and Temporal workflow ids alike.
  return randomBytes(8).toString('hex');
}
