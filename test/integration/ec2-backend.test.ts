/**
 * Ec2Backend against a real moto_server (the EC2 API; it boots nothing), started by this file.
 * What needs a booted instance (SSH file reads, the agent coming up) belongs to the parity suite on
 * ec2-sim; here: the API contract — idempotent launch, tags, user-data, state transitions, removal,
 * error mapping, and the zero-value backend.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  CreateSubnetCommand,
  CreateVpcCommand,
  DeleteSecurityGroupCommand,
  DeleteVolumeCommand,
  DescribeImagesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type EC2Client,
  type Instance,
  type RunInstancesCommandInput,
  type Volume,
} from '@aws-sdk/client-ec2';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, type StartSpec } from '../../src/backends/backend.js';
import { createEc2Client } from '../../src/backends/ec2/client.js';
import { Ec2Backend, type Ec2BackendOptions } from '../../src/backends/ec2/ec2-backend.js';
import { MemorySshKeyStore } from '../../src/backends/ssh-keys.js';
import { startEc2Sim, type Ec2Sim } from '../ec2-sim/sim.js';
import { ensureVmImage } from '../ec2-sim/vm-image.js';
import { canConnect, freePort } from '../setup/free-port.js';
import { REPO_ROOT, stopChild } from '../setup/services.js';
import { waitFor } from '../setup/wait-for.js';
import { fakeBundle, startFakeRegistry, type FakeRegistry } from '../support/fake-registry.js';

const CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const REGION = 'us-east-1';

interface Moto {
  endpoint: string;
  stop(): Promise<void>;
}

/** moto_server on a free port, with AMI validation on (off by default: any ImageId would launch). */
async function startMoto(): Promise<Moto> {
  const bin = join(REPO_ROOT, '.venv-tools', 'bin', 'moto_server');
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    let output = '';
    const child: ChildProcess = spawn(bin, ['-H', '127.0.0.1', '-p', String(port)], {
      env: { ...process.env, MOTO_ENABLE_AMI_VALIDATION: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    try {
      await waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error(`moto_server exited ${child.exitCode}: ${output}`);
          return canConnect(port);
        },
        { timeoutMs: 30_000, intervalMs: 100, describe: `moto_server on 127.0.0.1:${port}` },
      );
      return { endpoint: `http://127.0.0.1:${port}`, stop: () => stopChild(child, 5_000) };
    } catch (err) {
      lastError = err;
      await stopChild(child, 1_000);
    }
  }
  throw lastError;
}

