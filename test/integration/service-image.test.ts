/**
 * The production service image (Dockerfile + Dockerfile.base, built FROM scratch by
 * src/cli/service-image.ts) really runs the product: the API and a worker as two containers of the
 * same image, against this run's PostgreSQL and Temporal dev server, provision a Docker workspace
 * to `online` and delete it; Docker's own HEALTHCHECK (no shell in the image) reports both healthy.
 *
 * Networking: as docker-compose.yml runs them (the network mode is read from the file): in the
 * host's network namespace, where the run's services listen on loopback and where a Docker
 * workspace's agent is published (127.0.0.1 only). The workspace's agent is then called through
 * both containers: an A2A message through the API, a schedule run delivered by the worker. They
 * reach dockerd through its socket, as the user of the image (10001) with the socket's group added:
 * nothing runs as root.
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DockerBackend } from '../../src/backends/docker/docker-backend.js';
import { ensureServiceImage, SERVICE_UID } from '../../src/cli/service-image.js';
import '../setup/context.js';
import { freePort } from '../setup/free-port.js';
import { waitFor } from '../setup/wait-for.js';
import { messageSend } from '../support/a2a-message.js';
import { loadCompose } from '../support/compose-file.js';
import { ApiClient } from '../support/stack.js';

const DOCKER_SOCKET = '/var/run/docker.sock';
const RUN_ID = randomBytes(4).toString('hex');
const docker = new Dockerode();
const created: Dockerode.Container[] = [];
const composeServices = loadCompose().services;

let image = '';
let port = 0;
let api: ApiClient;
const adminToken = randomBytes(16).toString('hex');
// One key for both containers, as in a deployment: the worker opens what the API sealed.
const secretsKey = randomBytes(32).toString('base64');

function serviceEnv(): string[] {
  const env = {
    DATABASE_URL: inject('DATABASE_URL'),
    TEMPORAL_ADDRESS: inject('TEMPORAL_ADDRESS'),
    TEMPORAL_NAMESPACE: inject('TEMPORAL_NAMESPACE'),
    RUNTIME_IMAGE: inject('RUNTIME_IMAGE'),
    ADMIN_TOKEN: adminToken,
    SECRETS_KEY: secretsKey,
    // Its own task queue: no other file's worker takes these workflows, nor this worker theirs.
    TASK_QUEUE: `svc-image-${RUN_ID}`,
    PORT: String(port),
    BOOT_DEADLINE_MS: '60000',
    HEARTBEAT_INTERVAL_MS: '1000',
    SWEEP_SCHEDULES: 'off',
    AUTO_RESTART_POLICY: 'never',
    LOG_LEVEL: 'info',
  };
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

async function startContainer(role: 'api' | 'worker', cmd?: string[]): Promise<Dockerode.Container> {
  const container = await docker.createContainer({
    name: `wo-svc-test-${role}-${RUN_ID}`,
    Image: image,
    ...(cmd ? { Cmd: cmd } : {}),
    Env: serviceEnv(),
    Labels: { 'wo.test': 'service-image' },
    HostConfig: {
      NetworkMode: composeServices[role]!.network_mode,
      Binds: [`${DOCKER_SOCKET}:${DOCKER_SOCKET}`],
      GroupAdd: [String(statSync(DOCKER_SOCKET).gid)],
    },
  });
  created.push(container);
  await container.start();
  return container;
}

async function logsOf(container: Dockerode.Container): Promise<string> {
  const raw = await container.logs({ stdout: true, stderr: true, tail: 200 });
  // Multiplexed frames (8-byte headers) read as text well enough for a failure message.
  return raw.toString('utf8');
}

/** Throws (ending a wait at once) when the container has exited, with its last output. */
async function assertRunning(container: Dockerode.Container): Promise<Dockerode.ContainerInspectInfo> {
  const info = await container.inspect();
  if (!info.State.Running) {
    throw new Error(
      `${info.Name} exited (${info.State.ExitCode}):\n${(await logsOf(container)).slice(-3000)}`,
    );
  }
  return info;
}

