/**
 * The Files API on the real stack, the same test for each backend (docker: exec + archive in the
 * container; ec2: SFTP over the generation's key on the ec2-sim VM): write → list → read back
 * byte-identical (5 MiB binary included) → replace → delete → 404; every refused path answers 400
 * and touches nothing, including through a symlink to /etc planted inside the workspace; 413 over
 * 10 MiB; 409 once stopped; another org's key gets 404. A full disk answers 507 and leaves
 * nothing of the write.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { describe, expect, test } from 'vitest';
import { waitFor } from '../setup/wait-for.js';
import { createOrg, waitForStatus } from '../support/stack.js';
import { hostContainer, run } from './workspace-shell.js';
import { leftovers, CONCURRENT_BLOCK, PARITY_BACKENDS, useParityStack } from './backends.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

const MiB = 1024 * 1024;

interface RawResponse {
  status: number;
  body: Buffer;
  type: string | null;
  json(): { error?: { code: string; field?: string } } & Record<string, unknown>;
}

async function raw(url: string, method: string, token: string, body?: Buffer): Promise<RawResponse> {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    body,
    signal: AbortSignal.timeout(60_000),
  });
  const buf = Buffer.from(await res.arrayBuffer());
  return {
    status: res.status,
    body: buf,
    type: res.headers.get('content-type'),
    json: () => JSON.parse(buf.toString('utf8')),
  };
}

/** A streamed PUT whose body the test sends piece by piece; its answer, whenever the API gives it. */
function streamedUpload(url: string, token: string, size: number) {
  const req = http.request(url, {
    method: 'PUT',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/octet-stream',
      'content-length': String(size),
    },
  });
  const answer = new Promise<{ status: number; body: string; at: number }>((resolve, reject) => {
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), at: Date.now() }),
      );
      res.once('error', reject);
    });
    req.once('error', reject);
  });
  answer.catch(() => undefined); // awaited by the test; a request it abandons is not unhandled
  return {
    answer,
    /** Sends more of the body (true: it went out; false: the API already hung up). */
    send: (bytes: Buffer) =>
      new Promise<boolean>((resolve) => {
        if (req.destroyed) return resolve(false);
        req.write(bytes, (err) => resolve(!err));
      }),
    abort: () => req.destroy(),
  };
}

