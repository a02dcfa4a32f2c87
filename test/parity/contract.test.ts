/**
 * The backend contract's zero value: a backend built without its client answers a typed
 * `not_configured` error from every method, on both backends (the seed's contract tests were
 * skipped because both of its backends panicked here).
 */
import { describe, expect, it } from 'vitest';
import { BackendError, type BackendKind, type WorkspaceBackend } from '../../src/backends/backend.js';
import { DockerBackend } from '../../src/backends/docker/docker-backend.js';
import { Ec2Backend } from '../../src/backends/ec2/ec2-backend.js';
import { MemorySshKeyStore } from '../../src/backends/ssh-keys.js';
import { UnconfiguredBackend } from '../../src/backends/unconfigured.js';
import { PARITY_BACKENDS } from './backends.js';

const ZERO: Record<BackendKind, () => WorkspaceBackend> = {
  docker: () => new DockerBackend({ image: 'wo-runtime:unused' }),
  ec2: () =>
    new Ec2Backend({ keys: new MemorySshKeyStore(), imageId: 'ami-unused', instanceType: 't3.small' }),
};

const spec = {
  workspaceId: '0123456789abcdef',
  orgId: 'fedcba9876543210',
  generation: 1,
  runtime: 'claude-code',
  platformUrl: 'http://127.0.0.1:1',
  mintBootstrapToken: () => Promise.reject(new Error('must not mint without a client')),
};

const CALLS: Array<[string, (b: WorkspaceBackend) => Promise<unknown>]> = [
  ['start', (b) => b.start(spec)],
  ['stop', (b) => b.stop(spec.workspaceId, 1)],
  ['remove', (b) => b.remove(spec.workspaceId, { volumes: true })],
  ['status', (b) => b.status(spec.workspaceId, 1)],
  ['describe', (b) => b.describe(spec.workspaceId, 1)],
  ['listManaged', (b) => b.listManaged()],
  ['listManagedVolumes', (b) => b.listManagedVolumes()],
  ['listManagedNetworks', (b) => b.listManagedNetworks()],
  ['removeUnusedOrgNetwork', (b) => b.removeUnusedOrgNetwork(spec.orgId)],
  ['removeOrg', (b) => b.removeOrg(spec.orgId)],
  ['bootLog', (b) => b.bootLog(spec.workspaceId, 1)],
  ['openFile', (b) => b.openFile(spec.workspaceId, 1, '/configs', 'config.yaml')],
  ['readFile', (b) => b.readFile(spec.workspaceId, 1, '/configs', 'config.yaml')],
  ['listFiles', (b) => b.listFiles(spec.workspaceId, 1, '/workspace', '', 1)],
  ['writeFile', (b) => b.writeFile(spec.workspaceId, 1, '/workspace', 'a.txt', Buffer.from('a'))],
  ['deleteFile', (b) => b.deleteFile(spec.workspaceId, 1, '/workspace', 'a.txt')],
  [
    'writeFiles',
    (b) => b.writeFiles(spec.workspaceId, 1, '/workspace', [{ path: 'a.txt', content: Buffer.from('a') }]),
  ],
  ['deleteFiles', (b) => b.deleteFiles(spec.workspaceId, 1, '/workspace', ['a.txt'])],
  ['removeTree', (b) => b.removeTree(spec.workspaceId, 1, '/configs', 'plugins/p')],
  ['openTerminal', (b) => b.openTerminal(spec.workspaceId, 1, { cols: 80, rows: 24 })],
  [
    'killTerminalSession',
    (b) => b.killTerminalSession(spec.workspaceId, 1, '00000000-0000-4000-8000-000000000000'),
  ],
  ['ping', (b) => b.ping()],
];

describe.each(PARITY_BACKENDS)('%s: zero-value backend', (backend) => {
  it.each(CALLS)('%s answers a typed not_configured error', async (_name, call) => {
    for (const zero of [ZERO[backend](), new UnconfiguredBackend(backend)]) {
      const err = await call(zero).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BackendError);
      expect((err as BackendError).code).toBe('not_configured');
      expect((err as BackendError).message).toContain(backend);
    }
  });
});
