/**
 * The A2A proxy's hot-path caches: TtlCache itself (fake clock), and the invalidations that keep
 * them honest in this process: a deleted org's key is refused at once, a written or deleted secret is
 * redacted (or no longer needed) on the next call, a newly issued credential is the one presented.
 * The database is a fake that answers the few queries involved and counts them.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { issueAgentCredential, presentedAgentCredential } from '../../src/db/agent-credentials.js';
import { createOrg, markOrgDeleted, orgIdForApiKey } from '../../src/db/orgs.js';
import type { Queryable } from '../../src/db/queryable.js';
import { cachedRedactorFor, deleteSecret, putSecret } from '../../src/db/secrets.js';
import { TtlCache } from '../../src/db/ttl-cache.js';
import { SecretBox } from '../../src/security/secrets.js';

describe('TtlCache', () => {
  const make = (keep?: (v: string | null) => boolean) => {
    let now = 1_000;
    const cache = new TtlCache<string, string | null>({ ttlMs: 100, maxEntries: 2, keep, now: () => now });
    let loads = 0;
    const load = (v: string | null) => async () => {
      loads++;
      return v;
    };
    return {
      cache,
      load,
      loads: () => loads,
      advance: (ms: number) => (now += ms),
    };
  };

  it('answers from memory within the TTL and asks again after it', async () => {
    const t = make();
    expect(await t.cache.get('a', t.load('1'))).toBe('1');
    t.advance(99);
    expect(await t.cache.get('a', t.load('2'))).toBe('1');
    expect(t.loads()).toBe(1);
    t.advance(1);
    expect(await t.cache.get('a', t.load('2'))).toBe('2');
    expect(t.loads()).toBe(2);
  });

  it('keeps only what `keep` accepts', async () => {
    const t = make((v) => v !== null);
    expect(await t.cache.get('a', t.load(null))).toBeNull();
    expect(await t.cache.get('a', t.load('x'))).toBe('x');
    expect(await t.cache.get('a', t.load('y'))).toBe('x');
    expect(t.loads()).toBe(2);
  });

  it('delete and clear make the next get load again', async () => {
    const t = make();
    await t.cache.get('a', t.load('1'));
    t.cache.delete('a');
    expect(await t.cache.get('a', t.load('2'))).toBe('2');
    t.cache.clear();
    expect(t.cache.size).toBe(0);
    expect(await t.cache.get('a', t.load('3'))).toBe('3');
    expect(t.loads()).toBe(3);
  });

  it('does not keep a load that was in flight across an invalidation', async () => {
    const t = make();
    let release!: (v: string) => void;
    const slow = t.cache.get('a', () => new Promise<string>((resolve) => (release = resolve)));
    t.cache.clear();
    release('old');
    expect(await slow).toBe('old');
    expect(t.cache.size).toBe(0);
    expect(await t.cache.get('a', t.load('new'))).toBe('new');
  });

  it('drops the oldest entry past maxEntries', async () => {
    const t = make();
    await t.cache.get('a', t.load('1'));
    await t.cache.get('b', t.load('2'));
    await t.cache.get('c', t.load('3'));
    expect(t.cache.size).toBe(2);
    expect(await t.cache.get('a', t.load('1b'))).toBe('1b');
    expect(await t.cache.get('c', t.load('never'))).toBe('3');
  });
});

/** A fake database: api keys, org deletion, secrets and agent credentials, with a query log. */
function fakeDb(box: SecretBox) {
  const keys = new Map<string, string>(); // key_hash → org_id
  const deletedOrgs = new Set<string>();
  const secrets = new Map<string, { value_enc: string; key_id: string }>(); // `${ws}/${key}`
  const credentials = new Map<string, { credential_enc: string; key_id: string }>();
  const log: string[] = [];
  const db: Queryable = {
    // Why `any`: pg's query() is heavily overloaded; this fake answers by SQL text.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    query: (async (sql: string, params: any[] = []) => {
      // Retired values are not modelled here (test/integration/secrets-retired.test.ts): the
      // statement that retires one is read as the write it comes with, and none is ever found.
      const q = sql
        .replace(/\s+/g, ' ')
        .trim()
        .replace(
          /^WITH retired AS \( INSERT INTO retired_secrets .*? AND key = \$2 \) (INSERT|DELETE)/,
          '$1',
        );
      if (q.startsWith('SELECT r.value_enc')) return { rows: [], rowCount: 0 };
      log.push(q.split(' ').slice(0, 4).join(' '));
      if (q.startsWith('WITH o AS')) {
        keys.set(params[3] as string, params[0] as string);
        return { rows: [{ id: params[0], name: params[1], created_at: new Date() }], rowCount: 1 };
      }
      if (q.startsWith('SELECT k.org_id')) {
        const org = keys.get(params[0] as string);
        return { rows: org && !deletedOrgs.has(org) ? [{ org_id: org }] : [], rowCount: 0 };
      }
      if (q.startsWith('SELECT deleted_at IS NOT NULL')) return { rows: [{ deleted: false }], rowCount: 1 };
      if (q.startsWith('UPDATE orgs SET deleted_at')) {
        deletedOrgs.add(params[0] as string);
        return { rows: [], rowCount: 1 };
      }
      if (q.startsWith('DELETE FROM api_keys')) {
        for (const [h, o] of keys) if (o === params[0]) keys.delete(h);
        return { rows: [], rowCount: 1 };
      }
      if (q.startsWith('INSERT INTO secrets')) {
        secrets.set(`${params[0]}/${params[1]}`, { value_enc: params[2], key_id: params[3] });
        return { rows: [], rowCount: 1 };
      }
      if (q.startsWith('DELETE FROM secrets')) {
        const had = secrets.delete(`${params[0]}/${params[1]}`);
        return { rows: [], rowCount: had ? 1 : 0 };
      }
      if (q.startsWith('SELECT s.key, s.value_enc')) {
        const rows = [...secrets]
          .filter(([k]) => k.startsWith(`${params[0]}/`))
          .map(([k, v]) => ({ key: k.split('/')[1], ...v, own: 1 }));
        return { rows, rowCount: rows.length };
      }
      if (q.startsWith('INSERT INTO agent_credentials')) {
        const k = `${params[0]}:${params[1]}`;
        if (!credentials.has(k)) credentials.set(k, { credential_enc: params[2], key_id: params[3] });
        return { rows: [], rowCount: 1 };
      }
      if (q.startsWith('SELECT credential_enc')) {
        const c = credentials.get(`${params[0]}:${params[1]}`);
        return { rows: c ? [c] : [], rowCount: c ? 1 : 0 };
      }
      throw new Error(`fake db: unexpected query ${q}`);
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
    }) as any,
  };
  return { db, log, box };
}