describe.each(PARITY_BACKENDS)('%s files API', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend);

  /** The id of a new workspace of the block's org (its create accepted). */
  async function createdWorkspace(name: string): Promise<string> {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name, backend },
    });
    expect(created.status).toBe(202);
    return created.body.id as string;
  }

  it('write → list → read (5 MiB binary) → replace → delete → 404; refusals touch nothing; 413; 409; org isolation', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'filer', backend },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    const online = await waitForStatus(t.stack, t.key, id, 'online');
    const base = `${t.stack.url}/v1/workspaces/${id}`;
    const content = (root: string, path: string) =>
      `${base}/files/content?root=${encodeURIComponent(root)}&path=${encodeURIComponent(path)}`;
    const list = (root: string, path: string, depth?: number) =>
      `${base}/files?root=${encodeURIComponent(root)}&path=${encodeURIComponent(path)}` +
      (depth === undefined ? '' : `&depth=${depth}`);
    const listed = async (root: string, path: string, depth?: number) => {
      const res = await raw(list(root, path, depth), 'GET', t.key);
      expect(res.status, res.body.toString()).toBe(200);
      return res.json().items as { path: string; type: string; size: number; mtime: string }[];
    };

    // Write: parents created, binary safe.
    const blob = randomBytes(5 * MiB);
    expect(
      (await raw(content('/workspace', 'notes/deep/a.txt'), 'PUT', t.key, Buffer.from('hello'))).status,
    ).toBe(204);
    expect((await raw(content('/workspace', 'bin/blob.bin'), 'PUT', t.key, blob)).status).toBe(204);
    expect((await raw(content('/configs', 'extra/x.yaml'), 'PUT', t.key, Buffer.from('k: v\n'))).status).toBe(
      204,
    );

    // List with depth.
    const depth1 = await listed('/workspace', '');
    expect(depth1.map((e) => e.path)).toEqual(expect.arrayContaining(['bin', 'notes']));
    expect(depth1.every((e) => !e.path.includes('/'))).toBe(true);
    expect(depth1.find((e) => e.path === 'notes')!.type).toBe('dir');
    const depth2 = await listed('/workspace', '', 2);
    expect(depth2.map((e) => e.path)).toEqual(
      expect.arrayContaining(['bin', 'bin/blob.bin', 'notes', 'notes/deep']),
    );
    expect(depth2.map((e) => e.path)).not.toContain('notes/deep/a.txt');
    const blobEntry = depth2.find((e) => e.path === 'bin/blob.bin')!;
    expect(blobEntry).toMatchObject({ type: 'file', size: 5 * MiB });
    expect(new Date(blobEntry.mtime).toISOString()).toBe(blobEntry.mtime);
    expect(Math.abs(Date.parse(blobEntry.mtime) - Date.now())).toBeLessThan(10 * 60_000);
    expect(await listed('/workspace', 'notes', 2)).toEqual([
      expect.objectContaining({ path: 'notes/deep', type: 'dir' }),
      expect.objectContaining({ path: 'notes/deep/a.txt', type: 'file', size: 5 }),
    ]);
    expect((await listed('/configs', 'extra')).map((e) => e.path)).toEqual(['extra/x.yaml']);

    // A burst at one workspace (a client opening a few folders at once) is served whole. On ec2 each
    // call is an SSH connection of its own, and sshd drops handshakes beyond MaxStartups (10).
    const burst = await Promise.all([
      ...Array.from({ length: 16 }, () => raw(list('/workspace', 'notes'), 'GET', t.key)),
      ...Array.from({ length: 16 }, (_, i) =>
        raw(content('/workspace', `burst/f${i}.txt`), 'PUT', t.key, Buffer.from(`b${i}`)),
      ),
    ]);
    expect(burst.map((r) => r.status)).toEqual([...Array(16).fill(200), ...Array(16).fill(204)]);
    expect((await listed('/workspace', 'burst')).map((e) => e.path).sort()).toEqual(
      Array.from({ length: 16 }, (_, i) => `burst/f${i}.txt`).sort(),
    );

    // Read back byte-identical.
    const readBlob = await raw(content('/workspace', 'bin/blob.bin'), 'GET', t.key);
    expect(readBlob.status).toBe(200);
    expect(readBlob.type).toMatch(/^application\/octet-stream/);
    expect(readBlob.body.length).toBe(blob.length);
    expect(readBlob.body.equals(blob)).toBe(true);
    expect((await raw(content('/workspace', 'notes/deep/a.txt'), 'GET', t.key)).body.toString()).toBe(
      'hello',
    );

    // Replace.
    expect(
      (await raw(content('/workspace', 'notes/deep/a.txt'), 'PUT', t.key, Buffer.from('bye'))).status,
    ).toBe(204);
    expect((await raw(content('/workspace', 'notes/deep/a.txt'), 'GET', t.key)).body.toString()).toBe('bye');
    expect((await listed('/workspace', 'notes/deep')).map((e) => [e.path, e.size])).toEqual([
      ['notes/deep/a.txt', 3],
    ]);

    // Delete → 404.
    expect((await raw(content('/workspace', 'notes/deep/a.txt'), 'DELETE', t.key)).status).toBe(204);
    const gone = await raw(content('/workspace', 'notes/deep/a.txt'), 'GET', t.key);
    expect(gone.status).toBe(404);
    expect(gone.json().error!.code).toBe('not_found');
    expect((await raw(content('/workspace', 'notes/deep/a.txt'), 'DELETE', t.key)).status).toBe(404);
    expect((await raw(list('/workspace', 'nope'), 'GET', t.key)).status).toBe(404);
    // An empty directory can be deleted too.
    expect((await raw(content('/workspace', 'notes/deep'), 'DELETE', t.key)).status).toBe(204);
    expect((await listed('/workspace', 'notes')).map((e) => e.path)).toEqual([]);

    // Refused paths: 400 on every operation, and nothing changes.
    const before = await listed('/workspace', '', 5);
    const badPaths = [
      '../etc/passwd',
      'notes/../../etc/passwd',
      '/etc/passwd',
      'a\0b',
      'x\\y',
      // What no file system takes, or no workspace needs: refused before anything is made.
      'y'.repeat(256),
      `n/${'z'.repeat(300)}/f`,
      `${'g/'.repeat(129)}f`,
      `${'abcdefghij/'.repeat(400)}f`,
    ];
    for (const path of badPaths) {
      for (const [method, url, body] of [
        ['GET', content('/workspace', path), undefined],
        ['PUT', content('/workspace', path), Buffer.from('pwned')],
        ['DELETE', content('/workspace', path), undefined],
        ['GET', list('/workspace', path), undefined],
      ] as const) {
        const res = await raw(url, method, t.key, body);
        expect(res.status, `${method} ${JSON.stringify(path)}`).toBe(400);
        expect(res.json().error!.field).toBe('path');
      }
    }
    // `dir/` names a folder: no file is read or written as `dir`.
    for (const [method, body] of [
      ['PUT', Buffer.from('x')],
      ['GET', undefined],
    ] as const) {
      const res = await raw(content('/workspace', 'slashed/'), method, t.key, body);
      expect(res.status, `${method} slashed/`).toBe(400);
      expect(res.json().error!.field).toBe('path');
    }
    for (const root of ['/etc', '/', '/workspace/../etc', '']) {
      const res = await raw(content(root, 'passwd'), 'GET', t.key);
      expect(res.status, `root ${root}`).toBe(400);
      expect(res.json().error!.field).toBe('root');
      expect((await raw(content(root, 'pwned'), 'PUT', t.key, Buffer.from('x'))).status).toBe(400);
      expect((await raw(list(root, ''), 'GET', t.key)).status).toBe(400);
    }
    expect((await raw(list('/workspace', '', 6), 'GET', t.key)).status).toBe(400);
    expect((await raw(list('/workspace', '', 0), 'GET', t.key)).status).toBe(400);

    // Symlinks planted inside the workspace that point outside the root.
    const host = await hostContainer(backend, t.stack.docker, id, online.generation);
    expect((await run(host, ['ln', '-s', '/etc', '/workspace/etc-link'])).code).toBe(0);
    expect((await run(host, ['ln', '-s', '/etc/hostname', '/workspace/host-link'])).code).toBe(0);
    const hostnameBefore = (await run(host, ['cat', '/etc/hostname'])).out;
    const etcBefore = (await run(host, ['ls', '-la', '/etc'])).out;
    for (const path of ['etc-link/hostname', 'etc-link/pwned', 'etc-link/new/dir/pwned', 'host-link']) {
      for (const [method, url, body] of [
        ['GET', content('/workspace', path), undefined],
        ['PUT', content('/workspace', path), Buffer.from('pwned')],
        // Deleting the link itself (host-link) removes the link, below.
        ...(path === 'host-link' ? [] : [['DELETE', content('/workspace', path), undefined] as const]),
      ] as const) {
        const res = await raw(url, method, t.key, body);
        expect(res.status, `${method} ${path}: ${res.body.toString()}`).toBe(400);
        expect(res.json().error!.field).toBe('path');
      }
    }
    expect((await raw(list('/workspace', 'etc-link'), 'GET', t.key)).status).toBe(400);
    expect((await raw(list('/workspace', 'etc-link/ssl'), 'GET', t.key)).status).toBe(400);
    expect((await run(host, ['cat', '/etc/hostname'])).out).toBe(hostnameBefore);
    expect((await run(host, ['ls', '-la', '/etc'])).out).toBe(etcBefore);
    expect((await run(host, ['test', '-e', '/etc/pwned'])).code).not.toBe(0);
    expect((await run(host, ['test', '-e', '/etc/new'])).code).not.toBe(0);
    // The links are not followed by a listing either; the rest of the tree is unchanged.
    const after = await listed('/workspace', '', 5);
    expect(after.map((e) => e.path)).toEqual(before.map((e) => e.path));
    // A link itself can be deleted wherever it points: the link goes, what it names stays.
    expect((await run(host, ['ln', '-s', '/etc/hostname', '/workspace/unwanted-link'])).code).toBe(0);
    const unlinked = await raw(content('/workspace', 'unwanted-link'), 'DELETE', t.key);
    expect(unlinked.status, unlinked.body.toString()).toBe(204);
    expect((await run(host, ['test', '-L', '/workspace/unwanted-link'])).code).not.toBe(0);
    expect((await run(host, ['cat', '/etc/hostname'])).out).toBe(hostnameBefore);
    expect((await run(host, ['ls', '-la', '/etc'])).out).toBe(etcBefore);
    // A link that stays inside the root is fine.
    expect((await run(host, ['ln', '-s', '/workspace/bin', '/workspace/bin-link'])).code).toBe(0);
    const viaLink = await raw(content('/workspace', 'bin-link/blob.bin'), 'GET', t.key);
    expect(viaLink.status).toBe(200);
    expect(viaLink.body.equals(blob)).toBe(true);

    // 413 over 10 MiB (nothing written); exactly 10 MiB is accepted.
    const tooBig = await raw(content('/workspace', 'big.bin'), 'PUT', t.key, Buffer.alloc(10 * MiB + 1, 7));
    expect(tooBig.status).toBe(413);
    expect(tooBig.json().error!.code).toBe('payload_too_large');
    expect((await raw(content('/workspace', 'big.bin'), 'GET', t.key)).status).toBe(404);
    expect(
      (await raw(content('/workspace', 'big.bin'), 'PUT', t.key, Buffer.alloc(10 * MiB, 7))).status,
    ).toBe(204);
    expect((await raw(content('/workspace', 'big.bin'), 'GET', t.key)).body.length).toBe(10 * MiB);

    // Another org's key (and an unknown id) → 404, nothing touched.
    const other = await createOrg(t.stack, 'other');
    for (const [method, url, body] of [
      ['GET', content('/workspace', 'bin/blob.bin'), undefined],
      ['PUT', content('/workspace', 'bin/blob.bin'), Buffer.from('x')],
      ['DELETE', content('/workspace', 'bin/blob.bin'), undefined],
      ['GET', list('/workspace', ''), undefined],
    ] as const) {
      const res = await raw(url, method, other.apiKey, body);
      expect(res.status, `${method} as another org`).toBe(404);
      expect(res.json().error!.code).toBe('not_found');
    }
    expect(
      (await raw(`${t.stack.url}/v1/workspaces/0123456789abcdef/files?root=/workspace`, 'GET', t.key)).status,
    ).toBe(404);
    expect((await raw(content('/workspace', 'bin/blob.bin'), 'GET', t.key)).body.equals(blob)).toBe(true);

    // The contract's batch calls (plugin delivery uses them): in order, same rules as one by one.
    const direct = t.stack.service.backends[backend];
    const g = online.generation;
    await direct.writeFiles(id, g, '/workspace', [
      { path: 'batch/a.txt', content: Buffer.from('a') },
      { path: 'batch/deep/b.txt', content: Buffer.from('b') },
      { path: 'batch/a.txt', content: Buffer.from('a2') },
    ]);
    expect((await raw(content('/workspace', 'batch/a.txt'), 'GET', t.key)).body.toString()).toBe('a2');
    expect((await raw(content('/workspace', 'batch/deep/b.txt'), 'GET', t.key)).body.toString()).toBe('b');
    // A bad path anywhere in a batch is refused before any file is written.
    await expect(
      direct.writeFiles(id, g, '/workspace', [
        { path: 'batch/c.txt', content: Buffer.from('c') },
        { path: '../escape.txt', content: Buffer.from('x') },
      ]),
    ).rejects.toMatchObject({ code: 'invalid_path' });
    expect((await raw(content('/workspace', 'batch/c.txt'), 'GET', t.key)).status).toBe(404);
    // Through the planted symlink: refused there, the file before it written, none after it.
    await expect(
      direct.writeFiles(id, g, '/workspace', [
        { path: 'batch/c.txt', content: Buffer.from('c') },
        { path: 'etc-link/wo-batch', content: Buffer.from('x') },
        { path: 'batch/d.txt', content: Buffer.from('d') },
      ]),
    ).rejects.toMatchObject({ code: 'invalid_path' });
    expect((await raw(content('/workspace', 'batch/c.txt'), 'GET', t.key)).status).toBe(200);
    expect((await raw(content('/workspace', 'batch/d.txt'), 'GET', t.key)).status).toBe(404);
    // Deletes in order, deepest first as given; one already gone is skipped.
    await direct.deleteFiles(id, g, '/workspace', [
      'batch/deep/b.txt',
      'batch/gone.txt',
      'batch/deep',
      'batch/a.txt',
      'batch/c.txt',
      'batch',
    ]);
    expect((await raw(list('/workspace', 'batch'), 'GET', t.key)).status).toBe(404);

    // Temporary files of uploads a crash cut (planted as such): listings skip them; the agent removes
    // the old one when it boots (below), and keeps the one an upload may still be writing.
    const shell = await hostContainer(backend, t.stack.docker, id, online.generation);
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000).toISOString().slice(0, 19).replace('T', ' ');
    const planted = await run(shell, [
      'sh',
      '-c',
      `mkdir -p /workspace/left && echo x > /workspace/left/real.txt && echo x > /workspace/left/.wo-upload-stale && ` +
        `touch -d '${twoHoursAgo}' /workspace/left/.wo-upload-stale && echo x > /workspace/left/.wo-upload-fresh`,
    ]);
    expect(planted.code, planted.out).toBe(0);
    expect((await listed('/workspace', 'left')).map((e) => e.path)).toEqual(['left/real.txt']);
    expect((await listed('/workspace', '', 5)).map((e) => e.path)).not.toContain('left/.wo-upload-stale');
    // So the name is not the caller's to use (a file under it would be hidden, then removed)...
    for (const path of ['.wo-upload-mine', 'sub/.wo-upload-keep/notes.txt']) {
      const res = await raw(content('/workspace', path), 'PUT', t.key, Buffer.from('x'));
      expect(res.status, path).toBe(400);
      expect(res.json().error!.field, path).toBe('path');
    }
    // ...and a folder of the name made in the workspace is the user's: listed, with what it holds.
    const folder = await run(shell, [
      'sh',
      '-c',
      'mkdir -p /workspace/kept/.wo-upload-dir && echo x > /workspace/kept/.wo-upload-dir/in.txt',
    ]);
    expect(folder.code, folder.out).toBe(0);
    expect((await listed('/workspace', 'kept', 2)).map((e) => e.path)).toEqual([
      'kept/.wo-upload-dir',
      'kept/.wo-upload-dir/in.txt',
    ]);

    // Not online → 409.
    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/stop`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'stopped');
    for (const [method, url, body] of [
      ['GET', content('/workspace', 'bin/blob.bin'), undefined],
      ['PUT', content('/workspace', 'x.txt'), Buffer.from('x')],
      ['DELETE', content('/workspace', 'bin/blob.bin'), undefined],
      ['GET', list('/workspace', ''), undefined],
    ] as const) {
      const res = await raw(url, method, t.key, body);
      expect(res.status, `${method} when stopped`).toBe(409);
      expect(res.json().error!.code).toBe('not_online');
    }

    if (backend === 'docker') {
      // A stopped container still reads through the archive API, with the same symlink refusal.
      const b = t.stack.service.backends.docker;
      expect((await b.readFile(id, online.generation, '/workspace', 'bin/blob.bin')).equals(blob)).toBe(true);
      expect((await b.readFile(id, online.generation, '/workspace', 'bin-link/blob.bin')).equals(blob)).toBe(
        true,
      );
      for (const path of ['etc-link/hostname', 'host-link']) {
        await expect(b.readFile(id, online.generation, '/workspace', path), path).rejects.toMatchObject({
          code: 'invalid_path',
        });
      }
    }

    // Started again: its agent removed the old unfinished upload, not the fresh one.
    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/start`, { token: t.key })).status).toBe(202);
    const again = await waitForStatus(t.stack, t.key, id, 'online');
    const rebooted = await hostContainer(backend, t.stack.docker, id, again.generation);
    const deadline = Date.now() + 30_000;
    let left = '';
    while (Date.now() < deadline) {
      left = (await run(rebooted, ['sh', '-c', 'ls -A /workspace/left'])).out.trim();
      if (!left.includes('.wo-upload-stale')) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(left.split(/\s+/).sort()).toEqual(['.wo-upload-fresh', 'real.txt']);

    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
    expect(await leftovers(backend, t.stack.docker, id)).toEqual([]);
  });

  it('an upload under way when the workspace is restarted, then stopped, answers 409 not_online (not 503), promptly', async () => {
    const id = await createdWorkspace('mover');
    let online = await waitForStatus(t.stack, t.key, id, 'online');
    const resources = t.stack.service.backends[backend];
    const content = (path: string) =>
      `${t.stack.url}/v1/workspaces/${id}/files/content?root=%2Fworkspace&path=${encodeURIComponent(path)}`;

    for (const change of ['restart', 'stop'] as const) {
      const generation = online.generation as number;
      const inside = await hostContainer(backend, t.stack.docker, id, generation);
      // Part of an 8 MiB upload sent, the rest held back: the write is under way in the resource.
      const upload = streamedUpload(content(`moving/${change}.bin`), t.key, 8 * MiB);
      expect(await upload.send(randomBytes(MiB))).toBe(true);
      await waitFor(
        async () =>
          (
            await run(inside, [
              'sh',
              '-c',
              "find /workspace/moving -name '.wo-upload-*' -size +0 2>/dev/null",
            ])
          ).out.trim(),
        { timeoutMs: 30_000, intervalMs: 100, describe: `the ${change} upload to reach ${id}` },
      );

      expect(
        (await t.stack.api.call('POST', `/v1/workspaces/${id}/${change}`, { token: t.key })).status,
      ).toBe(202);
      // The generation the upload writes to is gone (restart) or stopped (stop).
      await waitFor(async () => (await resources.status(id, generation)) !== 'running', {
        timeoutMs: 90_000,
        intervalMs: 100,
        describe: `${id} g${generation} to leave running (${change})`,
      });
      const goneAt = Date.now();
      // More of the body: it lands nowhere. The answer names the workspace's state, and comes
      // within the promise of an unavailable dependency (5 s), not after retries against a VM that
      // is gone.
      await upload.send(randomBytes(MiB));
      const answer = await Promise.race([
        upload.answer,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`no answer to the ${change} upload within 60 s`)), 60_000),
        ),
      ]).finally(() => upload.abort());
      expect(answer.status, `${change}: ${answer.body}`).toBe(409);
      expect(JSON.parse(answer.body).error.code, change).toBe('not_online');
      expect(
        answer.at - goneAt,
        `${change}: answered ${answer.at - goneAt} ms after the resource went`,
      ).toBeLessThan(5_000);

      if (change === 'restart') online = await waitForStatus(t.stack, t.key, id, 'online');
      else await waitForStatus(t.stack, t.key, id, 'stopped');
    }

    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
    expect(await leftovers(backend, t.stack.docker, id)).toEqual([]);
  });

  it('a full disk: PUT answers 507 insufficient_storage, the old file stays whole, no temporary file is left; once space is freed the write works', async () => {
    const DISK = 2 * MiB;
    // ec2: the simulator's VM has its /workspace on a 2 MiB filesystem.
    const key = backend === 'ec2' ? await t.orgWithKnobs({ workspaceDiskBytes: DISK }) : t.key;
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: key,
      body: { name: 'full', backend },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    let online = await waitForStatus(t.stack, key, id, 'online');
    if (backend === 'docker') {
      // docker: the operator moved the workspace volume to a 2 MiB filesystem while it was stopped
      // (the volume keeps its name and labels; the next start's container mounts it).
      expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/stop`, { token: key })).status).toBe(202);
      await waitForStatus(t.stack, key, id, 'stopped');
      await t.stack.docker.getContainer(`ws-${id}-g${online.generation}`).remove({ force: true });
      const name = `ws-${id}-workspace`;
      const { Labels } = await t.stack.docker.getVolume(name).inspect();
      await t.stack.docker.getVolume(name).remove();
      await t.stack.docker.createVolume({
        Name: name,
        Labels,
        Driver: 'local',
        DriverOpts: { type: 'tmpfs', device: 'tmpfs', o: `size=${DISK}` },
      });
      expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/start`, { token: key })).status).toBe(202);
      online = await waitForStatus(t.stack, key, id, 'online');
    }
    const content = (path: string) =>
      `${t.stack.url}/v1/workspaces/${id}/files/content?root=%2Fworkspace&path=${encodeURIComponent(path)}`;
    const inside = await hostContainer(backend, t.stack.docker, id, online.generation);
    const uploads = async () =>
      (await run(inside, ['sh', '-c', "find /workspace -name '.wo-upload*' | wc -l"])).out.trim();

    expect((await raw(content('keep.txt'), 'PUT', key, Buffer.from('v1'))).status).toBe(204);
    const filler = randomBytes(Math.floor(1.5 * MiB));
    expect((await raw(content('filler.bin'), 'PUT', key, filler)).status).toBe(204);

    const big = randomBytes(1 * MiB);
    const full = await raw(content('keep.txt'), 'PUT', key, big);
    expect(full.status, full.body.toString()).toBe(507);
    expect(full.json().error!.code).toBe('insufficient_storage');
    const fresh = await raw(content('new/big.bin'), 'PUT', key, big);
    expect(fresh.status, fresh.body.toString()).toBe(507);
    // Nothing of either write is left: the old file whole, no new file, no temporary file.
    expect((await raw(content('keep.txt'), 'GET', key)).body.toString()).toBe('v1');
    expect((await raw(content('new/big.bin'), 'GET', key)).status).toBe(404);
    expect(await uploads()).toBe('0');

    // Space freed: the same write goes through.
    expect((await raw(content('filler.bin'), 'DELETE', key)).status).toBe(204);
    expect((await raw(content('keep.txt'), 'PUT', key, big)).status).toBe(204);
    expect((await raw(content('keep.txt'), 'GET', key)).body.equals(big)).toBe(true);

    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: key })).status).toBe(202);
    await waitForStatus(t.stack, key, id, 'deleted');
    expect(await leftovers(backend, t.stack.docker, id)).toEqual([]);
  });
});
