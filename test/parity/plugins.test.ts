/**
 * Plugins on the real stack, the same test for each backend: a catalog plugin and an upload are
 * installed live into /configs/plugins/<name> of a running workspace and the agent reports each
 * (status `installed` lands only on the agent's report of that very install) without a restart;
 * uninstall removes the folder, whole whatever a process or a terminal left in it (any depth,
 * dangling and outside links, FIFOs, sockets), and a folder that is itself a link only as a link
 * (removeTree, proven for both backends here too); a restart keeps the installed set; an install
 * on a stopped workspace is applied at its next start; and every refused upload (bad manifest,
 * sha256 mismatch, too large, escaping entries, links, devices, unknown local:// name) is a 400
 * naming the field with the workspace's plugin set and files unchanged. A template's default
 * plugins arrive with the first boot.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { loadPluginDir } from '../../src/plugins/catalog.js';
import { PLUGIN_MAX_ARCHIVE_BYTES } from '../../src/plugins/schema.js';
import type Dockerode from 'dockerode';
import { BackendError } from '../../src/backends/backend.js';
import { waitFor } from '../setup/wait-for.js';
import { manifest, tarGz, type Entry } from '../support/plugin-archives.js';
import { waitForStatus } from '../support/stack.js';
import { spawnWorker } from '../support/worker-process.js';
import { pluginWorkflowId } from '../../src/workflows/messages.js';
import { CONCURRENT_BLOCK, PARITY_BACKENDS, useParityStack, workerProcessEnv } from './backends.js';
import { hostContainer, sh } from './workspace-shell.js';

const it = test.sequential;

const CATALOG = path.resolve(import.meta.dirname, '../../plugins');
const HELLO = loadPluginDir(path.join(CATALOG, 'hello-tools'), 'hello-tools');

describe.each(PARITY_BACKENDS)('%s: plugins', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend, {
    env: {
      PLUGINS_DIR: CATALOG,
      TEMPLATES_DIR: path.resolve(import.meta.dirname, '../fixtures/plugin-templates'),
    },
  });

  const api = (method: string, p: string, body?: unknown) =>
    t.stack.api.call(method, p, { token: t.key, ...(body === undefined ? {} : { body }) });

  async function plugins(id: string): Promise<Array<Record<string, unknown>>> {
    const res = await api('GET', `/v1/workspaces/${id}/plugins`);
    expect(res.status).toBe(200);
    return res.body.items;
  }

  async function waitPlugin(id: string, name: string, status: string | null) {
    return waitFor(
      async () => {
        const p = (await plugins(id)).find((x) => x.name === name) ?? null;
        const now = p ? String(p.status) : null;
        if (now !== status) throw new Error(`plugin ${name} is ${now} (${String(p?.reason ?? '')})`);
        // waitFor retries a falsy result: wrapped, so "gone" (null) is an answer too.
        return { plugin: p };
      },
      { timeoutMs: 90_000, intervalMs: 250, describe: `plugin ${name} to be ${String(status)}` },
    );
  }

  /** Every path under /configs/plugins with its size, through the files API. */
  async function pluginTree(id: string): Promise<string[]> {
    const res = await api('GET', `/v1/workspaces/${id}/files?root=/configs&path=plugins&depth=5`);
    if (res.status === 404) return [];
    expect(res.status).toBe(200);
    return (res.body.items as Array<{ path: string; type: string; size: number }>)
      .map((i) => `${i.path}:${i.type}:${i.type === 'file' ? i.size : 0}`)
      .sort();
  }

  async function fileText(id: string, rel: string): Promise<{ status: number; text: string }> {
    const q = new URLSearchParams({ root: '/configs', path: rel });
    const res = await fetch(`${t.stack.url}/v1/workspaces/${id}/files/content?${q}`, {
      headers: { authorization: `Bearer ${t.key}` },
      signal: AbortSignal.timeout(30_000),
    });
    return { status: res.status, text: await res.text() };
  }

  let id = '';

  it('GET /v1/plugins lists the catalog', async () => {
    expect((await t.stack.api.call('GET', '/v1/plugins')).status).toBe(401);
    const res = await api('GET', '/v1/plugins');
    expect(res.status).toBe(200);
    expect(res.body.items).toContainEqual({
      name: 'hello-tools',
      version: HELLO.version,
      description: HELLO.description,
      source: 'local://hello-tools',
      sha256: HELLO.sha256,
    });
  });

  it('install live (catalog and upload): the agent reports each without a restart; uninstall removes it', async () => {
    const created = await api('POST', '/v1/workspaces', { name: 'plugged', backend });
    expect(created.status).toBe(202);
    id = created.body.id;
    const online = await waitForStatus(t.stack, t.key, id, 'online');

    const local = await api('POST', `/v1/workspaces/${id}/plugins`, { source: 'local://hello-tools' });
    expect(local.status).toBe(202);
    expect(local.body).toMatchObject({ name: 'hello-tools', version: HELLO.version, status: 'installing' });

    const upload = await tarGz([manifest('uploaded', '0.3.0'), { name: 'lib/a.txt', content: 'alpha' }]);
    const sha256 = createHash('sha256').update(upload).digest('hex');
    const up = await api('POST', `/v1/workspaces/${id}/plugins`, {
      source: { tarGzBase64: upload.toString('base64') },
      sha256,
    });
    expect(up.status).toBe(202);
    expect(up.body).toMatchObject({ name: 'uploaded', version: '0.3.0', sha256 });

    const installed = (await waitPlugin(id, 'hello-tools', 'installed')).plugin;
    expect(installed?.installedAt).toEqual(expect.any(String));
    await waitPlugin(id, 'uploaded', 'installed');

    // Live: the same generation, never restarted.
    const after = (await api('GET', `/v1/workspaces/${id}`)).body;
    expect(after.generation).toBe(online.generation);
    expect(after.status).toBe('online');
    for (const f of HELLO.files) {
      const got = await fileText(id, `plugins/hello-tools/${f.path}`);
      expect(got.status, f.path).toBe(200);
      expect(got.text).toBe(Buffer.from(f.contentBase64, 'base64').toString('utf8'));
    }
    expect(await fileText(id, 'plugins/uploaded/lib/a.txt')).toEqual({ status: 200, text: 'alpha' });

    // A second install of the same name while the first settles is refused; a settled one re-installs.
    const gone = await api('DELETE', `/v1/workspaces/${id}/plugins/uploaded`);
    expect(gone.status).toBe(202);
    expect(gone.body.status).toBe('uninstalling');
    await waitPlugin(id, 'uploaded', null);
    expect((await fileText(id, 'plugins/uploaded/lib/a.txt')).status).toBe(404);
    expect((await pluginTree(id)).some((p) => p.startsWith('plugins/uploaded'))).toBe(false);
    expect((await api('DELETE', `/v1/workspaces/${id}/plugins/uploaded`)).status).toBe(404);
    expect((await api('GET', `/v1/workspaces/${id}`)).body.generation).toBe(online.generation);
  });

  it('every refused install is a 400 naming the field, and leaves the plugin set and files unchanged', async () => {
    const setBefore = await plugins(id);
    const treeBefore = await pluginTree(id);
    expect(treeBefore.length).toBeGreaterThan(0);

    const b64 = async (entries: Entry[]) => (await tarGz(entries)).toString('base64');
    const good = await tarGz([manifest('evil')]);
    const cases: Array<[string, unknown, string]> = [
      ['unknown local name', { source: 'local://no-such-plugin' }, 'source'],
      [
        'bad manifest',
        { source: { tarGzBase64: await b64([{ name: 'plugin.yaml', content: 'name: Bad!\n' }]) } },
        'source.tarGzBase64',
      ],
      [
        'no manifest',
        { source: { tarGzBase64: await b64([{ name: 'x.txt', content: 'x' }]) } },
        'source.tarGzBase64',
      ],
      [
        'sha256 mismatch',
        { source: { tarGzBase64: good.toString('base64') }, sha256: '0'.repeat(64) },
        'sha256',
      ],
      ['catalog sha256 mismatch', { source: 'local://hello-tools', sha256: 'f'.repeat(64) }, 'sha256'],
      [
        'dot-dot',
        {
          source: {
            tarGzBase64: await b64([manifest('evil'), { name: '../../config.yaml', content: 'pwned' }]),
          },
        },
        'source.tarGzBase64',
      ],
      [
        'absolute',
        {
          source: {
            tarGzBase64: await b64([manifest('evil'), { name: '/configs/config.yaml', content: 'pwned' }]),
          },
        },
        'source.tarGzBase64',
      ],
      [
        'symlink',
        {
          source: {
            tarGzBase64: await b64([manifest('evil'), { name: 'l', type: 'symlink', linkname: '/etc' }]),
          },
        },
        'source.tarGzBase64',
      ],
      [
        'hard link',
        {
          source: {
            tarGzBase64: await b64([manifest('evil'), { name: 'h', type: 'link', linkname: '/etc/passwd' }]),
          },
        },
        'source.tarGzBase64',
      ],
      [
        'device',
        { source: { tarGzBase64: await b64([manifest('evil'), { name: 'd', type: 'character-device' }]) } },
        'source.tarGzBase64',
      ],
      [
        'gzip bomb',
        {
          source: { tarGzBase64: gzipSync(Buffer.alloc(48 * 1024 * 1024), { level: 9 }).toString('base64') },
        },
        'source.tarGzBase64',
      ],
      [
        'over the size limit',
        { source: { tarGzBase64: 'A'.repeat(Math.ceil(((PLUGIN_MAX_ARCHIVE_BYTES + 1024) * 4) / 3)) } },
        'source.tarGzBase64',
      ],
      [
        'over-writes a live plugin from outside',
        {
          source: {
            tarGzBase64: await b64([manifest('hello-tools'), { name: '../uploaded/x', content: 'x' }]),
          },
        },
        'source.tarGzBase64',
      ],
    ];
    for (const [what, body, field] of cases) {
      const res = await api('POST', `/v1/workspaces/${id}/plugins`, body);
      expect(res.status, what).toBe(400);
      expect(res.body.error, what).toMatchObject({ code: 'invalid_request', field });
    }
    expect(await plugins(id)).toEqual(setBefore);
    expect(await pluginTree(id)).toEqual(treeBefore);
    expect(await fileText(id, 'config.yaml')).toMatchObject({ status: 200 });
    expect((await fileText(id, 'config.yaml')).text).not.toContain('pwned');
  });

  it('a restart keeps the installed set; an install on a stopped workspace is applied at the next start', async () => {
    const before = (await api('GET', `/v1/workspaces/${id}`)).body;
    expect(
      (await t.stack.api.callRetrying503('POST', `/v1/workspaces/${id}/restart`, { token: t.key })).status,
    ).toBe(202);
    await waitForStatus(t.stack, t.key, id, (w) => w.status === 'online' && w.generation > before.generation);
    expect((await plugins(id)).map((p) => [p.name, p.status])).toEqual([['hello-tools', 'installed']]);
    expect((await fileText(id, 'plugins/hello-tools/plugin.yaml')).status).toBe(200);

    expect(
      (await t.stack.api.callRetrying503('POST', `/v1/workspaces/${id}/stop`, { token: t.key })).status,
    ).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'stopped');
    const later = await tarGz([manifest('later'), { name: 'b.txt', content: 'bravo' }]);
    expect(
      (
        await api('POST', `/v1/workspaces/${id}/plugins`, {
          source: { tarGzBase64: later.toString('base64') },
        })
      ).status,
    ).toBe(202);
    await waitPlugin(id, 'later', 'pending');
    // Removed while stopped: gone from the stored set, so the next start does not bring it back.
    expect((await api('DELETE', `/v1/workspaces/${id}/plugins/hello-tools`)).status).toBe(202);
    await waitPlugin(id, 'hello-tools', null);

    expect(
      (await t.stack.api.callRetrying503('POST', `/v1/workspaces/${id}/start`, { token: t.key })).status,
    ).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'online');
    await waitPlugin(id, 'later', 'installed');
    expect(await fileText(id, 'plugins/later/b.txt')).toEqual({ status: 200, text: 'bravo' });
    expect((await fileText(id, 'plugins/hello-tools/plugin.yaml')).status).toBe(404);

    expect((await api('DELETE', `/v1/workspaces/${id}`)).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });

  it("a template's default plugins are installed by the workspace's first boot", async () => {
    const created = await api('POST', '/v1/workspaces', {
      name: 'templated',
      backend,
      template: 'with-hello',
    });
    expect(created.status).toBe(202);
    const tid: string = created.body.id;
    expect((await plugins(tid)).map((p) => [p.name, p.status])).toEqual([['hello-tools', 'pending']]);
    await waitForStatus(t.stack, t.key, tid, 'online');
    await waitPlugin(tid, 'hello-tools', 'installed');
    expect((await fileText(tid, 'plugins/hello-tools/tools/hello.json')).status).toBe(200);
    expect((await api('DELETE', `/v1/workspaces/${tid}`)).status).toBe(202);
    await waitForStatus(t.stack, t.key, tid, 'deleted');
  });

  /** A running workspace of the test's own, and the container that holds it (its files, its shell). */
  async function onlineWithHost(name: string) {
    const created = await api('POST', '/v1/workspaces', { name, backend });
    expect(created.status).toBe(202);
    const online = await waitForStatus(t.stack, t.key, created.body.id, 'online');
    const host = await hostContainer(backend, t.stack.docker, online.id, online.generation);
    return { id: String(online.id), generation: Number(online.generation), host };
  }

  async function deleteWorkspace(id: string): Promise<void> {
    expect((await api('DELETE', `/v1/workspaces/${id}`)).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
  }

  async function installUpload(id: string, name: string, entries: Entry[]): Promise<void> {
    const archive = await tarGz([manifest(name), ...entries]);
    const res = await api('POST', `/v1/workspaces/${id}/plugins`, {
      source: { tarGzBase64: archive.toString('base64') },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    await waitPlugin(id, name, 'installed');
  }

  /** Runs a script in the workspace's container (test side, as a plugin's process or a terminal would). */
  async function shOk(host: Dockerode.Container, script: string): Promise<string> {
    const r = await sh(host, script);
    expect(r.code, `${script}\n${r.out}`).toBe(0);
    return r.out;
  }

  it('uninstall removes what no listing sees whole (9 levels deep, dangling and outside links, a FIFO, a socket); the plugin installs again', async () => {
    const { id, host } = await onlineWithHost('messy-folder');
    await installUpload(id, 'messy', [{ name: 'lib/a.txt', content: 'alpha' }]);
    await installUpload(id, 'neighbour', [{ name: 'n.txt', content: 'november' }]);

    // Through the public API: a file deeper than the plugin limits allow.
    const deep = new URLSearchParams({ root: '/configs', path: 'plugins/messy/1/2/3/4/5/6/7/8/9.txt' });
    const put = await fetch(`${t.stack.url}/v1/workspaces/${id}/files/content?${deep}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/octet-stream' },
      body: 'deep',
      signal: AbortSignal.timeout(30_000),
    });
    expect(put.status).toBe(204);
    // What a plugin's own processes leave: a dangling link, links out of /configs (a venv's
    // bin/python, a folder), a link into another plugin, a FIFO and a unix socket.
    await shOk(
      host,
      `cd /configs/plugins/messy && ln -s /nonexistent/target dangling && mkdir -p venv/bin &&
       ln -s /etc/passwd venv/bin/python && ln -s /etc etc-link && ln -s /configs/plugins/neighbour next &&
       mkfifo pipe && node -e "require('net').createServer().listen(process.argv[1], () => process.exit(0))" "$PWD/sock" &&
       [ -p pipe ] && [ -S sock ] && [ -L dangling ] && [ -f 1/2/3/4/5/6/7/8/9.txt ]`,
    );

    const gone = await api('DELETE', `/v1/workspaces/${id}/plugins/messy`);
    expect(gone.status).toBe(202);
    await waitPlugin(id, 'messy', null);
    // Gone whole; what its links pointed at is untouched.
    await shOk(
      host,
      '[ ! -e /configs/plugins/messy ] && [ ! -L /configs/plugins/messy ] && [ -s /etc/passwd ]',
    );
    expect(await fileText(id, 'plugins/neighbour/n.txt')).toEqual({ status: 200, text: 'november' });
    expect((await plugins(id)).map((p) => [p.name, p.status])).toEqual([['neighbour', 'installed']]);

    await installUpload(id, 'messy', [{ name: 'lib/a.txt', content: 'again' }]);
    expect(await fileText(id, 'plugins/messy/lib/a.txt')).toEqual({ status: 200, text: 'again' });
    await deleteWorkspace(id);
  });

  it('uninstall of a plugin folder that is itself a link to /configs removes only the link', async () => {
    const { id, host } = await onlineWithHost('linked-folder');
    await installUpload(id, 'linked', [{ name: 'l.txt', content: 'lima' }]);
    await installUpload(id, 'bystander', [{ name: 'b.txt', content: 'bravo' }]);
    const config = await fileText(id, 'config.yaml');
    expect(config.status).toBe(200);
    const others = async () => (await pluginTree(id)).filter((p) => !p.startsWith('plugins/linked'));
    const othersBefore = await others();
    expect(othersBefore).toContain('plugins/bystander/b.txt:file:5');

    // Made from the terminal: the folder swapped for a link to /configs itself.
    await shOk(host, 'rm -rf /configs/plugins/linked && ln -s /configs /configs/plugins/linked');
    expect((await api('DELETE', `/v1/workspaces/${id}/plugins/linked`)).status).toBe(202);
    await waitPlugin(id, 'linked', null);

    await shOk(host, '[ ! -e /configs/plugins/linked ] && [ ! -L /configs/plugins/linked ]');
    expect(await fileText(id, 'config.yaml')).toEqual(config);
    expect(await fileText(id, 'plugins/bystander/b.txt')).toEqual({ status: 200, text: 'bravo' });
    expect(await others()).toEqual(othersBefore);
    expect((await plugins(id)).find((p) => p.name === 'bystander')?.status).toBe('installed');

    await installUpload(id, 'linked', [{ name: 'l.txt', content: 'lima again' }]);
    expect(await fileText(id, 'plugins/linked/l.txt')).toEqual({ status: 200, text: 'lima again' });
    await deleteWorkspace(id);
  });

  it('removeTree (the backend call that removes a tree): links go as links at every level, any depth, FIFOs and sockets; gone is done; an escaping parent is refused', async () => {
    const { id, generation, host } = await onlineWithHost('remove-tree');
    const b = t.stack.service.backends[backend];
    const outcome = (p: Promise<unknown>) =>
      p.then(
        () => 'resolved',
        (e: unknown) => (e instanceof BackendError ? e.code : String(e)),
      );
    await shOk(
      host,
      `mkdir -p /workspace/rt/a/b/c/d/e/f/g/h/i/j/k && echo deep > /workspace/rt/a/b/c/d/e/f/g/h/i/j/k/l.txt &&
       mkdir -p /workspace/keep /workspace/real/sub && echo kept > /workspace/keep/k.txt && echo s > /workspace/real/sub/s.txt &&
       cd /workspace/rt && ln -s /nowhere dangling && ln -s /etc etc && ln -s /workspace/keep a/b/keep &&
       ln -s /etc/passwd a/passwd && mkfifo a/b/c/pipe &&
       node -e "require('net').createServer().listen(process.argv[1], () => process.exit(0))" /workspace/rt/a/sock &&
       ln -s /etc /workspace/out && ln -s /workspace/real /workspace/alias && ln -s /etc /workspace/etc-link &&
       mkfifo /workspace/lone-pipe`,
    );

    await b.removeTree(id, generation, '/workspace', 'rt');
    // A link as the path itself: the link goes, /etc stays.
    await b.removeTree(id, generation, '/workspace', 'etc-link');
    await b.removeTree(id, generation, '/workspace', 'lone-pipe');
    // A parent link inside the root is followed, as for every files call.
    await b.removeTree(id, generation, '/workspace', 'alias/sub');
    await shOk(
      host,
      `for p in rt etc-link lone-pipe real/sub; do if [ -e /workspace/$p ] || [ -L /workspace/$p ]; then echo "$p left"; exit 1; fi; done;
       [ "$(cat /workspace/keep/k.txt)" = kept ] && [ -s /etc/passwd ] && [ -d /etc ] && [ -d /workspace/real ] && [ -L /workspace/alias ]`,
    );

    // Gone already, or a parent missing: done.
    for (const gone of ['rt', 'no/such/parent'])
      expect(await outcome(b.removeTree(id, generation, '/workspace', gone)), gone).toBe('resolved');
    // Refused: lexically outside the root, the reserved bundle folder, through a parent leaving it.
    expect(await outcome(b.removeTree(id, generation, '/workspace', '../etc'))).toBe('invalid_path');
    expect(await outcome(b.removeTree(id, generation, '/configs', '.wo'))).toBe('invalid_path');
    expect(await outcome(b.removeTree(id, generation, '/workspace', 'out/passwd'))).toBe('invalid_path');
    await shOk(host, '[ -s /etc/passwd ] && [ -L /workspace/out ]');
    await deleteWorkspace(id);
  });
});

describe.each(PARITY_BACKENDS)('%s: worker SIGKILL mid-install', CONCURRENT_BLOCK, (backend) => {
  // The API runs in this process; the workers are processes of their own, killed for real.
  const t = useParityStack(backend, { worker: false });

  test('the install still ends installed, exactly once, with the whole plugin in place', async () => {
    let worker = await spawnWorker(workerProcessEnv(t));
    try {
      const created = await t.stack.api.call('POST', '/v1/workspaces', {
        token: t.key,
        body: { name: 'killed-mid-install', backend },
      });
      expect(created.status).toBe(202);
      const id: string = created.body.id;
      await waitForStatus(t.stack, t.key, id, 'online');

      // Many files and most of the size a plugin may unpack to (7.6 of 8 MiB; the archive stays
      // small): the delivery takes long enough to be caught in the middle. With 60 tiny files an
      // EC2 delivery once ended before the kill.
      const files = Array.from({ length: 190 }, (_, i) => ({
        name: `data/f${i}.txt`,
        content: `file ${i} `.padEnd(40_000, 'x'),
      }));
      const archive = await tarGz([manifest('bulky', '2.0.0'), ...files]);
      const res = await t.stack.api.call('POST', `/v1/workspaces/${id}/plugins`, {
        token: t.key,
        body: { source: { tarGzBase64: archive.toString('base64') } },
      });
      expect(res.status).toBe(202);
      await waitFor(
        async () => {
          const l = await t.stack.api.call(
            'GET',
            `/v1/workspaces/${id}/files?root=/configs&path=plugins/bulky&depth=3`,
            {
              token: t.key,
            },
          );
          return l.status === 200 && (l.body.items as unknown[]).length > 0;
        },
        { timeoutMs: 60_000, intervalMs: 20, describe: 'the delivery to have begun' },
      );
      await worker.kill('SIGKILL');
      const during = await t.stack.api.call('GET', `/v1/workspaces/${id}/plugins`, { token: t.key });
      expect(during.body.items).toMatchObject([{ name: 'bulky', status: 'installing' }]);

      worker = await spawnWorker(workerProcessEnv(t));
      const handle = t.stack.service.temporal.workflow.getHandle(pluginWorkflowId(id, 'bulky'));
      expect(await handle.result()).toEqual({ outcome: 'installed' });
      const after = await t.stack.api.call('GET', `/v1/workspaces/${id}/plugins`, { token: t.key });
      expect(after.body.items).toMatchObject([{ name: 'bulky', status: 'installed', version: '2.0.0' }]);

      // Exactly once: one outcome landed by the one run, and the folder holds the plugin whole.
      const history = await handle.fetchHistory();
      const settles = (history.events ?? []).filter(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'settlePlugin',
      );
      expect(settles).toHaveLength(1);
      const listing = await t.stack.api.call(
        'GET',
        `/v1/workspaces/${id}/files?root=/configs&path=plugins/bulky&depth=3`,
        {
          token: t.key,
        },
      );
      const paths = (listing.body.items as Array<{ path: string; type: string }>)
        .filter((i) => i.type === 'file')
        .map((i) => i.path.replace(/^plugins\/bulky\//, ''))
        .sort();
      expect(paths).toEqual(['.wo-install-id', 'plugin.yaml', ...files.map((f) => f.name)].sort());

      expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
      await waitForStatus(t.stack, t.key, id, 'deleted');
    } finally {
      await worker.kill('SIGTERM');
    }
  });
});