const newBox = () => new SecretBox(randomBytes(32).toString('base64'));
const wsId = () => randomBytes(8).toString('hex');

describe('hot-path invalidation', () => {
  it('an org key is looked up once, and refused at once after the org is deleted', async () => {
    const f = fakeDb(newBox());
    const { org, apiKey } = await createOrg(f.db, 'acme');
    expect(await orgIdForApiKey(f.db, apiKey)).toBe(org.id);
    expect(await orgIdForApiKey(f.db, apiKey)).toBe(org.id);
    expect(f.log.filter((q) => q.startsWith('SELECT k.org_id')).length).toBe(1);
    expect(await markOrgDeleted(f.db, org.id)).toBe('deleted');
    expect(await orgIdForApiKey(f.db, apiKey)).toBeNull();
  });

  it('an unknown key is not remembered: a key that appears next works at once', async () => {
    const f = fakeDb(newBox());
    const { apiKey } = await createOrg(f.db, 'later');
    const other = `wo_org_${randomBytes(24).toString('base64url')}`;
    expect(await orgIdForApiKey(f.db, other)).toBeNull();
    expect(await orgIdForApiKey(f.db, other)).toBeNull();
    expect(f.log.filter((q) => q.startsWith('SELECT k.org_id')).length).toBe(2);
    expect(await orgIdForApiKey(f.db, apiKey)).not.toBeNull();
  });

  it('a redactor is reused, and a secret written or deleted in this process applies at once', async () => {
    const f = fakeDb(newBox());
    const id = wsId();
    await putSecret(f.db, f.box, { workspaceId: id }, 'A', 'alpha-secret-1');
    const first = await cachedRedactorFor(f.db, f.box, id);
    expect(first('x alpha-secret-1 y')).not.toContain('alpha-secret-1');
    expect(await cachedRedactorFor(f.db, f.box, id)).toBe(first);

    await putSecret(f.db, f.box, { workspaceId: id }, 'B', 'beta-secret-2');
    const second = await cachedRedactorFor(f.db, f.box, id);
    expect(second('beta-secret-2')).not.toContain('beta-secret-2');

    expect(await deleteSecret(f.db, { workspaceId: id }, 'B')).toBe(true);
    const third = await cachedRedactorFor(f.db, f.box, id);
    expect(third.values).toEqual(['alpha-secret-1']);
  });

  it('the presented credential is read once per generation, and an issue replaces a derived one', async () => {
    const f = fakeDb(newBox());
    const id = wsId();
    const derived = await presentedAgentCredential(f.db, f.box, id, 1);
    const issued = await issueAgentCredential(f.db, f.box, id, 1);
    expect(await presentedAgentCredential(f.db, f.box, id, 1)).toBe(issued);
    expect(derived).toBe(issued);
    const reads = f.log.filter((q) => q.startsWith('SELECT credential_enc')).length;
    await presentedAgentCredential(f.db, f.box, id, 1);
    expect(f.log.filter((q) => q.startsWith('SELECT credential_enc')).length).toBe(reads);
    expect(await presentedAgentCredential(f.db, f.box, id, 2)).not.toBe(issued);
  });
});