/** A stand-in EC2 endpoint answering every call with one error, counting the attempts. */
async function startErrorEndpoint(
  status: number,
  code: string,
): Promise<{ url: string; hits: () => number; close(): Promise<void> }> {
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits++;
    req.resume();
    req.on('end', () => {
      res.writeHead(status, { 'content-type': 'text/xml' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>simulated ${code}</Message></Error></Errors><RequestID>r-${hits}</RequestID></Response>`,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits: () => hits,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const suffix = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
const workspaceId = `e2t${suffix}`;
const badWorkspace = `e2b${suffix}`;
/** A second workspace for a generation 2 launched while the main one's generation 1 runs. */
const retryWorkspace = `e2r${suffix}`;
const orgId = 'org-e2';
const platformUrl = 'http://172.31.0.1:18080';
// Values the platform would deliver through the bootstrap fetch: never in user-data.
const configYaml = 'runtime: echo\nmodel: some-model\n';
const secretValue = `sk-live-${randomBytes(12).toString('hex')}`;

let moto: Moto;
let client: EC2Client;
let imageId: string;
let subnetId: string;
const keys = new MemorySshKeyStore();
const minted: string[] = [];
let backend: Ec2Backend;

const spec = (generation = 1, id = workspaceId): StartSpec => ({
  workspaceId: id,
  orgId,
  generation,
  runtime: 'echo',
  platformUrl,
  mintBootstrapToken: async () => {
    const token = `wo_boot_${id}_${generation}_${minted.length}`;
    minted.push(token);
    return token;
  },
});

const options = (overrides: Partial<Ec2BackendOptions> = {}): Ec2BackendOptions => ({
  client,
  keys,
  imageId,
  instanceType: 't3.micro',
  subnetId,
  pollIntervalMs: 100,
  terminateWaitMs: 15_000,
  transitionWaitMs: 15_000,
  connectTimeoutMs: 2_000,
  ...overrides,
});

/** Raw view of EC2, not through the backend. */
async function instancesTagged(id: string, states?: string[]): Promise<Instance[]> {
  const res = await client.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: 'tag:WorkspaceId', Values: [id] },
        ...(states ? [{ Name: 'instance-state-name', Values: states }] : []),
      ],
    }),
  );
  return (res.Reservations ?? []).flatMap((r) => r.Instances ?? []);
}
const LIVE = ['pending', 'running', 'stopping', 'stopped'];

/** The workspace's data volumes, raw from EC2. */
async function dataVolumesOf(id: string): Promise<Volume[]> {
  const res = await client.send(
    new DescribeVolumesCommand({
      Filters: [
        { Name: 'tag:WorkspaceId', Values: [id] },
        { Name: 'tag:Role', Values: ['workspace-data'] },
      ],
    }),
  );
  return res.Volumes ?? [];
}

async function userDataOf(instanceId: string): Promise<string> {
  const res = await client.send(
    new DescribeInstanceAttributeCommand({ InstanceId: instanceId, Attribute: 'userData' }),
  );
  return Buffer.from(res.UserData?.Value ?? '', 'base64').toString('utf8');
}

beforeAll(async () => {
  const t0 = Date.now();
  moto = await startMoto();
  client = createEc2Client({
    region: REGION,
    endpoint: moto.endpoint,
    credentials: CREDENTIALS,
    maxAttempts: 2,
  });
  const images = await client.send(new DescribeImagesCommand({}));
  const image = images.Images?.find((i) => /ubuntu/i.test(i.Name ?? '')) ?? images.Images?.[0];
  if (!image?.ImageId) throw new Error('moto lists no AMI');
  imageId = image.ImageId;
  // With an explicit subnet moto assigns the private IP from it (172.31.0.0/20 in the default VPC);
  // without one it reports the default subnet but invents a 10.x address outside it.
  const subnets = await client.send(
    new DescribeSubnetsCommand({ Filters: [{ Name: 'default-for-az', Values: ['true'] }] }),
  );
  subnetId = [...(subnets.Subnets ?? [])].sort((a, b) =>
    (a.AvailabilityZone ?? '').localeCompare(b.AvailabilityZone ?? ''),
  )[0]?.SubnetId as string;
  backend = new Ec2Backend(options());
  console.log(
    `moto_server ${moto.endpoint} ready in ${Date.now() - t0} ms; AMI ${imageId} (${image.Name}); subnet ${subnetId}`,
  );
}, 60_000);

afterAll(async () => {
  for (const id of [workspaceId, badWorkspace, retryWorkspace])
    await backend?.remove(id, { volumes: true }).catch(() => undefined);
  await moto?.stop();
}, 60_000);

describe('Ec2Backend against moto', () => {
  it('start is idempotent per generation: repeated and concurrent starts share one instance and one token', async () => {
    const t0 = Date.now();
    const first = await backend.start(spec());
    const firstMs = Date.now() - t0;
    const again = await backend.start(spec());
    const [c, d] = await Promise.all([backend.start(spec()), backend.start(spec())]);
    expect(again.instanceId).toBe(first.instanceId);
    expect(c.instanceId).toBe(first.instanceId);
    expect(d.instanceId).toBe(first.instanceId);
    expect(minted).toHaveLength(1);
    expect(first.status).toBe('running');

    const live = await instancesTagged(workspaceId, LIVE);
    expect(live.map((i) => i.InstanceId)).toEqual([first.instanceId]);
    // The endpoint is the private IP EC2 reports, inside the subnet the backend launched into.
    expect(first.endpoint).toBe(`http://${live[0]?.PrivateIpAddress}:8080`);
    expect(first.endpoint).toMatch(/^http:\/\/172\.31\.\d+\.\d+:8080$/);
    expect(live[0]?.SubnetId).toBe(subnetId);
    expect(live[0]?.ClientToken).toBe(`${workspaceId}-1`);
    console.log(
      `first start (RunInstances): ${firstMs} ms; instance ${first.instanceId} at ${first.endpoint}`,
    );
  });

  it('a second backend (a fresh worker process) with the same key store finds the instance', async () => {
    const before = (await backend.describe(workspaceId, 1))?.instanceId;
    const fresh = new Ec2Backend(
      options({
        client: createEc2Client({ region: REGION, endpoint: moto.endpoint, credentials: CREDENTIALS }),
      }),
    );
    const info = await fresh.start(spec());
    expect(info.instanceId).toBe(before);
    expect(minted).toHaveLength(1);
    expect(await instancesTagged(workspaceId, LIVE)).toHaveLength(1);
  });

  it('tags the instance (and its volumes) at launch; the data volume is attached at /dev/sdf', async () => {
    const [instance] = await instancesTagged(workspaceId, LIVE);
    const tags = Object.fromEntries((instance?.Tags ?? []).map((t) => [t.Key, t.Value]));
    expect(tags).toMatchObject({
      ManagedBy: 'workspace-orchestrator',
      WorkspaceId: workspaceId,
      OrgId: orgId,
      Generation: '1',
      Name: `ws-${workspaceId}-g1`,
    });
    const volumes = await client.send(
      new DescribeVolumesCommand({ Filters: [{ Name: 'tag:WorkspaceId', Values: [workspaceId] }] }),
    );
    // The root volume and the workspace's data volume, both with this instance.
    expect(volumes.Volumes?.map((v) => v.Attachments?.[0]?.InstanceId)).toEqual([
      instance?.InstanceId,
      instance?.InstanceId,
    ]);
    const data = volumes.Volumes?.filter((v) => v.Tags?.some((t) => t.Key === 'Role'));
    expect(data).toHaveLength(1);
    expect(data?.[0]?.Attachments?.[0]?.Device).toBe('/dev/sdf');
    expect(data?.[0]?.Tags).toEqual(
      expect.arrayContaining([
        { Key: 'ManagedBy', Value: 'workspace-orchestrator' },
        { Key: 'WorkspaceId', Value: workspaceId },
        { Key: 'OrgId', Value: orgId },
        { Key: 'Role', Value: 'workspace-data' },
      ]),
    );
    // Every generation uses it: it carries no Generation tag.
    expect(data?.[0]?.Tags?.some((t) => t.Key === 'Generation')).toBe(false);
    expect(await userDataOf(instance!.InstanceId!)).toContain(`WO_DATA_VOLUME='${data?.[0]?.VolumeId}'`);
  });

  it("the launch maps the image's root device with DeleteOnTermination true (moto's AMIs all say false)", async () => {
    // Two workspaces: a workspace's generations never run at once (its data volume is with one).
    const id = `${badWorkspace}dot`;
    const id2 = `${badWorkspace}dou`;
    // The requests as sent: moto gives an instance launched without a mapping a root volume that
    // is deleted on termination whatever the AMI says, so only the request shows what EC2 would do.
    const sent: Array<{ command: string; input: unknown }> = [];
    const watched = createEc2Client({ region: REGION, endpoint: moto.endpoint, credentials: CREDENTIALS });
    watched.middlewareStack.add(
      (next, context) => async (args) => {
        sent.push({ command: context.commandName ?? '', input: args.input });
        return next(args);
      },
      { step: 'initialize' },
    );
    const image = (await client.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images![0]!;
    const amiRoot = image.BlockDeviceMappings?.find((m) => m.DeviceName === image.RootDeviceName);
    console.log(`AMI ${imageId}: root ${image.RootDeviceName}, its mapping ${JSON.stringify(amiRoot?.Ebs)}`);
    expect(image.RootDeviceName).toMatch(/^\/dev\//);

    const launching = new Ec2Backend(options({ client: watched }));
    try {
      const first = await launching.start(spec(1, id));
      await launching.start(spec(1, id2));
      const runs = sent.filter((r) => r.command === 'RunInstancesCommand');
      expect(runs.map((r) => (r.input as RunInstancesCommandInput).BlockDeviceMappings)).toEqual(
        [1, 2].map(() => [
          {
            DeviceName: image.RootDeviceName,
            Ebs: { DeleteOnTermination: true, VolumeSize: amiRoot!.Ebs!.VolumeSize },
          },
        ]),
      );
      // ClientToken idempotency is untouched.
      expect(runs.map((r) => (r.input as RunInstancesCommandInput).ClientToken)).toEqual([
        `${id}-1`,
        `${id2}-1`,
      ]);
      // One image lookup per image id, however many launches.
      expect(sent.filter((r) => r.command === 'DescribeImagesCommand')).toHaveLength(1);

      // What EC2 made of it: the instance's root device, deleted on termination, is the tagged volume.
      const [instance] = (await instancesTagged(id, LIVE)).filter((i) => i.InstanceId === first.instanceId);
      expect(instance?.RootDeviceName).toBe(image.RootDeviceName);
      const root = instance?.BlockDeviceMappings?.find((m) => m.DeviceName === instance.RootDeviceName);
      expect(root?.Ebs?.DeleteOnTermination).toBe(true);
      const volumes = await client.send(new DescribeVolumesCommand({ VolumeIds: [root!.Ebs!.VolumeId!] }));
      expect(volumes.Volumes?.[0]?.State).toBe('in-use');
      expect(volumes.Volumes?.[0]?.Tags).toEqual(
        expect.arrayContaining([
          { Key: 'ManagedBy', Value: 'workspace-orchestrator' },
          { Key: 'WorkspaceId', Value: id },
          { Key: 'Generation', Value: '1' },
        ]),
      );

      // Terminated: the root volume went with its instance, the data volume with the workspace.
      await launching.remove(id, { volumes: true });
      const left = await client.send(
        new DescribeVolumesCommand({ Filters: [{ Name: 'tag:WorkspaceId', Values: [id] }] }),
      );
      expect(left.Volumes).toEqual([]);
    } finally {
      await launching.remove(id, { volumes: true });
      await launching.remove(id2, { volumes: true });
    }
  });

  it('user-data (read back from EC2) holds the URL, the token and the key, and nothing else secret', async () => {
    const [instance] = await instancesTagged(workspaceId, LIVE);
    const userData = await userDataOf(instance!.InstanceId!);
    const pair = await keys.get(workspaceId, 1);
    expect(pair).not.toBeNull();
    expect(userData).toContain(`WO_PLATFORM_URL='${platformUrl}'`);
    expect(userData).toContain(`WO_BOOTSTRAP_TOKEN='${minted[0]}'`);
    expect(userData).toContain(pair!.publicKey);
    expect(userData).not.toContain('PRIVATE KEY');
    expect(userData).not.toContain(pair!.privateKey.split('\n')[1]!);
    expect(userData).not.toContain(configYaml.trim().split('\n')[0]!);
    expect(userData).not.toContain('config.yaml');
    expect(userData).not.toContain(secretValue);
  });

  it('moto and ClientToken: observed directly; the tag lookup makes start idempotent either way', async () => {
    const token = `raw-${suffix}`;
    const run = () =>
      client.send(
        new RunInstancesCommand({
          ImageId: imageId,
          InstanceType: 't3.micro',
          MinCount: 1,
          MaxCount: 1,
          ClientToken: token,
        }),
      );
    const a = (await run()).Instances?.[0]?.InstanceId;
    const b = (await run()).Instances?.[0]?.InstanceId;
    const honoured = a === b;
    console.log(
      `moto RunInstances with one ClientToken twice: ${a} / ${b} → ClientToken ${honoured ? 'honoured' : 'NOT honoured'}`,
    );
    await client.send(new TerminateInstancesCommand({ InstanceIds: [...new Set([a!, b!])] }));

    // A retried activity whose first attempt stored the key pair but never launched: the stored
    // key is the one that goes into user-data.
    const stored = {
      privateKey: 'unused-here',
      publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPreStoredKeyForRetryTestxxxxxxxxxxxxxxx retry',
    };
    await keys.put(retryWorkspace, 2, stored);
    const mintsBefore = minted.length;
    const info = await backend.start(spec(2, retryWorkspace));
    expect(minted.length).toBe(mintsBefore + 1);
    expect(await userDataOf(info.instanceId)).toContain(stored.publicKey);
    expect((await backend.start(spec(2, retryWorkspace))).instanceId).toBe(info.instanceId);
    await backend.remove(retryWorkspace, { volumes: true });
    expect(await backend.status(retryWorkspace, 2)).toBe('missing');
    expect(await backend.status(workspaceId, 1)).toBe('running');
  });

  it('status and describe follow running → stop → stopped → start → running, without a new token', async () => {
    const before = await backend.describe(workspaceId, 1);
    expect(before?.status).toBe('running');
    expect(await backend.status(workspaceId, 1)).toBe('running');
    expect(await backend.status(workspaceId, 5)).toBe('missing');
    expect(await backend.describe(workspaceId, 5)).toBeNull();

    await backend.stop(workspaceId, 1);
    expect(await backend.status(workspaceId, 1)).toBe('stopped');
    const stopped = await backend.describe(workspaceId, 1);
    expect(stopped).toMatchObject({ instanceId: before?.instanceId, status: 'stopped', endpoint: null });
    await backend.stop(workspaceId, 1); // already stopped: fine
    await backend.stop(workspaceId, 9); // missing: fine

    const mintsBefore = minted.length;
    const after = await backend.start(spec());
    expect(after.instanceId).toBe(before?.instanceId);
    expect(after.status).toBe('running');
    expect(after.endpoint).toBe(before?.endpoint);
    expect(minted.length).toBe(mintsBefore);
    expect(await backend.status(workspaceId, 1)).toBe('running');
  });

  it('listManaged lists the instance with its identity', async () => {
    const mine = (await backend.listManaged()).filter((r) => r.workspaceId === workspaceId);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ workspaceId, orgId, generation: 1, status: 'running' });
    expect(mine[0]?.instanceId).toBe((await backend.describe(workspaceId, 1))?.instanceId);
    expect(Math.abs(Date.now() - (mine[0]?.createdAt.getTime() ?? 0))).toBeLessThan(5 * 60_000);
  });

  it('bootLog returns the console output as text; a missing generation gives ""', async () => {
    const log = await backend.bootLog(workspaceId, 1);
    expect(typeof log).toBe('string');
    expect(log.length).toBeGreaterThan(0);
    console.log(
      `moto GetConsoleOutput (canned, base64-decoded), first line: ${JSON.stringify(log.split('\n')[0])}`,
    );
    expect(await backend.bootLog(workspaceId, 9)).toBe('');
  });

  it('readFile refuses bad paths before any call; no such instance or not running → not_running', async () => {
    for (const bad of ['../etc/passwd', 'notes/../../etc/passwd', '/etc/passwd', 'a\0b', '', '.', 'a\\b']) {
      await expect(backend.readFile(workspaceId, 1, '/configs', bad), bad).rejects.toMatchObject({
        code: 'invalid_path',
      });
    }
    await expect(backend.readFile(workspaceId, 1, '/etc' as '/configs', 'passwd')).rejects.toMatchObject({
      code: 'invalid_path',
    });
    await expect(backend.readFile(workspaceId, 9, '/configs', 'config.yaml')).rejects.toMatchObject({
      code: 'not_running',
    });
    await backend.stop(workspaceId, 1);
    await expect(backend.readFile(workspaceId, 1, '/configs', 'config.yaml')).rejects.toMatchObject({
      code: 'not_running',
    });
    await backend.start(spec());
  });

  it('remove: a missing generation is fine; everything (+ keys) terminates; repeating succeeds', async () => {
    const instanceId = (await backend.describe(workspaceId, 1))?.instanceId;
    await backend.remove(workspaceId, { generation: 7 });
    expect(await backend.status(workspaceId, 1)).toBe('running');

    const t0 = Date.now();
    await backend.remove(workspaceId, { volumes: true });
    const removeMs = Date.now() - t0;
    const all = await instancesTagged(workspaceId);
    expect(all.find((i) => i.InstanceId === instanceId)?.State?.Name).toBe('terminated');
    expect(all.every((i) => i.State?.Name === 'terminated')).toBe(true);
    expect(await backend.status(workspaceId, 1)).toBe('missing');
    expect(await backend.describe(workspaceId, 1)).toBeNull();
    expect((await backend.listManaged()).filter((r) => r.workspaceId === workspaceId)).toEqual([]);
    expect(await keys.get(workspaceId, 1)).toBeNull();
    await backend.remove(workspaceId, { volumes: true });
    await backend.remove(workspaceId, { generation: 1 });
    await backend.stop(workspaceId, 1);
    console.log(`remove (terminate + wait for terminated): ${removeMs} ms`);
  });

  it('root volumes left available (terminated without DeleteOnTermination) are listed and go with their generation, workspace or org', async () => {
    const leakWs = `${badWorkspace}lv`;
    const leakOrg = `org-e2lv${suffix}`;
    // An instance launched as an AMI with DeleteOnTermination=false would launch it (the backend
    // before it stated the flag), then terminated: its tagged root volume stays, `available`.
    const leak = async (
      workspace: string,
      generation: string | null,
      org = orgId,
      managedBy = 'workspace-orchestrator',
    ): Promise<string> => {
      const tags = [
        { Key: 'ManagedBy', Value: managedBy },
        { Key: 'WorkspaceId', Value: workspace },
        { Key: 'OrgId', Value: org },
        ...(generation === null ? [] : [{ Key: 'Generation', Value: generation }]),
      ];
      const image = (await client.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images![0]!;
      const run = await client.send(
        new RunInstancesCommand({
          ImageId: imageId,
          InstanceType: 't3.micro',
          MinCount: 1,
          MaxCount: 1,
          SubnetId: subnetId,
          BlockDeviceMappings: [
            { DeviceName: image.RootDeviceName, Ebs: { DeleteOnTermination: false, VolumeSize: 8 } },
          ],
          // The instance without the managed mark: only its volume is ours to find.
          TagSpecifications: [{ ResourceType: 'volume', Tags: tags }],
        }),
      );
      const instance = run.Instances![0]!;
      await client.send(new TerminateInstancesCommand({ InstanceIds: [instance.InstanceId!] }));
      const volumeId = instance.BlockDeviceMappings?.[0]?.Ebs?.VolumeId;
      if (!volumeId) throw new Error('moto launched no root volume');
      return volumeId;
    };
    const stateOf = async (volumeId: string): Promise<Volume['State'] | 'gone'> => {
      try {
        return (await client.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }))).Volumes?.[0]?.State;
      } catch (err) {
        if ((err as { name?: string }).name === 'InvalidVolume.NotFound') return 'gone';
        throw err;
      }
    };

    const g1 = await leak(leakWs, '1');
    const g2 = await leak(leakWs, '2');
    const noGeneration = await leak(leakWs, null);
    const foreign = await leak(leakWs, '1', orgId, 'someone-else');
    const ofOrg = await leak(`${leakWs}o`, '1', leakOrg);
    expect(await stateOf(g1)).toBe('available');
    try {
      // Attached ones (the running instance of `workspaceId`) are never listed; nor is one without
      // the generation tag, nor another's.
      const listed = (await backend.listManagedVolumes()).filter((v) => v.workspaceId.startsWith(leakWs));
      expect(listed.map((v) => [v.name, v.workspaceId, v.orgId, v.generation]).sort()).toEqual(
        [
          [g1, leakWs, orgId, 1],
          [g2, leakWs, orgId, 2],
          [ofOrg, `${leakWs}o`, leakOrg, 1],
        ].sort(),
      );
      expect(Math.abs(Date.now() - listed[0]!.createdAt.getTime())).toBeLessThan(5 * 60_000);
      expect((await backend.listManagedVolumes()).map((v) => v.workspaceId)).not.toContain(workspaceId);

      // A generation's removal takes its volume alone; the workspace's takes the rest.
      await backend.remove(leakWs, { generation: 1 });
      expect([await stateOf(g1), await stateOf(g2)]).toEqual(['gone', 'available']);
      // The workspace's removal takes everything with its marks (as docker's takes its containers).
      await backend.remove(leakWs, { volumes: true });
      expect([await stateOf(g2), await stateOf(noGeneration)]).toEqual(['gone', 'gone']);
      await backend.remove(leakWs, { volumes: true }); // already gone: fine
      // Without our managed-by mark: never touched.
      expect(await stateOf(foreign)).toBe('available');

      // The org cascade's final sweep takes the org's.
      expect(await backend.removeOrg(leakOrg)).toEqual([ofOrg]);
      expect(await stateOf(ofOrg)).toBe('gone');
      expect(await backend.removeOrg(leakOrg)).toEqual([]);
    } finally {
      for (const v of [g1, g2, noGeneration, foreign, ofOrg]) {
        if ((await stateOf(v)) !== 'gone') await client.send(new DeleteVolumeCommand({ VolumeId: v }));
      }
    }
  });

  it('the data volume outlives its generations: the next one gets it attached; it goes with the workspace', async () => {
    const id = `${badWorkspace}dv`;
    const dataOf = () => dataVolumesOf(id);
    try {
      const g1 = await backend.start(spec(1, id));
      const [volume] = await dataOf();
      expect(volume?.Attachments?.map((a) => a.InstanceId)).toEqual([g1.instanceId]);
      expect(volume?.Size).toBe(8);
      expect(volume?.Encrypted).toBe(true);
      // A retried start (a crashed worker's) neither makes another volume nor attaches it twice.
      await backend.start(spec(1, id));
      expect((await dataOf()).map((v) => [v.VolumeId, v.Attachments?.length])).toEqual([
        [volume!.VolumeId, 1],
      ]);

      // A generation still holding it keeps the next one from starting (the entity removes the
      // old one first); the error says who holds it.
      const impatient = new Ec2Backend(options({ transitionWaitMs: 300 }));
      await expect(impatient.start(spec(2, id))).rejects.toMatchObject({
        code: 'transient',
        message: expect.stringContaining(`attached to ${g1.instanceId}`),
      });
      await backend.remove(id, { generation: 2 });

      // The entity's order: the old generation goes, the new one gets the same volume.
      await backend.remove(id, { generation: 1 });
      const kept = await dataOf();
      expect(kept.map((v) => [v.VolumeId, v.State])).toEqual([[volume!.VolumeId, 'available']]);
      // Unattached, it is listed for the orphan sweep with its workspace and no generation.
      expect((await backend.listManagedVolumes()).filter((v) => v.workspaceId === id)).toEqual([
        { name: volume!.VolumeId, workspaceId: id, orgId, createdAt: expect.any(Date) },
      ]);
      const g2 = await backend.start(spec(2, id));
      expect((await dataOf()).map((v) => [v.VolumeId, v.Attachments?.map((a) => a.InstanceId)])).toEqual([
        [volume!.VolumeId, [g2.instanceId]],
      ]);
      expect(await userDataOf(g2.instanceId)).toContain(`WO_DATA_VOLUME='${volume!.VolumeId}'`);

      // Removing the workspace without its volumes keeps the data; with them, it goes.
      await backend.remove(id);
      expect((await dataOf()).map((v) => v.State)).toEqual(['available']);
      await backend.remove(id, { volumes: true });
      expect(await dataOf()).toEqual([]);
    } finally {
      await backend.remove(id, { volumes: true });
    }
  });

  it('a stopped generation whose data volume was deleted behind the platform is not started: permanent, the reason named', async () => {
    const id = `${badWorkspace}dg`;
    const dataOf = () => dataVolumesOf(id);
    try {
      const g1 = await backend.start(spec(1, id));
      await backend.stop(id, 1);
      const [volume] = await dataOf();
      await client.send(new DetachVolumeCommand({ VolumeId: volume!.VolumeId!, InstanceId: g1.instanceId }));
      await client.send(new DeleteVolumeCommand({ VolumeId: volume!.VolumeId! }));
      // Its user-data ran on the first boot and will not again: a new volume would never be mounted.
      await expect(backend.start(spec(1, id))).rejects.toMatchObject({
        code: 'permanent',
        message: expect.stringContaining('data volume is gone'),
      });
      expect((await instancesTagged(id, LIVE)).map((i) => [i.InstanceId, i.State?.Name])).toEqual([
        [g1.instanceId, 'stopped'],
      ]);
      expect(await dataOf()).toEqual([]);
      // A new generation launches with a new volume.
      await backend.remove(id, { generation: 1 });
      const g2 = await backend.start(spec(2, id));
      expect((await dataOf()).map((v) => v.Attachments?.map((a) => a.InstanceId))).toEqual([[g2.instanceId]]);
    } finally {
      await backend.remove(id, { volumes: true });
    }
  });

  it('launch errors are permanent and name the EC2 code; nothing is left behind', async () => {
    const cases: Array<[Partial<Ec2BackendOptions>, RegExp]> = [
      [{ imageId: 'ami-00000000deadbeef' }, /InvalidAMIID\.(NotFound|Malformed)/],
      [{ subnetId: 'subnet-00000000deadbeef' }, /InvalidSubnetID\.NotFound/],
      [{ securityGroupIds: ['sg-00000000deadbeef'] }, /InvalidGroup\.NotFound/],
    ];
    for (const [overrides, code] of cases) {
      const bad = new Ec2Backend(options(overrides));
      const err = await bad.start(spec(1, badWorkspace)).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, code.source).toBeInstanceOf(BackendError);
      expect((err as BackendError).code, code.source).toBe('permanent');
      expect((err as BackendError).message, code.source).toMatch(code);
      console.log(`launch error → ${(err as BackendError).code}: ${(err as BackendError).message}`);
    }
    expect(await instancesTagged(badWorkspace)).toEqual([]);
  });

  it('the managed security group, gone since it was cached (deleted, or the region lost it), is made again by the next launch', async () => {
    const id = `${badWorkspace}sg`;
    const groupsOf = async (generation: number) =>
      (await instancesTagged(id, LIVE))
        .filter((i) => i.Tags?.some((t) => t.Key === 'Generation' && t.Value === String(generation)))
        .flatMap((i) => (i.SecurityGroups ?? []).map((g) => g.GroupId));
    const managed = new Ec2Backend(options({ platformCidr: '172.31.255.254/32' }));
    await managed.start(spec(1, id));
    const [first] = await groupsOf(1);
    expect(first).toMatch(/^sg-/);
    await managed.remove(id, { generation: 1 });
    await client.send(new DeleteSecurityGroupCommand({ GroupId: first! }));

    const info = await managed.start(spec(2, id));
    expect(info.status).toBe('running');
    const [second] = await groupsOf(2);
    expect(second).toMatch(/^sg-/);
    expect(second).not.toBe(first);
    const group = await client.send(new DescribeSecurityGroupsCommand({ GroupIds: [second!] }));
    expect(group.SecurityGroups?.[0]?.GroupName).toBe('wo-workspaces');
    await managed.remove(id, { volumes: true });
  });

  it('an unreachable EC2 endpoint: status unknown (never missing), everything else transient', async () => {
    const closedPort = await freePort();
    const dead = new Ec2Backend(
      options({
        client: createEc2Client({
          region: REGION,
          endpoint: `http://127.0.0.1:${closedPort}`,
          credentials: CREDENTIALS,
          maxAttempts: 2,
        }),
      }),
    );
    const t0 = Date.now();
    expect(await dead.status(workspaceId, 1)).toBe('unknown');
    const statusMs = Date.now() - t0;
    for (const [name, call] of [
      ['describe', () => dead.describe(workspaceId, 1)],
      ['listManaged', () => dead.listManaged()],
      ['ping', () => dead.ping()],
      ['stop', () => dead.stop(workspaceId, 1)],
      ['remove', () => dead.remove(workspaceId)],
      ['bootLog', () => dead.bootLog(workspaceId, 1)],
      ['start', () => dead.start(spec(1, badWorkspace))],
    ] as Array<[string, () => Promise<unknown>]>) {
      await expect(call(), name).rejects.toMatchObject({ code: 'transient' });
    }
    await expect(backend.ping()).resolves.toBeUndefined();
    console.log(`status against a closed port (2 attempts): unknown in ${statusMs} ms`);
  });

  it('throttling is retried by the SDK with backoff, then reads as unknown / transient; AuthFailure is permanent', async () => {
    const throttling = await startErrorEndpoint(503, 'RequestLimitExceeded');
    const auth = await startErrorEndpoint(401, 'AuthFailure');
    try {
      const throttled = new Ec2Backend(
        options({
          client: createEc2Client({
            region: REGION,
            endpoint: throttling.url,
            credentials: CREDENTIALS,
            maxAttempts: 3,
          }),
        }),
      );
      const t0 = Date.now();
      expect(await throttled.status(workspaceId, 1)).toBe('unknown');
      const ms = Date.now() - t0;
      expect(throttling.hits()).toBe(3);
      await expect(throttled.describe(workspaceId, 1)).rejects.toMatchObject({
        code: 'transient',
        message: expect.stringContaining('RequestLimitExceeded'),
      });
      console.log(`throttled status: 3 attempts with backoff in ${ms} ms → unknown`);

      const denied = new Ec2Backend(
        options({
          client: createEc2Client({
            region: REGION,
            endpoint: auth.url,
            credentials: CREDENTIALS,
            maxAttempts: 3,
          }),
        }),
      );
      await expect(denied.ping()).rejects.toMatchObject({
        code: 'permanent',
        message: expect.stringContaining('AuthFailure'),
      });
      expect(auth.hits()).toBe(1); // not retried
      expect(await denied.status(workspaceId, 1)).toBe('unknown');
    } finally {
      await throttling.close();
      await auth.close();
    }
  });
});

