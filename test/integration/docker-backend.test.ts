/**
 * DockerBackend against the real daemon and the real runtime image. The fake registry of
 * test/support/fake-registry.ts stands in for the platform so the agent boots and writes /configs
 * (readFile needs a file it wrote).
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import Dockerode from 'dockerode';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, type StartSpec } from '../../src/backends/backend.js';
import { DockerBackend } from '../../src/backends/docker/docker-backend.js';
import { ICC_OPTION, iccIsOff, orgNetworkName } from '../../src/backends/docker/network.js';
import { ensureRuntimeImage } from '../../src/cli/build-images.js';
import { killContainerAgent } from '../support/agent-death.js';
import { fakeBundle, startFakeRegistry, type FakeRegistry } from '../support/fake-registry.js';

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** GET with a hard timeout: docker-proxy can hold a connection open while a container starts. */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 2_000, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

const configYaml = 'runtime: echo\n';

const docker = new Dockerode();
const workspaceId = `dbt${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
const badImageWorkspace = `${workspaceId}-badimg`;
let backend: DockerBackend;
let registry: FakeRegistry;
let mints = 0;

const spec = (id = workspaceId): StartSpec => ({
  workspaceId: id,
  orgId: 'org-db',
  generation: 1,
  runtime: 'echo',
  platformUrl: registry.containerUrl,
  mintBootstrapToken: async () => {
    mints++;
    return `bt:${id}`;
  },
});

let image: string;
const containersOf = (id: string) =>
  docker.listContainers({ all: true, filters: { label: [`wo.workspace-id=${id}`] } });
/** The workspace's volumes by exact name (the daemon's name filter matches substrings). */
const volumesOf = async (id: string) => {
  const wanted = new Set([`ws-${id}-configs`, `ws-${id}-workspace`]);
  return ((await docker.listVolumes()).Volumes ?? []).map((v) => v.Name).filter((n) => wanted.has(n));
};

beforeAll(async () => {
  image = await ensureRuntimeImage({ docker });
  registry = await startFakeRegistry();
  // Tokens are "bt:<workspaceId>" (reusable: every start of the generation mints the same one) and
  // "wt:<workspaceId>".
  registry.add(
    fakeBundle(workspaceId, {
      orgId: 'org-db',
      name: 'backend-test',
      generation: 1,
      configHash: 'h1',
      config: { runtime: 'echo' },
      configYaml,
      files: [{ path: 'notes/hello.txt', contentBase64: Buffer.from('hi').toString('base64') }],
      workspaceToken: `wt:${workspaceId}`,
      heartbeatIntervalMs: 1_000,
    }),
    { bootstrapToken: `bt:${workspaceId}`, reusableBootstrap: true },
  );
  backend = new DockerBackend({ docker, image, stopTimeoutSeconds: 5 });
}, 300_000);

afterAll(async () => {
  for (const id of [workspaceId, badImageWorkspace])
    await backend?.remove(id, { volumes: true }).catch(() => undefined);
  await registry?.stop();
}, 60_000);

describe('DockerBackend', () => {
  it('start is idempotent per generation: concurrent and repeated starts share one container', async () => {
    const t0 = Date.now();
    const [a, b] = await Promise.all([backend.start(spec()), backend.start(spec())]);
    const startMs = Date.now() - t0;
    const c = await backend.start(spec());
    expect(a.instanceId).toBe(b.instanceId);
    expect(c.instanceId).toBe(a.instanceId);
    expect(a.status).toBe('running');
    const mintsAfterFirst = mints;
    expect(mintsAfterFirst).toBeGreaterThanOrEqual(1);
    await backend.start(spec());
    expect(mints).toBe(mintsAfterFirst);

    const containers = await containersOf(workspaceId);
    expect(containers.map((x) => x.Id)).toEqual([a.instanceId]);
    expect(containers[0]?.Names).toEqual([`/ws-${workspaceId}-g1`]);
    expect(containers[0]?.Labels).toMatchObject({
      'wo.managed-by': 'workspace-orchestrator',
      'wo.workspace-id': workspaceId,
      'wo.org-id': 'org-db',
      'wo.generation': '1',
      'wo.runtime': 'echo',
    });
    // Only the two documented variables reach the workspace.
    const inspect = await docker.getContainer(a.instanceId).inspect();
    const ours = (inspect.Config.Env ?? []).filter((e) => e.startsWith('WO_')).map((e) => e.split('=')[0]);
    expect(ours.sort()).toEqual(['WO_BOOTSTRAP_TOKEN', 'WO_PLATFORM_URL']);
    expect(inspect.HostConfig.ExtraHosts).toEqual(['host.docker.internal:host-gateway']);
    expect((await volumesOf(workspaceId)).sort()).toEqual([
      `ws-${workspaceId}-configs`,
      `ws-${workspaceId}-workspace`,
    ]);
    console.log(
      `concurrent start (create + start): ${startMs} ms, bootstrap tokens minted: ${mintsAfterFirst}`,
    );
  });

  it('status, describe and the published endpoint', async () => {
    expect(await backend.status(workspaceId, 1)).toBe('running');
    expect(await backend.status(workspaceId, 2)).toBe('missing');
    const info = await backend.describe(workspaceId, 1);
    expect(info?.status).toBe('running');
    expect(info?.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await waitFor('agent /health through the published port', async () => {
      const res = await get(`${info?.endpoint}/health`);
      return res.status === 200 ? (JSON.parse(res.body) as Record<string, unknown>) : null;
    });
    // /health says nothing about the workspace; the card (behind the proxy's credential) does.
    expect(health).toEqual({ ok: true });
    const credential = registry.workspaces.get(workspaceId)!.bundle.agentCredential;
    const card = await get(`${info?.endpoint}/.well-known/agent.json`, {
      'x-wo-agent-credential': credential,
    });
    expect(card.status).toBe(200);
    expect(JSON.parse(card.body)).toMatchObject({
      capabilities: { extensions: [{ params: { workspaceId, generation: 1 } }] },
    });
    expect(await backend.describe(workspaceId, 2)).toBeNull();
  });

  it('readFile returns files the agent wrote and refuses bad paths', async () => {
    const config = await waitFor('config.yaml to be written', async () => {
      try {
        return await backend.readFile(workspaceId, 1, '/configs', 'config.yaml');
      } catch (err) {
        if (err instanceof BackendError && err.code === 'not_found') return null;
        throw err;
      }
    });
    expect(config.toString()).toBe(configYaml);
    expect((await backend.readFile(workspaceId, 1, '/configs', './notes//hello.txt')).toString()).toBe('hi');

    for (const bad of ['../etc/passwd', 'notes/../../etc/passwd', '/etc/passwd', 'a\0b', '', '.', 'a\\b']) {
      await expect(backend.readFile(workspaceId, 1, '/configs', bad), bad).rejects.toMatchObject({
        code: 'invalid_path',
      });
    }
    await expect(backend.readFile(workspaceId, 1, '/etc' as '/configs', 'passwd')).rejects.toMatchObject({
      code: 'invalid_path',
    });
    await expect(backend.readFile(workspaceId, 1, '/configs', 'notes')).rejects.toMatchObject({
      code: 'invalid_path',
    });
    await expect(backend.readFile(workspaceId, 1, '/configs', 'nope.txt')).rejects.toMatchObject({
      code: 'not_found',
    });

    // A symlink planted in the workspace is refused, not followed.
    const pack = tar.pack();
    pack.entry({ name: 'escape-link', type: 'symlink', linkname: '/etc/passwd' });
    pack.finalize();
    // @types/tar-stream's Pack lacks legacy Readable members in its typings; it is a real Readable.
    await docker
      .getContainer(`ws-${workspaceId}-g1`)
      .putArchive(pack as unknown as NodeJS.ReadableStream, { path: '/workspace' });
    await expect(backend.readFile(workspaceId, 1, '/workspace', 'escape-link')).rejects.toMatchObject({
      code: 'invalid_path',
    });
    // No container of that generation: not running (as on ec2), not a missing file.
    await expect(backend.readFile(workspaceId, 9, '/configs', 'config.yaml')).rejects.toMatchObject({
      code: 'not_running',
    });
  });

  it('bootLog returns the console text; missing → empty', async () => {
    const log = await waitFor('the agent to log its boot', async () => {
      const text = await backend.bootLog(workspaceId, 1);
      return text.includes('phase platform-health-ok') ? text : null;
    });
    expect(log).toContain('agent: first boot');
    expect(log).not.toContain(`bt:${workspaceId}`);
    expect(await backend.bootLog(workspaceId, 9)).toBe('');
  });

  it('listManaged includes the container with its identity', async () => {
    const all = await backend.listManaged();
    const mine = all.filter((r) => r.workspaceId === workspaceId);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ workspaceId, orgId: 'org-db', generation: 1, status: 'running' });
    expect(mine[0]?.createdAt).toBeInstanceOf(Date);
    expect(Math.abs(Date.now() - (mine[0]?.createdAt.getTime() ?? 0))).toBeLessThan(5 * 60_000);
  });

  it('stop → stopped; start again → same container running, no new bootstrap token', async () => {
    const before = await backend.describe(workspaceId, 1);
    await backend.stop(workspaceId, 1);
    expect(await backend.status(workspaceId, 1)).toBe('stopped');
    expect((await backend.describe(workspaceId, 1))?.endpoint).toBeNull();
    await backend.stop(workspaceId, 1); // already stopped: fine
    await backend.stop(workspaceId, 9); // missing: fine
    // Files stay readable while stopped (docker cp works on stopped containers).
    expect((await backend.readFile(workspaceId, 1, '/configs', 'config.yaml')).toString()).toBe(configYaml);

    const mintsBefore = mints;
    const after = await backend.start(spec());
    expect(after.instanceId).toBe(before?.instanceId);
    expect(after.status).toBe('running');
    expect(after.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(mints).toBe(mintsBefore);
    expect(await backend.status(workspaceId, 1)).toBe('running');
  });

  it('an agent that dies leaves its container exited: the daemon does not restart it', async () => {
    // The entity owns every restart (a new generation, counted by the restart policy); a daemon
    // restarting the container in place would do it behind the entity's back.
    const name = `ws-${workspaceId}-g1`;
    expect((await docker.getContainer(name).inspect()).HostConfig.RestartPolicy?.Name).toBe('no');
    await killContainerAgent(docker, name);
    const state = await waitFor('the container to exit', async () => {
      const s = (await docker.getContainer(name).inspect()).State;
      return s.Status === 'exited' ? s : null;
    });
    expect(state.ExitCode).toBe(137);
    expect((await docker.getContainer(name).inspect()).RestartCount).toBe(0);
    expect(await backend.status(workspaceId, 1)).toBe('stopped');
    // A start (the user's, on an offline workspace) brings the same container back.
    const again = await backend.start(spec());
    expect(again.status).toBe('running');
    expect(await backend.status(workspaceId, 1)).toBe('running');
  });

  it('a missing image is a permanent error', async () => {
    const bad = new DockerBackend({ docker, image: () => 'wo-no-such-image:nope' });
    await expect(bad.start(spec(badImageWorkspace))).rejects.toMatchObject({
      code: 'permanent',
      message: 'image wo-no-such-image:nope not found',
    });
    expect(await containersOf(badImageWorkspace)).toEqual([]);
  });

  it('remove: one generation, then everything with volumes; repeating succeeds', async () => {
    await backend.remove(workspaceId, { generation: 7 }); // missing generation: fine
    expect(await backend.status(workspaceId, 1)).toBe('running');

    await backend.remove(workspaceId, { volumes: true });
    expect(await containersOf(workspaceId)).toEqual([]);
    expect(await volumesOf(workspaceId)).toEqual([]);
    expect(await backend.status(workspaceId, 1)).toBe('missing');
    expect(await backend.describe(workspaceId, 1)).toBeNull();
    expect((await backend.listManaged()).filter((r) => r.workspaceId === workspaceId)).toEqual([]);
    await backend.remove(workspaceId, { volumes: true });
    await backend.remove(workspaceId, { generation: 1 });
  });

  it('an unreachable daemon answers status unknown, never missing', async () => {
    const broken = new DockerBackend({
      docker: new Dockerode({ socketPath: '/nonexistent/docker.sock' }),
      image: 'x',
    });
    expect(await broken.status(workspaceId, 1)).toBe('unknown');
    await expect(broken.describe(workspaceId, 1)).rejects.toMatchObject({ code: 'transient' });
    await expect(broken.ping()).rejects.toMatchObject({ code: 'transient' });
    await expect(broken.listManaged()).rejects.toMatchObject({ code: 'transient' });
    await expect(backend.ping()).resolves.toBeUndefined();
  });

  it('remove never touches a container or volume that only shares the name (no managed-by label)', async () => {
    const id = `${workspaceId}-foreign`;
    const volumes = [`ws-${id}-configs`, `ws-${id}-workspace`];
    for (const name of volumes) await docker.createVolume({ Name: name });
    const foreign = await docker.createContainer({
      name: `ws-${id}-g1`,
      Image: image,
      Labels: { 'wo.test': 'foreign' },
    });
    try {
      await backend.remove(id, { generation: 1 });
      await backend.remove(id, { volumes: true });
      expect((await foreign.inspect()).Name).toBe(`/ws-${id}-g1`);
      expect((await volumesOf(id)).sort()).toEqual([...volumes].sort());
    } finally {
      await foreign.remove({ force: true }).catch(() => undefined);
      for (const name of volumes)
        await docker
          .getVolume(name)
          .remove()
          .catch(() => undefined);
    }
  });

  it('a stopped container whose org network was removed (and made again) is recreated on the next start', async () => {
    const id = `${workspaceId}-net`;
    const orgId = `org-net-${randomBytes(3).toString('hex')}`;
    const netSpec: StartSpec = { ...spec(id), orgId };
    const backend = new DockerBackend({ docker, image, stopTimeoutSeconds: 5, networking: 'per-org' });
    try {
      const first = await backend.start(netSpec);
      await backend.stop(id, 1);
      // What a concurrent delete of the org's last other workspace does between a stop and a start.
      await docker.getNetwork(orgNetworkName(orgId)).remove();
      // The old container points at the removed network's id: it goes, and the retry makes it anew.
      await expect(backend.start(netSpec)).rejects.toMatchObject({ code: 'transient' });
      const again = await backend.start(netSpec);
      expect(again.instanceId).not.toBe(first.instanceId);
      const info = await docker.getContainer(again.instanceId).inspect();
      expect(info.State.Running || info.State.Restarting).toBe(true);
      expect(Object.keys(info.NetworkSettings.Networks)).toEqual([orgNetworkName(orgId)]);
    } finally {
      await backend.remove(id, { volumes: true }).catch(() => undefined);
    }
  });

  it('auto placement follows the daemon: its default bridge while ICC is off there, else the org bridge', async () => {
    const id = `${workspaceId}-auto`;
    const orgId = `org-auto-${randomBytes(3).toString('hex')}`;
    try {
      const started = await backend.start({ ...spec(id), orgId });
      const info = await docker.getContainer(started.instanceId).inspect();
      const expected = (await iccIsOff(docker, 'bridge')) ? 'bridge' : orgNetworkName(orgId);
      expect(Object.keys(info.NetworkSettings.Networks)).toEqual([expected]);
      const orgBridges = (await docker.listNetworks({ filters: { name: [orgNetworkName(orgId)] } })).length;
      expect(orgBridges).toBe(expected === 'bridge' ? 0 : 1);
      expect(await backend.describePlacement()).toEqual({
        setting: 'auto',
        placement:
          expected === 'bridge'
            ? 'shared network bridge (ICC off)'
            : "a bridge per org (the default bridge's ICC is on)",
      });
    } finally {
      await backend.remove(id, { volumes: true }).catch(() => undefined);
    }
  });

  it('a shared network is used only while its ICC is off: refused when on or missing, and a stopped container on it re-placed once it is on', async () => {
    const id = `${workspaceId}-shared`;
    const net = `wo-test-shared-${randomBytes(3).toString('hex')}`;
    const onSpec: StartSpec = { ...spec(id), orgId: `org-shared-${randomBytes(3).toString('hex')}` };
    const shared = new DockerBackend({ docker, image, stopTimeoutSeconds: 5, networking: { shared: net } });
    const names = async () => (await containersOf(id)).map((c) => c.Names[0]);
    try {
      await expect(shared.start(onSpec)).rejects.toMatchObject({
        code: 'permanent',
        message: `network ${net} (DOCKER_WORKSPACE_NETWORK) does not exist`,
      });
      expect(await shared.describePlacement()).toEqual({
        setting: net,
        placement: `none: network ${net} does not exist`,
      });
      await docker.createNetwork({ Name: net, Driver: 'bridge' }); // ICC on: the daemon's default
      await expect(shared.start(onSpec)).rejects.toMatchObject({
        code: 'permanent',
        message: expect.stringContaining(
          `network ${net} (DOCKER_WORKSPACE_NETWORK) lets its containers reach each other`,
        ),
      });
      expect(await names()).toEqual([]);
      await docker.getNetwork(net).remove();

      await docker.createNetwork({ Name: net, Driver: 'bridge', Options: { [ICC_OPTION]: 'false' } });
      expect((await shared.describePlacement()).placement).toBe(`shared network ${net} (ICC off)`);
      const first = await shared.start(onSpec);
      const placed = await docker.getContainer(first.instanceId).inspect();
      expect(Object.keys(placed.NetworkSettings.Networks)).toEqual([net]);
      expect(placed.HostConfig.NetworkMode).toBe(net);
      expect(await docker.listNetworks({ filters: { name: [orgNetworkName(onSpec.orgId)] } })).toEqual([]);

      // Made again under its name with ICC on (a stopped container holds no endpoint on it): the
      // daemon would start the old container there; the backend removes it instead.
      await shared.stop(id, 1);
      await docker.getNetwork(net).remove();
      await docker.createNetwork({ Name: net, Driver: 'bridge' });
      await expect(shared.start(onSpec)).rejects.toMatchObject({
        code: 'transient',
        message: expect.stringContaining('no longer off'),
      });
      expect(await names()).toEqual([]);
      // The retried start places it anew, and this network is refused now.
      await expect(shared.start(onSpec)).rejects.toMatchObject({ code: 'permanent' });
      expect(await names()).toEqual([]);
    } finally {
      await shared.remove(id, { volumes: true }).catch(() => undefined);
      await docker
        .getNetwork(net)
        .remove()
        .catch(() => undefined);
    }
  });
});
