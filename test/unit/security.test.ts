import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashConfig, renderConfigYaml } from '../../src/domain/config-hash.js';
import { redact } from '../../src/security/redact.js';
import { SecretBox } from '../../src/security/secrets.js';
import { hashToken, mintToken } from '../../src/security/tokens.js';

describe('secrets at rest', () => {
  const box = new SecretBox(randomBytes(32).toString('base64'));

  it('round-trips and never stores the plaintext', () => {
    const sealed = box.seal('sk-live-123');
    expect(sealed).not.toContain('sk-live-123');
    expect(box.open(sealed)).toBe('sk-live-123');
    expect(box.seal('same')).not.toBe(box.seal('same'));
  });

  it('refuses tampered ciphertext and wrong keys', () => {
    const sealed = Buffer.from(box.seal('value'), 'base64');
    sealed[sealed.length - 1]! ^= 1;
    expect(() => box.open(sealed.toString('base64'))).toThrow();
    const other = new SecretBox(randomBytes(32).toString('base64'));
    expect(() => other.open(box.seal('value'))).toThrow();
    expect(() => new SecretBox(randomBytes(16).toString('base64'))).toThrow(/32 bytes/);
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
