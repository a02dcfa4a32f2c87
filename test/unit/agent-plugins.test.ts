/**
 * The reference agent's plugin folder: rebuilt from the bundle at boot (a plugin no longer in the
 * bundle is gone, unsafe paths refuse their plugin), and scanned for each heartbeat's report.
 */
import { mkdirSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { INSTALL_ID_FILE, materializePlugins, scanPlugins } from '../../src/agent/plugins.js';
import { tempDir } from '../support/temp-dirs.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('agent plugins', () => {
  test('materialize rebuilds the folder from the bundle; scan reports names and install ids', async () => {
    const configs = tempDir('configs-');
    mkdirSync(join(configs, 'plugins/stale'), { recursive: true });
    writeFileSync(join(configs, 'plugins/stale/plugin.yaml'), 'old');

    const result = await materializePlugins(configs, [
      { name: 'good', installId: 'r1', files: [{ path: 'a/b.txt', contentBase64: b64('hi') }] },
      { name: 'evil', installId: 'r2', files: [{ path: '../../escape', contentBase64: b64('x') }] },
      { name: 'Bad Name', installId: 'r3', files: [] },
    ]);
    expect(result).toEqual({ installed: ['good'], refused: ['evil', 'Bad Name'] });
    expect(readFileSync(join(configs, 'plugins/good/a/b.txt'), 'utf8')).toBe('hi');
    expect(readFileSync(join(configs, `plugins/good/${INSTALL_ID_FILE}`), 'utf8')).toBe('r1');
    expect(existsSync(join(configs, 'plugins/stale'))).toBe(false);
    expect(existsSync(join(configs, '..', 'escape'))).toBe(false);

    // A folder delivered live without its install id yet: reported by name only.
    mkdirSync(join(configs, 'plugins/half'));
    expect(await scanPlugins(configs)).toEqual([{ name: 'good', installId: 'r1' }, { name: 'half' }]);
  });

  test('no plugins folder: an empty report', async () => {
    expect(await scanPlugins(tempDir('configs-'))).toEqual([]);
  });
});
