import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashConfig, renderConfigYaml } from '../../src/domain/config-hash.js';
import { redact } from '../../src/security/redact.js';
import { SecretBox, secretKeyId, UnknownSecretKeyError } from '../../src/security/secrets.js';
import { hashToken, mintToken } from '../../src/security/tokens.js';

describe('secrets at rest', () => {
  const key = () => randomBytes(32).toString('base64');
  const box = new SecretBox(key());

  it('round-trips under the current key id and never stores the plaintext', () => {
    const sealed = box.seal('sk-live-123');
    expect(sealed.value).not.toContain('sk-live-123');
    expect(sealed.keyId).toBe(box.currentKeyId);
    expect(box.open(sealed.value, sealed.keyId)).toBe('sk-live-123');
    expect(box.seal('same').value).not.toBe(box.seal('same').value);
  });

  it('key ids are fingerprints: stable per key, different across keys, not the key', () => {
    const k = key();
    expect(secretKeyId(k)).toBe(new SecretBox(k).currentKeyId);
    expect(secretKeyId(k)).not.toBe(secretKeyId(key()));
    expect(Buffer.from(k, 'base64').toString('hex')).not.toContain(secretKeyId(k));
  });

  it('rotation: the new key seals, old keys still open, dropping a key makes its rows unknown', () => {
    const oldKey = key();
    const newKey = key();
    const before = new SecretBox(oldKey).seal('rotate-me');
    const rotated = new SecretBox(newKey, [oldKey]);
    expect(rotated.currentKeyId).toBe(secretKeyId(newKey));
    expect(rotated.keyIds).toEqual([secretKeyId(newKey), secretKeyId(oldKey)]);
    expect(rotated.open(before.value, before.keyId)).toBe('rotate-me');
    const after = rotated.seal('rotate-me');
    expect(after.keyId).toBe(secretKeyId(newKey));
    // Re-encrypted under the new key, the old one is no longer needed.
    expect(new SecretBox(newKey).open(after.value, after.keyId)).toBe('rotate-me');
    expect(() => new SecretBox(newKey).open(before.value, before.keyId)).toThrow(UnknownSecretKeyError);
  });

  it('a row without a key id (sealed before ids existed) opens with whichever configured key sealed it', () => {
    const legacyKey = key();
    const legacy = new SecretBox(legacyKey).seal('from-before').value;
    expect(new SecretBox(key(), [legacyKey]).open(legacy, null)).toBe('from-before');
    expect(() => new SecretBox(key()).open(legacy, null)).toThrow();
  });

  it('refuses a wrong key id, tampered ciphertext, tag or iv, and short or bad keys', () => {
    const sealed = box.seal('value');
    expect(() => box.open(sealed.value, 'feedfacefeedface')).toThrow(/feedfacefeedface/);
    // The right bytes under another configured key's id: GCM refuses, no garbage comes out.
    const other = new SecretBox(key(), [key()]);
    expect(() => other.open(other.seal('x').value, other.keyIds[1]!)).toThrow();
    for (const at of [0, 12, 28, -1]) {
      const raw = Buffer.from(sealed.value, 'base64');
      const i = at < 0 ? raw.length + at : at;
      raw[i]! ^= 1;
      expect(() => box.open(raw.toString('base64'), sealed.keyId)).toThrow();
    }
    expect(() => box.open(Buffer.alloc(20).toString('base64'), sealed.keyId)).toThrow(/too short/);
    expect(() => new SecretBox(randomBytes(16).toString('base64'))).toThrow(/32 bytes/);
    expect(() => new SecretBox(key(), [randomBytes(31).toString('base64')])).toThrow(/32 bytes/);
  });
});

describe('redaction', () => {
  it('removes platform tokens and secret values, longest first', () => {
    const token = mintToken('ws');
    const text = `auth ${token} key=abcd1234 and abcd1234-extended`;
    const out = redact(text, ['abcd1234', 'abcd1234-extended']);
    expect(out).toBe('auth [REDACTED] key=[REDACTED] and [REDACTED]');
  });

  it('ignores values too short to redact meaningfully', () => {
    expect(redact('a b c', ['a'])).toBe('a b c');
  });
});

describe('config hash', () => {
  it('depends on content, not key order', () => {
    expect(hashConfig('r', { a: 1, b: { c: 2, d: 3 } })).toBe(hashConfig('r', { b: { d: 3, c: 2 }, a: 1 }));
    expect(hashConfig('r', { a: 1 })).not.toBe(hashConfig('r2', { a: 1 }));
    expect(hashConfig('r', { a: [1, 2] })).not.toBe(hashConfig('r', { a: [2, 1] }));
  });

  it('renders config.yaml with the workspace runtime winning', () => {
    expect(renderConfigYaml('langgraph', { runtime: 'spoofed', model: 'x' })).toBe(
      'runtime: langgraph\nmodel: x\n',
    );
  });

  it('hashes tokens deterministically', () => {
    expect(hashToken('abc')).toBe(hashToken('abc'));
    expect(mintToken('org')).toMatch(/^wo_org_[A-Za-z0-9_-]{32}$/);
  });
});
