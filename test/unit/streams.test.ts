/**
 * The bounded-stream helpers behind file reads and boot logs: `exactly` passes the announced size
 * and no other, `tailText`/`TailBuffer` keep only a log's last bytes (whole characters), and
 * `tailLogs` reads Docker's multiplexed log frames split anywhere across chunks.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tailLogs } from '../../src/backends/docker/archive.js';
import { exactly, tailText, TailBuffer } from '../../src/backends/streams.js';

async function collect(chunks: Buffer[], size: number): Promise<Buffer> {
  const out: Buffer[] = [];
  const t = exactly(size, 'f');
  t.on('data', (c: Buffer) => out.push(c));
  await pipeline(Readable.from(chunks), t);
  return Buffer.concat(out);
}

function frame(streamId: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = streamId;
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

describe('bounded streams', () => {
  it('exactly: the announced size passes; more is cut off; fewer fails', async () => {
    expect((await collect([Buffer.from('abc'), Buffer.from('def')], 6)).toString()).toBe('abcdef');
    expect((await collect([Buffer.from('abc'), Buffer.from('def')], 4)).toString()).toBe('abcd');
    await expect(collect([Buffer.from('ab')], 3)).rejects.toMatchObject({ code: 'transient' });
    expect((await collect([], 0)).length).toBe(0);
  });

  it('tailText keeps at most maxBytes, whole characters, from a line start when one is near', () => {
    expect(tailText('short', 100)).toBe('short');
    const text = `${'é'.repeat(300)}\nlast line`;
    const cut = tailText(text, 100);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(100);
    expect(cut).toBe('last line');
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 400 }),
        fc.integer({ min: 1, max: 200 }),
        (s, max) => {
          const t = tailText(s, max);
          expect(Buffer.byteLength(t)).toBeLessThanOrEqual(Math.max(max, 0));
          expect(s.endsWith(t)).toBe(true);
          // No character cut in two (a U+FFFD the input already had is not a cut).
          if (!s.includes('\uFFFD')) expect(t).not.toContain('\uFFFD');
        },
      ),
    );
  });

  it('TailBuffer holds about maxBytes however much is pushed', () => {
    const tail = new TailBuffer(1000);
    for (let i = 0; i < 10_000; i++) tail.push(Buffer.from(`line ${i}\n`));
    const text = tail.text();
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(1000);
    expect(text.endsWith('line 9999\n')).toBe(true);
    expect(tail.truncated).toBe(true);
  });

  it('tailLogs: frames split anywhere across chunks; only the last bytes kept', async () => {
    const lines = Array.from({ length: 2000 }, (_, i) => `out ${i}\n`);
    const raw = Buffer.concat(lines.map((l, i) => frame(i % 3 === 0 ? 2 : 1, Buffer.from(l))));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 20 }),
        async (cuts) => {
          const chunks: Buffer[] = [];
          let off = 0;
          let i = 0;
          while (off < raw.length) {
            const n = cuts[i++ % cuts.length]!;
            chunks.push(raw.subarray(off, off + n));
            off += n;
          }
          const text = await tailLogs(Readable.from(chunks), 512);
          expect(Buffer.byteLength(text)).toBeLessThanOrEqual(512);
          expect(text.endsWith('out 1999\n')).toBe(true);
          expect(lines.join('').endsWith(text)).toBe(true);
        },
      ),
      { numRuns: 50 },
    );
    // A TTY container's log is raw text, kept as is.
    expect(await tailLogs(Readable.from([Buffer.from('plain tty output\n')]), 512)).toBe(
      'plain tty output\n',
    );
  });
});
