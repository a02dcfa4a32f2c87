/**
 * The activity log on the real stack, the same test for each backend: every proxied call is a row
 * (redacted), lifecycle transitions too; before_ts paging returns every row exactly once; peer_id
 * and chat-history select the traffic with one peer; another org gets 404.
 */
import { describe, expect, test } from 'vitest';
import { mintWorkspaceToken } from '../../src/db/tokens.js';
import { createOrg, waitForStatus } from '../support/stack.js';
import { CONCURRENT_BLOCK, PARITY_BACKENDS, useParityStack, type ParityFixture } from './backends.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

const SECRET = 'sup3r-s3cret-activity-value';

const send = (text: string) => ({
  jsonrpc: '2.0',
  id: text,
  method: 'message/send',
  params: { message: { role: 'user', messageId: text, parts: [{ kind: 'text', text }] } },
});

async function createOnline(t: ParityFixture, name: string, extra: Record<string, unknown> = {}) {
  const created = await t.stack.api.call('POST', '/v1/workspaces', {
    token: t.key,
    body: {
      name,
      backend: t.backend,
      config: { agent: { streamChunks: 5, streamIntervalMs: 300 } },
      ...extra,
    },
  });
  expect(created.status).toBe(202);
  return waitForStatus(t.stack, t.key, created.body.id as string, 'online');
}

interface Item {
  id: string;
  ts: string;
  type: string;
  peerId?: string;
  method?: string;
  summary: string;
  status: number | string;
  durationMs?: number;
}

describe.each(PARITY_BACKENDS)('%s activity log', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  it('120 calls page exactly once with before_ts; peer_id and chat-history; redaction; isolation', async () => {
    const [a, b] = await Promise.all([
      createOnline(t, 'logged', { secrets: { API_KEY: SECRET } }),
      createOnline(t, 'peer'),
    ]);
    const call = (text: string, token = t.key) =>
      t.stack.api.call('POST', `/v1/workspaces/${a.id}/a2a`, { token, body: send(text) });

    // 120 calls, a few at a time.
    const texts = Array.from({ length: 120 }, (_, i) => `call ${i}`);
    for (let i = 0; i < texts.length; i += 8) {
      const answers = await Promise.all(texts.slice(i, i + 8).map((x) => call(x)));
      for (const r of answers) expect(r.status).toBe(200);
    }

    // Paging newest first with before_ts: every call exactly once, strictly older page after page.
    const seen: Item[] = [];
    let before: string | null = null;
    let pages = 0;
    do {
      const q: string = `type=a2a&limit=50${before ? `&before_ts=${encodeURIComponent(before)}` : ''}`;
      const page = await t.stack.api.call('GET', `/v1/workspaces/${a.id}/activity?${q}`, { token: t.key });
      expect(page.status).toBe(200);
      const items = page.body.items as Item[];
      if (before) for (const item of items) expect(item.ts < before).toBe(true);
      seen.push(...items);
      before = page.body.nextBeforeTs;
      if (before) expect(before).toBe(items.at(-1)!.ts);
      pages++;
    } while (before && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(120);
    expect(new Set(seen.map((s) => s.id)).size).toBe(120);
    expect(new Set(seen.map((s) => s.summary))).toEqual(new Set(texts));
    for (let i = 1; i < seen.length; i++) expect(seen[i - 1]!.ts >= seen[i]!.ts).toBe(true);
    for (const item of seen) {
      expect(item).toMatchObject({ type: 'a2a', method: 'message/send', status: 200 });
      expect(item.peerId).toBeUndefined();
      expect(item.durationMs).toBeGreaterThanOrEqual(0);
      expect(item.ts).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
    }

    // Lifecycle transitions are in the same log.
    const lifecycle = await t.stack.api.call('GET', `/v1/workspaces/${a.id}/activity?type=lifecycle`, {
      token: t.key,
    });
    const statuses = (lifecycle.body.items as Item[]).map((i) => i.status);
    expect(statuses).toContain('online');
    // Without a type filter both kinds page together.
    const mixed = await t.stack.api.call('GET', `/v1/workspaces/${a.id}/activity?limit=500`, {
      token: t.key,
    });
    expect(mixed.body.items).toHaveLength(120 + statuses.length);
    expect(mixed.body.nextBeforeTs).toBeNull();

    // A peer's traffic: the peer workspace calls three times with its workspace token.
    const token = await mintWorkspaceToken(t.stack.service.db.pool, b.id, b.generation);
    for (const text of ['peer one', 'peer two', `peer three ${SECRET}`]) {
      expect((await call(text, token)).status).toBe(200);
    }
    const byPeer = await t.stack.api.call('GET', `/v1/workspaces/${a.id}/activity?peer_id=${b.id}`, {
      token: t.key,
    });
    expect(byPeer.status).toBe(200);
    expect((byPeer.body.items as Item[]).map((i) => [i.peerId, i.summary])).toEqual([
      [b.id, 'peer three [REDACTED]'],
      [b.id, 'peer two'],
      [b.id, 'peer one'],
    ]);
    const noPeer = await t.stack.api.call('GET', `/v1/workspaces/${a.id}/activity?peer_id=${a.id}`, {
      token: t.key,
    });
    expect(noPeer.body.items).toEqual([]);

    // Chat history with that peer: the turns, newest first, on both sides.
    const chat = await t.stack.api.call('GET', `/v1/workspaces/${a.id}/chat-history?peer_id=${b.id}`, {
      token: t.key,
    });
    expect(chat.status).toBe(200);
    expect(chat.body.items.map((x: { request: string }) => x.request)).toEqual([
      'peer three [REDACTED]',
      'peer two',
      'peer one',
    ]);
    expect(chat.body.items[1]).toMatchObject({
      peerId: b.id,
      direction: 'inbound',
      method: 'message/send',
      status: 200,
      response: `workspace logged (${a.id}) on runtime ${a.runtime} received: peer two`,
    });
    expect(JSON.stringify(chat.body)).not.toContain(SECRET);
    const otherSide = await t.stack.api.call('GET', `/v1/workspaces/${b.id}/chat-history?peer_id=${a.id}`, {
      token: t.key,
    });
    expect(otherSide.body.items.map((x: { direction: string; request: string }) => x.direction)).toEqual([
      'outbound',
      'outbound',
      'outbound',
    ]);

    // Bad queries name the field; another org gets 404 everywhere.
    const badTs = await t.stack.api.call('GET', `/v1/workspaces/${a.id}/activity?before_ts=yesterday`, {
      token: t.key,
    });
    expect(badTs.status).toBe(400);
    const badLimit = await t.stack.api.call('GET', `/v1/workspaces/${a.id}/activity?limit=501`, {
      token: t.key,
    });
    expect(badLimit.status).toBe(400);
    const other = await createOrg(t.stack, 'other');
    for (const path of [`/activity`, `/chat-history?peer_id=${b.id}`]) {
      const r = await t.stack.api.call('GET', `/v1/workspaces/${a.id}${path}`, { token: other.apiKey });
      expect(r.status, path).toBe(404);
    }
  });
});
