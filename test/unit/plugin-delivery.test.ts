/**
 * Plugin delivery's backend calls: the folder is removed by one removeTree of the folder itself
 * (never a listing whose entries are then deleted one by one: a listing leaves out what it cannot
 * see, and a folder that is a link would be walked through), and an install removes before it writes.
 */
import { describe, expect, test } from 'vitest';
import { BackendError, type WorkspaceBackend } from '../../src/backends/backend.js';
import { UnconfiguredBackend } from '../../src/backends/unconfigured.js';
import { INSTALL_ID_FILE, removePluginFolder, writePluginFolder } from '../../src/plugins/delivery.js';

/** Records the calls delivery makes; any other call answers not_configured (UnconfiguredBackend). */
function recordingBackend(removeTree: WorkspaceBackend['removeTree'] = async () => undefined) {
  const calls: unknown[][] = [];
  const backend = Object.assign(new UnconfiguredBackend('docker'), {
    removeTree: async (...args: Parameters<WorkspaceBackend['removeTree']>) => {
      calls.push(['removeTree', ...args]);
      return removeTree(...args);
    },
    writeFiles: async (...args: Parameters<WorkspaceBackend['writeFiles']>) => {
      calls.push(['writeFiles', ...args]);
    },
  }) as WorkspaceBackend;
  return { backend, calls };
}

describe('plugin delivery', () => {
  test('removing a plugin is one removeTree of its folder under /configs', async () => {
    const { backend, calls } = recordingBackend();
    await removePluginFolder(backend, 'ws1', 3, 'demo');
    expect(calls).toEqual([['removeTree', 'ws1', 3, '/configs', 'plugins/demo']]);
  });

  test('a failed removal fails the delivery (retried by the activity), whatever its code', async () => {
    for (const code of ['transient', 'invalid_path', 'permanent'] as const) {
      const { backend } = recordingBackend(async () => {
        throw new BackendError(code, 'rm failed');
      });
      await expect(removePluginFolder(backend, 'ws1', 3, 'demo')).rejects.toMatchObject({ code });
    }
  });

  test('an install removes the old folder first, then writes the files with the install id last', async () => {
    const { backend, calls } = recordingBackend();
    const files = [
      { path: 'plugin.yaml', contentBase64: Buffer.from('name: demo\n').toString('base64') },
      { path: 'lib/a.txt', contentBase64: Buffer.from('alpha').toString('base64') },
    ];
    await writePluginFolder(backend, 'ws1', 3, 'demo', files, 'req-1');
    expect(calls).toEqual([
      ['removeTree', 'ws1', 3, '/configs', 'plugins/demo'],
      [
        'writeFiles',
        'ws1',
        3,
        '/configs',
        [
          { path: 'plugins/demo/plugin.yaml', content: Buffer.from('name: demo\n') },
          { path: 'plugins/demo/lib/a.txt', content: Buffer.from('alpha') },
          { path: `plugins/demo/${INSTALL_ID_FILE}`, content: Buffer.from('req-1') },
        ],
      ],
    ]);
  });
});