async function waitHealthy(container: Dockerode.Container): Promise<void> {
  await waitFor(
    async () => {
      const info = await assertRunning(container);
      const health = info.State.Health;
      if (health?.Status === 'unhealthy') {
        throw new Error(`unhealthy: ${JSON.stringify(health.Log?.slice(-1))}`);
      }
      return health?.Status === 'healthy';
    },
    { timeoutMs: 90_000, intervalMs: 500, describe: 'the container HEALTHCHECK to pass' },
  );
}

let apiContainer: Dockerode.Container;
let workerContainer: Dockerode.Container;

/** Set when this file built the service image's tag (rather than finding it): removed at the end. */
let builtImage = false;

beforeAll(async () => {
  const tagsBefore = new Set(
    (await docker.listImages({ filters: { reference: ['wo-service:*'] } })).flatMap((i) => i.RepoTags ?? []),
  );
  image = await ensureServiceImage({ docker, log: (line) => console.log(`[service-image] ${line}`) });
  builtImage = !tagsBefore.has(image);
  port = await freePort();
  api = new ApiClient(`http://127.0.0.1:${port}`);
  apiContainer = await startContainer('api');
  workerContainer = await startContainer('worker', ['node', 'dist/worker/main.js']);
  await waitFor(
    async () => {
      await assertRunning(apiContainer);
      const res = await fetch(`${api.url}/healthz`, { signal: AbortSignal.timeout(1000) });
      return res.ok;
    },
    { timeoutMs: 60_000, describe: 'the API container to answer /healthz' },
  );
  await waitFor(
    async () => {
      await assertRunning(workerContainer);
      return (await logsOf(workerContainer)).includes('worker running');
    },
    { timeoutMs: 90_000, describe: 'the worker container to poll its task queue' },
  );
});

/** Orgs this file made: what a failed test leaves of their workspaces is removed at the end. */
const orgIds: string[] = [];

/**
 * Containers, volumes and the network of `orgId`'s workspaces, removed by the docker backend's own
 * sweep by org (what an org delete ends with), from this process.
 */
const removeOrgResources = (orgId: string) =>
  new DockerBackend({ docker, image: inject('RUNTIME_IMAGE') }).removeOrg(orgId);

afterAll(async () => {
  await Promise.all(created.map((c) => c.remove({ force: true }).catch(() => undefined)));
  // After the service's containers: nothing is creating anything for these orgs any more.
  for (const orgId of orgIds) await removeOrgResources(orgId);
  if (!builtImage) return;
  // The service tag goes if this file made it. Not forced: an image another run's container still
  // uses stays. The base (wo-service-base:<hash>: node + node_modules) stays as the build cache,
  // so the next run rebuilds only the application layer.
  const mine = new Set(created.map((c) => c.id));
  await waitFor(
    async () => {
      const using = await docker.listContainers({ all: true, filters: { ancestor: [image] } });
      return !using.some((c) => mine.has(c.Id));
    },
    { timeoutMs: 30_000, describe: "this file's containers to be gone" },
  );
  await docker
    .getImage(image)
    .remove()
    .catch((err: unknown) => console.warn(`[service-image] kept ${image}: ${String(err)}`));
});