/**
 * The same backend on ec2-sim (test/ec2-sim): moto's instances boot as containers of the VM image
 * at their private IPs, the init runs the user-data once and /etc/wo/boot.d/*.sh at every boot.
 * This proves the user-data end to end (boot service, reboot re-registration) and reads files over
 * real SSH/SFTP with a pinned host key. The sim gets its own VPC CIDR and Docker network so it
 * cannot collide with another sim on the shared 172.31.0.0/16 network.
 */
describe('Ec2Backend on ec2-sim: user-data boots the agent; files over SSH', () => {
  const docker = new Dockerode();
  const simWorkspace = `e2s${suffix}`;
  const bootToken = `wo_boot_sim_${suffix}`;
  const simMinted: string[] = [];
  let sim: Ec2Sim | undefined;
  let networkName: string | undefined;
  let registry: FakeRegistry;
  let simBackend: Ec2Backend;
  let instanceId: string;

  const simSpec = (): StartSpec => ({
    workspaceId: simWorkspace,
    orgId,
    generation: 1,
    runtime: 'echo',
    platformUrl: `http://${sim!.platformHost}:${registry.port}`,
    mintBootstrapToken: async () => {
      simMinted.push(bootToken);
      return bootToken;
    },
  });

  /** readFile, retried while the instance boots (SSH not up yet, agent not done writing). */
  const readWhenReady = async (root: '/configs' | '/workspace', path: string): Promise<Buffer> => {
    const result = await waitFor(
      async (): Promise<{ data: Buffer } | { error: unknown }> => {
        try {
          return { data: await simBackend.readFile(simWorkspace, 1, root, path) };
        } catch (err) {
          const retry = ['transient', 'not_found', 'not_running'];
          if (err instanceof BackendError && retry.includes(err.code)) throw err;
          return { error: err }; // anything else will not heal by waiting
        }
      },
      { timeoutMs: 60_000, intervalMs: 250, describe: `${root}/${path} over SSH` },
    );
    if ('error' in result) throw result.error;
    return result.data;
  };

  const containerRunning = async (): Promise<boolean> => {
    const id = await sim!.instanceContainer(instanceId);
    if (!id) return false;
    return (await docker.getContainer(id).inspect()).State.Running;
  };

  const exec = async (cmd: string): Promise<void> => {
    const id = await sim!.instanceContainer(instanceId);
    const e = await docker
      .getContainer(id!)
      .exec({ Cmd: ['/bin/sh', '-c', cmd], AttachStdout: true, AttachStderr: true });
    const stream = await e.start({});
    stream.resume();
    await new Promise((resolve) => stream.on('end', resolve));
    expect((await e.inspect()).ExitCode).toBe(0);
  };

  beforeAll(async () => {
    const t0 = Date.now();
    const vmImage = await ensureVmImage();
    registry = await startFakeRegistry();
    // A VPC of our own in our moto, mirrored by a Docker network of our own.
    let lastError: unknown;
    for (let attempt = 0; attempt < 4 && !sim; attempt++) {
      const second = 200 + Math.floor(Math.random() * 50);
      const cidr = `10.${second}.0.0/16`;
      const vpc = await client.send(new CreateVpcCommand({ CidrBlock: cidr }));
      const subnet = await client.send(
        new CreateSubnetCommand({ VpcId: vpc.Vpc!.VpcId!, CidrBlock: `10.${second}.0.0/24` }),
      );
      const name = `wo-ec2-sim-test-${suffix}-${attempt}`;
      try {
        sim = await startEc2Sim({
          motoEndpoint: moto.endpoint,
          vmImage,
          network: { name, subnet: cidr },
          pollMs: 200,
        });
        networkName = name;
        simBackend = new Ec2Backend(
          options({
            client: createEc2Client({
              region: REGION,
              endpoint: sim.endpoint,
              credentials: CREDENTIALS,
              maxAttempts: 2,
            }),
            subnetId: subnet.Subnet!.SubnetId!,
            imageId: sim.amiId,
          }),
        );
      } catch (err) {
        lastError = err; // most likely the CIDR overlaps a network that exists here: try another
      }
    }
    if (!sim) throw lastError;
    registry.add(
      fakeBundle(simWorkspace, {
        orgId,
        generation: 1,
        configHash: 'h-sim',
        configYaml,
        files: [{ path: 'notes/hello.txt', contentBase64: Buffer.from('hi').toString('base64') }],
        workspaceToken: `wt-${suffix}`,
        heartbeatIntervalMs: 1_000,
      }),
      { bootstrapToken: bootToken },
    );
    console.log(
      `ec2-sim ready in ${Date.now() - t0} ms (${vmImage}, network ${networkName} ${sim.subnetCidr})`,
    );
  }, 600_000);

  afterAll(async () => {
    await simBackend?.remove(simWorkspace, { volumes: true }).catch(() => undefined);
    await sim?.stop();
    if (networkName)
      await docker
        .getNetwork(networkName)
        .remove()
        .catch(() => undefined);
    await registry?.stop();
  }, 120_000);

  it('user-data installs the agent as a boot service: it fetches its bundle once and goes healthy', async () => {
    const t0 = Date.now();
    const info = await simBackend.start(simSpec());
    instanceId = info.instanceId;
    await waitFor(() => registry.phases(simWorkspace).includes('platform-health-ok'), {
      timeoutMs: 60_000,
      intervalMs: 200,
      describe: 'the agent to report platform-health-ok',
    });
    const readyMs = Date.now() - t0;
    expect(registry.bootstrapCalls.filter((c) => c.workspaceId === simWorkspace)).toEqual([
      { workspaceId: simWorkspace, auth: 'bootstrap', status: 200 },
    ]);
    // The endpoint is the private IP EC2 reports, and the agent answers there.
    expect(info.endpoint).toMatch(/^http:\/\/10\.\d+\.0\.\d+:8080$/);
    // /health answers anyone but says nothing; the card needs the proxy's credential and names the workspace.
    const credential = registry.workspaces.get(simWorkspace)!.bundle.agentCredential;
    const getJson = (path: string) =>
      waitFor(
        () =>
          new Promise<Record<string, unknown> | null>((resolve) => {
            const req = http.get(
              `${info.endpoint}${path}`,
              { timeout: 2_000, headers: { 'x-wo-agent-credential': credential } },
              (res) => {
                let body = '';
                res.on('data', (c: Buffer) => (body += c.toString()));
                res.on('end', () =>
                  resolve(res.statusCode === 200 ? (JSON.parse(body) as Record<string, unknown>) : null),
                );
              },
            );
            req.on('timeout', () => req.destroy());
            req.on('error', () => resolve(null));
          }),
        { timeoutMs: 20_000, describe: `agent ${path} at the recorded endpoint` },
      );
    expect(await getJson('/health')).toEqual({ ok: true });
    expect(await getJson('/.well-known/agent.json')).toMatchObject({
      capabilities: { extensions: [{ params: { workspaceId: simWorkspace, generation: 1 } }] },
    });

    const log = await simBackend.bootLog(simWorkspace, 1);
    expect(log).toContain('wo-user-data: agent installed as /etc/wo/boot.d/agent.sh');
    expect(log).toContain('user-data exited 0');
    expect(log).not.toContain(bootToken);
    expect(simMinted).toHaveLength(1);
    console.log(`ec2-sim: start → platform-health-ok in ${readyMs} ms`);
  });

  it('readFile reads over SFTP with the generation key and pins the host key the console shows', async () => {
    const t0 = Date.now();
    expect((await readWhenReady('/configs', 'config.yaml')).toString()).toBe(configYaml);
    const firstReadMs = Date.now() - t0;
    expect((await simBackend.readFile(simWorkspace, 1, '/configs', './notes//hello.txt')).toString()).toBe(
      'hi',
    );
    const pinned = await keys.getHostKey(instanceId);
    expect(pinned).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    // Same fingerprint as ssh-keygen -l printed on the console at boot.
    expect(await simBackend.bootLog(simWorkspace, 1)).toContain(pinned!);
    console.log(`first SSH read: ${firstReadMs} ms; host key ${pinned}`);
  });

  it('readFile refuses symlink escapes, directories and bad paths; follows links inside the root', async () => {
    await exec(
      'ln -s /etc/passwd /workspace/escape-link && ln -s /etc /workspace/etc-dir && ' +
        // Absolute: /workspace is a mount (in ec2-sim a link to the volume's directory), so `..` from it
        // is not the same place on both.
        'ln -s /configs/config.yaml /workspace/sibling-link && ln -s config.yaml /configs/alias.yaml',
    );
    for (const [root, path] of [
      ['/workspace', 'escape-link'],
      ['/workspace', 'etc-dir/passwd'],
      ['/workspace', 'sibling-link'],
      ['/configs', 'notes'],
      ['/configs', '../etc/passwd'],
      ['/configs', '/etc/passwd'],
      ['/configs', 'a\0b'],
    ] as Array<['/configs' | '/workspace', string]>) {
      await expect(simBackend.readFile(simWorkspace, 1, root, path), `${root} ${path}`).rejects.toMatchObject(
        {
          code: 'invalid_path',
        },
      );
    }
    expect((await simBackend.readFile(simWorkspace, 1, '/configs', 'alias.yaml')).toString()).toBe(
      configYaml,
    );
    await expect(simBackend.readFile(simWorkspace, 1, '/configs', 'nope.txt')).rejects.toMatchObject({
      code: 'not_found',
    });
  });

  it('a host key that differs from the pinned one is refused as permanent', async () => {
    const pinned = await keys.getHostKey(instanceId);
    await keys.putHostKey(instanceId, 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    try {
      await expect(simBackend.readFile(simWorkspace, 1, '/configs', 'config.yaml')).rejects.toMatchObject({
        code: 'permanent',
        message: expect.stringContaining('host key changed'),
      });
    } finally {
      await keys.putHostKey(instanceId, pinned!);
    }
    expect((await simBackend.readFile(simWorkspace, 1, '/configs', 'config.yaml')).toString()).toBe(
      configYaml,
    );
  });

  it('stop/start: the boot service brings the agent back; it re-registers with its workspace token', async () => {
    await simBackend.stop(simWorkspace, 1);
    expect(await simBackend.status(simWorkspace, 1)).toBe('stopped');
    await waitFor(async () => !(await containerRunning()), {
      timeoutMs: 30_000,
      describe: 'the sim to stop the instance container',
    });
    const healthyBefore = registry.bootEvents.filter((e) => e.body.phase === 'platform-health-ok').length;
    const t0 = Date.now();
    const info = await simBackend.start(simSpec());
    expect(info.instanceId).toBe(instanceId);
    await waitFor(
      () =>
        registry.bootEvents.filter(
          (e) => e.workspaceId === simWorkspace && e.body.phase === 'platform-health-ok',
        ).length > healthyBefore,
      { timeoutMs: 60_000, intervalMs: 200, describe: 'the agent to come back healthy after start' },
    );
    const calls = registry.bootstrapCalls.filter((c) => c.workspaceId === simWorkspace);
    expect(calls.map((c) => `${c.auth}:${c.status}`)).toEqual(['bootstrap:200', 'workspace:200']);
    expect(simMinted).toHaveLength(1);
    // Same instance, same host key: the pin still holds after the reboot.
    expect((await readWhenReady('/configs', 'config.yaml')).toString()).toBe(configYaml);
    console.log(`ec2-sim: stop/start → healthy again in ${Date.now() - t0} ms`);
  });
});
