/**
 * A dockerd that accepts connections and then never answers (hung, or wedged on a lock): the files
 * and terminal calls fail `transient` once the backend's call deadline passes, instead of holding
 * the request, the terminal's opening and a shutdown for ever. The daemon is a socket that reads
 * requests and answers nothing.
 */
import net, { type AddressInfo, type Socket } from 'node:net';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerBackend } from '../../src/backends/docker/docker-backend.js';

describe('docker calls against a daemon that never answers', () => {
  let server: net.Server;
  const sockets = new Set<Socket>();
  let backend: DockerBackend;

  beforeAll(async () => {
    server = net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.resume();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    backend = new DockerBackend({
      docker: new Dockerode({ host: '127.0.0.1', port, protocol: 'http' }),
      image: 'unused',
      callTimeoutMs: 300,
    });
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it.each([
    ['listFiles', () => backend.listFiles('0123456789abcdef', 1, '/workspace', '', 1, 10)],
    ['readFile', () => backend.readFile('0123456789abcdef', 1, '/workspace', 'a.txt', 100)],
    ['writeFile', () => backend.writeFile('0123456789abcdef', 1, '/workspace', 'a.txt', Buffer.from('x'))],
    ['openTerminal', () => backend.openTerminal('0123456789abcdef', 1, { cols: 80, rows: 24 })],
  ])('%s fails transient, naming the silence', async (_name, call) => {
    await expect(call()).rejects.toMatchObject({
      code: 'transient',
      message: expect.stringContaining('no answer from dockerd'),
    });
  });
});