describe('service image', () => {
  it('runs as the unprivileged user, with Node 24 and no shell', async () => {
    const info = await docker.getImage(image).inspect();
    expect(info.Config.User).toBe(`${SERVICE_UID}:${SERVICE_UID}`);
    expect(info.Config.Cmd).toEqual(['node', 'dist/api/main.js']);
    expect(info.Config.Healthcheck?.Test?.[0]).toBe('CMD'); // exec form: no /bin/sh needed
    const exec = await apiContainer.exec({
      Cmd: [
        'node',
        '-e',
        'console.log(process.version, process.getuid(), require("fs").existsSync("/bin/sh"))',
      ],
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await exec.start({});
    const out = await new Promise<string>((resolve) => {
      let text = '';
      stream.on('data', (d: Buffer) => (text += d.toString('utf8')));
      stream.on('end', () => resolve(text));
    });
    expect(out).toMatch(new RegExp(`v24\\.\\d+\\.\\d+ ${SERVICE_UID} false`));
  });

  it('the API is ready once the containerized worker polls the task queue', async () => {
    const ready = await waitFor(
      async () => {
        const res = await api.call('GET', '/readyz');
        if (res.status !== 200) throw new Error(`readyz ${res.status}: ${JSON.stringify(res.body)}`);
        return res.body as { ok: boolean; checks: Record<string, string> };
      },
      { timeoutMs: 60_000, intervalMs: 500, describe: '/readyz to answer 200' },
    );
    expect(ready.checks).toMatchObject({
      database: 'ok',
      temporal: 'ok',
      worker: 'ok',
      'backend:docker': 'ok',
    });
  });

  it('provisions a workspace to online through the containers, calls its agent through both, and deletes it', async () => {
    const org = await api.call('POST', '/v1/orgs', { token: adminToken, body: { name: `svc-${RUN_ID}` } });
    expect(org.status).toBe(201);
    orgIds.push(org.body.id as string);
    const key = org.body.apiKey as string;
    const create = await api.callRetrying503('POST', '/v1/workspaces', {
      token: key,
      body: { name: 'in-a-container', backend: 'docker' },
    });
    expect(create.status).toBe(202);
    const id = create.body.id as string;

    const statusIs = (want: string) =>
      waitFor(
        async () => {
          const res = await api.call('GET', `/v1/workspaces/${id}`, { token: key });
          if (res.status !== 200) throw new Error(`GET ${id}: ${res.status}`);
          if (res.body.status === 'failed') throw new Error(`failed: ${JSON.stringify(res.body)}`);
          if (res.body.status !== want) throw new Error(`now ${res.body.status}/${res.body.phase}`);
          return res.body;
        },
        { timeoutMs: 120_000, intervalMs: 300, describe: `workspace ${id} to reach ${want}` },
      );
    const online = await statusIs('online');
    expect(online.generation).toBeGreaterThanOrEqual(1);
    const running = await docker.listContainers({ filters: { label: [`wo.workspace-id=${id}`] } });
    expect(running).toHaveLength(1);

    // The API container reaches the agent at its recorded endpoint (the host's loopback).
    const sent = await api.call('POST', `/v1/workspaces/${id}/a2a`, {
      token: key,
      body: messageSend('through the containers'),
    });
    expect(sent.status, JSON.stringify(sent.body)).toBe(200);
    expect(sent.body.result.parts[0].text).toMatch(/received: through the containers$/);

    // So does the worker container: a schedule run is its A2A call to the agent.
    const schedules = `/v1/workspaces/${id}/schedules`;
    const schedule = await api.call('POST', schedules, {
      token: key,
      body: { cron: '0 0 1 1 *', prompt: 'from the worker' },
    });
    expect(schedule.status).toBe(201);
    const run = await api.callRetrying503('POST', `${schedules}/${schedule.body.id}/run`, { token: key });
    expect(run.status).toBe(202);
    const lastRun = await waitFor(
      async () => (await api.call('GET', `${schedules}/${schedule.body.id}`, { token: key })).body.lastRun,
      { timeoutMs: 60_000, intervalMs: 250, describe: "the schedule's run to end" },
    );
    expect(lastRun, JSON.stringify(lastRun)).toMatchObject({ status: 'ok' });

    const del = await api.callRetrying503('DELETE', `/v1/workspaces/${id}`, { token: key });
    expect(del.status).toBe(202);
    await statusIs('deleted');
    expect(await docker.listContainers({ all: true, filters: { label: [`wo.workspace-id=${id}`] } })).toEqual(
      [],
    );
  });

  it("Docker's HEALTHCHECK passes for the API and for the worker", async () => {
    await waitHealthy(apiContainer);
    await waitHealthy(workerContainer);
    const [apiHealth, workerHealth] = await Promise.all([apiContainer.inspect(), workerContainer.inspect()]);
    expect(apiHealth.State.Health?.Log?.at(-1)?.Output).toContain('api: healthy');
    expect(workerHealth.State.Health?.Log?.at(-1)?.Output).toContain('worker: healthy');
  });
});
