/**
 * Plugin upload validation: the archive is refused whole (with the field named) for a bad manifest,
 * a sha256 mismatch, an oversized archive, a gzip bomb, and every entry that could leave the plugin
 * folder (`..`, absolute, symlink, hard link, device); property tests show no generated path that
 * is accepted ever leaves it.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync, symlinkSync } from 'node:fs';
import { posix, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { pluginEntryPath, PluginRejected, validatePluginArchive } from '../../src/plugins/archive.js';
import { loadPluginCatalog, PluginCatalogError } from '../../src/plugins/catalog.js';
import { PLUGIN_MAX_ARCHIVE_BYTES, PLUGIN_MAX_UNPACKED_BYTES } from '../../src/plugins/schema.js';
import { tarGz, type Entry } from '../support/plugin-archives.js';
import { tempDir } from '../support/temp-dirs.js';

const MANIFEST: Entry = { name: 'plugin.yaml', content: 'name: demo\nversion: 1.0.0\n' };

async function refusal(archive: Buffer | string, sha256?: string): Promise<PluginRejected> {
  const b64 = typeof archive === 'string' ? archive : archive.toString('base64');
  const err = await validatePluginArchive(b64, sha256).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PluginRejected);
  return err as PluginRejected;
}

describe('validatePluginArchive', () => {
  test('accepts a plugin: manifest, nested files, folders; normalises ./ paths; sha256 checked', async () => {
    const archive = await tarGz([
      { name: './', type: 'directory' },
      { ...MANIFEST, name: './plugin.yaml' },
      { name: 'tools/', type: 'directory' },
      { name: 'tools/a.json', content: '{"a":1}' },
    ]);
    const sha = createHash('sha256').update(archive).digest('hex');
    const p = await validatePluginArchive(archive.toString('base64'), sha.toUpperCase());
    expect(p).toMatchObject({ name: 'demo', version: '1.0.0', sha256: sha });
    expect(p.files.map((f) => f.path)).toEqual(['plugin.yaml', 'tools/a.json']);
    expect(Buffer.from(p.files[1]!.contentBase64, 'base64').toString()).toBe('{"a":1}');
  });

  test.each([
    ['../evil', 'escapes'],
    ['a/../../evil', 'escapes'],
    ['/etc/passwd', 'escapes'],
    ['a\\..\\b', 'escapes'],
  ])('refuses entry %s', async (name, why) => {
    const err = await refusal(await tarGz([MANIFEST, { name, content: 'x' }]));
    expect(err.field).toBe('source.tarGzBase64');
    expect(err.message).toContain(why);
  });

  test.each([
    ['symlink', { name: 'link', type: 'symlink', linkname: '/etc/passwd' }],
    ['link', { name: 'hard', type: 'link', linkname: 'plugin.yaml' }],
    ['character-device', { name: 'tty', type: 'character-device' }],
    ['block-device', { name: 'sda', type: 'block-device' }],
    ['fifo', { name: 'pipe', type: 'fifo' }],
  ] as const)('refuses a %s entry', async (type, entry) => {
    const err = await refusal(await tarGz([MANIFEST, entry as Entry]));
    expect(err.field).toBe('source.tarGzBase64');
    expect(err.message).toContain(`is a ${type}`);
  });

  test('refuses a bad or missing manifest, naming what is wrong', async () => {
    expect((await refusal(await tarGz([{ name: 'x.txt', content: 'x' }]))).message).toContain(
      'no plugin.yaml',
    );
    expect(
      (await refusal(await tarGz([{ name: 'plugin.yaml', content: 'name: Bad Name\nversion: 1\n' }])))
        .message,
    ).toContain('name:');
    expect(
      (await refusal(await tarGz([{ name: 'plugin.yaml', content: 'name: ok\nversion: "1"\nextra: 1\n' }])))
        .message,
    ).toContain('unknown field extra');
    expect((await refusal(await tarGz([{ name: 'plugin.yaml', content: 'name: [\n' }]))).message).toContain(
      'not valid YAML',
    );
  });

  test('refuses a sha256 mismatch on the sha256 field', async () => {
    const err = await refusal(await tarGz([MANIFEST]), 'a'.repeat(64));
    expect(err.field).toBe('sha256');
  });

  test('refuses an archive over the size limit before decoding it', async () => {
    const err = await refusal('A'.repeat(Math.ceil(((PLUGIN_MAX_ARCHIVE_BYTES + 16) * 4) / 3)));
    expect(err.message).toContain(`over ${PLUGIN_MAX_ARCHIVE_BYTES} bytes`);
  });

  test('a gzip bomb stops at the unpack cap', async () => {
    // ~64 MiB of zeros compresses to ~64 KiB: far over the cap once inflated.
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
    expect(bomb.length).toBeLessThan(PLUGIN_MAX_ARCHIVE_BYTES);
    const err = await refusal(bomb);
    expect(err.message).toContain(`more than ${PLUGIN_MAX_UNPACKED_BYTES} bytes`);
  });

  test('refuses what is not gzip, not tar, or not base64', async () => {
    expect((await refusal(Buffer.from('plain text'))).message).toContain('not a gzip archive');
    expect((await refusal(gzipSync(Buffer.from('x'.repeat(1024))))).message).toMatch(/tar|plugin.yaml/);
    expect((await refusal('%%%')).message).toContain('not base64');
  });

  test('refuses a name no delivery could write: over 255 bytes, or an upload temp name', async () => {
    for (const name of [
      'a'.repeat(256),
      `tools/${'é'.repeat(128)}/x`,
      '.wo-upload-x',
      'tools/.wo-upload-1/a',
    ]) {
      const refused = await refusal(await tarGz([MANIFEST, { name, content: '1' }]));
      expect(refused.field).toBe('source.tarGzBase64');
      expect(refused.message).toMatch(/over 255 bytes|reserved name/);
    }
    // 255 bytes is the limit, not over it.
    await validatePluginArchive(
      (await tarGz([MANIFEST, { name: 'a'.repeat(255), content: '1' }])).toString('base64'),
    );
  });

  test('refuses a path that is both a file and a folder, and duplicates', async () => {
    expect(
      (await refusal(await tarGz([MANIFEST, { name: 'a', content: '1' }, { name: 'a/b', content: '2' }])))
        .message,
    ).toContain('both a file and a folder');
    expect(
      (await refusal(await tarGz([MANIFEST, { name: 'a', content: '1' }, { name: './a', content: '2' }])))
        .message,
    ).toContain('twice');
  });
});

describe('pluginEntryPath (property)', () => {
  const segment = fc.oneof(
    fc.constantFrom('..', '.', '', 'a', 'b.txt', '...', '..a', 'a..', '\\', '/', 'C:'),
    fc.string({ maxLength: 6 }),
  );
  test('an accepted path joined under the plugin folder never leaves it', () => {
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 8 }), fc.boolean(), (segs, absolute) => {
        const raw = (absolute ? '/' : '') + segs.join('/');
        const rel = pluginEntryPath(raw);
        if (rel === null) return;
        const root = '/configs/plugins/demo';
        const joined = posix.normalize(posix.join(root, rel));
        expect(joined === root || joined.startsWith(`${root}/`)).toBe(true);
        expect(rel.split('/')).not.toContain('..');
        expect(rel.startsWith('/')).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  test('any archive with an escaping entry is refused whole', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom('a', 'b', '..', '.', ''), { minLength: 1, maxLength: 5 }),
        async (segs) => {
          const name = [...segs, '..', '..', '..', 'x'].join('/');
          const err = await validatePluginArchive(
            (await tarGz([MANIFEST, { name, content: 'x' }])).toString('base64'),
          ).then(
            () => null,
            (e: unknown) => e,
          );
          // Only a path that normalises inside the folder could pass; these climb above it.
          expect(err).toBeInstanceOf(PluginRejected);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('loadPluginCatalog', () => {
  test('reads plugins/<name>/ and refuses a symlink or a name mismatch', () => {
    const dir = tempDir('plugins-');
    mkdirSync(join(dir, 'ok/sub'), { recursive: true });
    writeFileSync(join(dir, 'ok/plugin.yaml'), 'name: ok\nversion: 2.0.0\n');
    writeFileSync(join(dir, 'ok/sub/f.txt'), 'hi');
    const cat = loadPluginCatalog(dir);
    expect(cat.ok).toMatchObject({ name: 'ok', version: '2.0.0' });
    expect(cat.ok!.files.map((f) => f.path)).toEqual(['plugin.yaml', 'sub/f.txt']);

    mkdirSync(join(dir, 'other'));
    writeFileSync(join(dir, 'other/plugin.yaml'), 'name: ok\nversion: 1\n');
    expect(() => loadPluginCatalog(dir)).toThrow(/the folder is "other"/);
    writeFileSync(join(dir, 'other/plugin.yaml'), 'name: other\nversion: "1"\n');
    symlinkSync('/etc/passwd', join(dir, 'other/link'));
    expect(() => loadPluginCatalog(dir)).toThrow(PluginCatalogError);
  });

  test('the repository catalog loads', () => {
    expect(loadPluginCatalog('plugins', { required: true })['hello-tools']).toMatchObject({
      version: '1.0.0',
    });
  });
});
