/**
 * The boot log's pure parts: per-phase durations (the time until the same generation's next
 * event) and the console as served or kept (redacted first, then capped; a secret the cap cut in
 * two never shows its end).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { phaseDurations } from '../../src/api/boot-phases.js';
import { leadingSecretFragment, REDACTED, redactedTail } from '../../src/security/redacted-tail.js';

const at = (generation: number, iso: string) => ({ generation, ts: new Date(iso) });

describe('phaseDurations', () => {
  it("is the time until the next event of the same generation; null for each generation's last", () => {
    const events = [
      at(1, '2026-01-01T00:00:00.000Z'),
      at(1, '2026-01-01T00:00:01.500Z'),
      at(2, '2026-01-01T00:00:10.000Z'),
      at(1, '2026-01-01T00:00:11.000Z'),
      at(2, '2026-01-01T00:00:10.250Z'),
      at(2, '2026-01-01T00:00:12.000Z'),
    ];
    expect(phaseDurations(events)).toEqual([1500, 9500, 250, null, 1750, null]);
  });

  it('never answers a negative duration (an event re-sent late)', () => {
    expect(phaseDurations([at(3, '2026-01-01T00:00:05Z'), at(3, '2026-01-01T00:00:04Z')])).toEqual([0, null]);
    expect(phaseDurations([])).toEqual([]);
  });

  it('property: per generation, durations add up to the span from first to last event', () => {
    const event = fc.record({
      generation: fc.integer({ min: 1, max: 3 }),
      ms: fc.integer({ min: 0, max: 1e6 }),
    });
    fc.assert(
      fc.property(fc.array(event, { maxLength: 40 }), (raw) => {
        // Each generation's events in time order, generations interleaved as they come.
        const sorted = [...raw].sort((a, b) => a.ms - b.ms);
        const events = sorted.map((e) => ({ generation: e.generation, ts: new Date(e.ms) }));
        const durations = phaseDurations(events);
        for (const g of new Set(events.map((e) => e.generation))) {
          const idx = events.map((e, i) => (e.generation === g ? i : -1)).filter((i) => i >= 0);
          const last = idx[idx.length - 1]!;
          expect(durations[last]).toBeNull();
          const sum = idx.slice(0, -1).reduce((s, i) => s + durations[i]!, 0);
          expect(sum).toBe(events[last]!.ts.getTime() - events[idx[0]!]!.ts.getTime());
        }
      }),
    );
  });
});

describe('redactedTail', () => {
  const secret = 'hunter2-very-secret-value';

  it('redacts, keeps a short console whole, and says it was not truncated', () => {
    expect(redactedTail(`token is ${secret}\n`, [secret], 1024)).toEqual({
      text: `token is ${REDACTED}\n`,
      truncated: false,
    });
  });

  it('caps after redacting: never over the cap, the newest output kept, truncated said', () => {
    const raw = `${'old line\n'.repeat(1000)}short ${'abcd '.repeat(50)}\nthe last line\n`;
    // A 4-character secret becomes a 10-character marker: capping first would overshoot the cap.
    const out = redactedTail(raw, ['abcd'], 200);
    expect(Buffer.byteLength(out.text)).toBeLessThanOrEqual(200);
    expect(out.text.endsWith('the last line\n')).toBe(true);
    expect(out.text).not.toContain('abcd');
    expect(out.truncated).toBe(true);
  });

  it('a text already cut before is truncated even when it fits', () => {
    expect(redactedTail('tail\n', [], 100, true)).toEqual({ text: 'tail\n', truncated: true });
  });

  it('the end of a secret that a cap cut off at the start is redacted too', () => {
    const cut = `${secret.slice(7)} and more\n`; // what a backend's tail of the console may begin with
    const out = redactedTail(cut, [secret], 1024);
    expect(out.text).toBe(`${REDACTED} and more\n`);
    expect(out.text).not.toContain('very-secret');
  });

  it('leadingSecretFragment: the longest proper end of any secret of 4+ characters, else 0', () => {
    expect(leadingSecretFragment('value and more', [secret])).toBe('value'.length);
    expect(leadingSecretFragment('secret-value!', ['xx-secret-value', secret])).toBe('secret-value'.length);
    expect(leadingSecretFragment('lue and more', [secret])).toBe(0); // 3 characters: too short to tell
    expect(leadingSecretFragment(`${secret} whole`, [secret])).toBe(0); // whole: redact() replaces it
    expect(leadingSecretFragment('abc', [secret])).toBe(0);
    expect(leadingSecretFragment('aaaaab', ['aaaaaaaab'])).toBe(6);
  });

  it('property: no 4+ character end of a secret survives at the start, whatever the cut', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 5, maxLength: 40 }).filter((s) => !s.includes('[')),
        fc.string({ maxLength: 40 }),
        fc.nat(),
        (s, before, cutAt) => {
          const full = `${before}${s} after`;
          const raw = full.slice(cutAt % full.length);
          const text = redactedTail(raw, [s], 10_000).text;
          for (let j = 4; j < s.length; j++) expect(text.startsWith(s.slice(-j))).toBe(false);
          expect(text).not.toContain(s);
        },
      ),
    );
  });
});
