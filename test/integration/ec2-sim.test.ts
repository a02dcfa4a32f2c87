/**
 * ec2-sim against the real moto of globalSetup, the real dockerd and a real sshd: the EC2 API
 * through the sim's endpoint, instances booted as containers at their PrivateIpAddress, user-data
 * run once like cloud-init, SSH (exec, SFTP, PTY), console output, stop/start/terminate, knobs.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CreateSubnetCommand,
  CreateVpcCommand,
  DescribeImagesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  EC2Client,
  GetConsoleOutputCommand,
  ImportKeyPairCommand,
  RebootInstancesCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import Dockerode from 'dockerode';
import { Client, type ClientChannel, type SFTPWrapper } from 'ssh2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  LABEL_INSTANCE,
  LABEL_SIM,
  LABEL_WORKSPACE,
  motoClient,
  startEc2Sim,
  type Ec2Sim,
} from '../ec2-sim/sim.js';
import { generateParsableKeyPair } from '../../src/backends/ec2/ec2-backend.js';
import { ensureVmImage } from '../ec2-sim/vm-image.js';
import { waitFor } from '../setup/wait-for.js';

const docker = new Dockerode();
const runTag = `sim${Date.now().toString(36)}`;
// The product's generator: ssh2's own makes about 1 pair in 256 that nothing can parse.
const keys = generateParsableKeyPair('ec2-sim-test');
const launched: string[] = [];

let sim: Ec2Sim;
let ec2: EC2Client;
let platform: http.Server;
let platformPort: number;
/** Launched straight into moto before the sim started: like what an earlier test file left running. */
let preexisting: string;

const log = (line: string): void => {
  if (process.env.EC2_SIM_TEST_VERBOSE) console.log(`[ec2-sim] ${line}`);
};

async function launch(
  workspaceId: string,
  userData: string | undefined,
  extra: Partial<RunInstancesCommandInput> = {},
): Promise<{ id: string; ip: string }> {
  const out = await ec2.send(
    new RunInstancesCommand({
      ImageId: sim.amiId,
      InstanceType: 't3.small',
      MinCount: 1,
      MaxCount: 1,
      SubnetId: sim.subnetId,
      UserData: userData === undefined ? undefined : Buffer.from(userData).toString('base64'),
      TagSpecifications: [
        {
          ResourceType: 'instance',
          Tags: [
            { Key: 'ManagedBy', Value: 'workspace-orchestrator' },
            { Key: 'WorkspaceId', Value: workspaceId },
          ],
        },
      ],
      ...extra,
    }),
  );
  const inst = out.Instances?.[0];
  if (!inst?.InstanceId) throw new Error('RunInstances returned no instance');
  launched.push(inst.InstanceId);
  return { id: inst.InstanceId, ip: inst.PrivateIpAddress ?? '' };
}

async function instanceState(id: string): Promise<string | undefined> {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  return out.Reservations?.[0]?.Instances?.[0]?.State?.Name;
}

async function consoleText(id: string): Promise<string> {
  const out = await ec2.send(new GetConsoleOutputCommand({ InstanceId: id }));
  return Buffer.from(out.Output ?? '', 'base64').toString('utf8');
}

function waitForConsole(id: string, text: string, timeoutMs = 30_000): Promise<string> {
  return waitFor(async () => ((await consoleText(id)).includes(text) ? consoleText(id) : false), {
    timeoutMs,
    intervalMs: 200,
    describe: `console of ${id} to contain ${JSON.stringify(text)}`,
  });
}

/** The id of the instance's container once it runs (it is listed from its creation on). */
/** The sim has looked at the instance and decided not to boot it (instanceNotes says why). */
function waitForNote(id: string, text: string, on: () => Ec2Sim = () => sim): Promise<string> {
  return waitFor(
    () =>
      on()
        .instanceNotes(id)
        .find((n) => n.includes(text)),
    {
      timeoutMs: 30_000,
      intervalMs: 100,
      describe: `a sim note on ${id} containing ${JSON.stringify(text)}`,
    },
  );
}

function waitForContainer(id: string, timeoutMs = 30_000, of: Ec2Sim = sim): Promise<string> {
  return waitFor(
    async () => {
      const container = await of.instanceContainer(id);
      return container && (await containerInfo(container))?.State.Running ? container : null;
    },
    { timeoutMs, describe: `a running container for ${id}` },
  );
}

async function containerInfo(containerId: string): Promise<Dockerode.ContainerInspectInfo | null> {
  try {
    return await docker.getContainer(containerId).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw err;
  }
}

interface Ssh {
  client: Client;
  hostKey: Buffer;
}

function sshConnect(host: string): Promise<Ssh> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let hostKey: Buffer | undefined;
    client.once('ready', () => resolve({ client, hostKey: hostKey as Buffer }));
    client.once('error', reject);
    client.connect({
      host,
      port: 22,
      username: 'root',
      privateKey: keys.privateKey,
      readyTimeout: 5_000,
      hostVerifier: (key: Buffer) => {
        hostKey = key;
        return true;
      },
    });
  });
}

/** Retries until sshd answers and accepts the key (it starts with the instance, the key comes later). */
function sshWhenReady(host: string): Promise<Ssh> {
  return waitFor(() => sshConnect(host), {
    timeoutMs: 30_000,
    intervalMs: 250,
    attemptTimeoutMs: 8_000,
    describe: `ssh root@${host}`,
  });
}

function exec(client: Client, command: string): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, stream) => {
      if (err) return reject(err);
      let stdout = '';
      let stderr = '';
      let code = -1;
      stream.on('data', (d: Buffer) => (stdout += d.toString()));
      stream.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      stream.on('exit', (c: number | null) => (code = c ?? -1));
      stream.on('close', () => resolve({ stdout, stderr, code }));
    });
  });
}

function sftpOf(client: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp))));
}

/** Reads a PTY stream until `pattern` shows up in what arrived after `from`. */
function readUntil(stream: ClientChannel, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (d: Buffer): void => {
      seen += d.toString();
      const m = pattern.exec(seen);
      if (m) {
        clearTimeout(timer);
        stream.off('data', onData);
        resolve(m[0]);
      }
    };
    const timer = setTimeout(() => {
      stream.off('data', onData);
      reject(new Error(`PTY: no ${String(pattern)} within ${timeoutMs} ms; got ${JSON.stringify(seen)}`));
    }, timeoutMs);
    stream.on('data', onData);
  });
}

function hostKeyFromConsole(text: string): Buffer {
  const m = /-----BEGIN SSH HOST KEY KEYS-----\n(ssh-ed25519 (\S+)[^\n]*)\n/.exec(text);
  if (!m?.[2]) throw new Error(`no host key block in console:\n${text}`);
  return Buffer.from(m[2], 'base64');
}

beforeAll(async () => {
  const moto = motoClient(inject('MOTO_ENDPOINT'));
  const early = await moto.send(
    new RunInstancesCommand({
      ImageId: 'ami-04681a1dbd79675a5',
      MinCount: 1,
      MaxCount: 1,
      TagSpecifications: [
        {
          ResourceType: 'instance',
          Tags: [
            { Key: 'ManagedBy', Value: 'workspace-orchestrator' },
            { Key: 'WorkspaceId', Value: `${runTag}-early` },
          ],
        },
      ],
    }),
  );
  preexisting = early.Instances?.[0]?.InstanceId ?? '';
  launched.push(preexisting);
  moto.destroy();
  const vmImage = await ensureVmImage({ docker, runtimeImage: inject('RUNTIME_IMAGE'), log });
  sim = await startEc2Sim({ motoEndpoint: inject('MOTO_ENDPOINT'), docker, vmImage, pollMs: 100, log });
  ec2 = new EC2Client({
    endpoint: sim.endpoint,
    region: sim.region,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  // Stands in for the platform: a service on the host listening on every interface.
  platform = http.createServer((_req, res) => res.end('pong'));
  await new Promise<void>((resolve) => platform.listen(0, '0.0.0.0', resolve));
  platformPort = (platform.address() as AddressInfo).port;
});

afterAll(async () => {
  if (ec2 && launched.length > 0) {
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: launched })).catch(() => undefined);
    if (sim) {
      await waitFor(
        async () =>
          (await Promise.all(launched.map((id) => sim.instanceContainer(id)))).every((c) => c === null),
        { timeoutMs: 30_000, describe: 'every instance container to be removed after TerminateInstances' },
      ).catch((err: unknown) => console.error(String(err)));
    }
  }
  await sim?.stop();
  ec2?.destroy();
  await new Promise<void>((resolve) => (platform ? platform.close(() => resolve()) : resolve()));
  // Nothing of this run may outlive it.
  const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_SIM}=1`] } });
  for (const c of left.filter((c) => launched.includes(c.Labels[LABEL_INSTANCE] ?? ''))) {
    await docker.getContainer(c.Id).remove({ force: true, v: true });
  }
});

describe('moto as the sim sees it', () => {
  it('lists its default AMIs and the default VPC the network mirrors', async () => {
    const images = await ec2.send(new DescribeImagesCommand({ ImageIds: [sim.amiId] }));
    expect(images.Images?.[0]?.ImageId).toBe(sim.amiId);
    expect(sim.subnetCidr).toBe('172.31.0.0/16');
    expect(sim.platformHost).toBe('172.31.255.254');
    const net = (await docker.getNetwork(sim.network).inspect()) as Dockerode.NetworkInspectInfo;
    expect(net.IPAM?.Config?.[0]).toMatchObject({ Subnet: '172.31.0.0/16', Gateway: '172.31.255.254' });
  });

  it('does not honour ClientToken (same token twice = two instances); user-data round-trips', async () => {
    const token = `${runTag}-token`;
    sim.setKnobs(token, { neverBoots: true }); // nothing to boot here
    const a = await launch(`${runTag}-token`, 'echo one', { ClientToken: token });
    const b = await launch(`${runTag}-token`, 'echo one', { ClientToken: token });
    // Real EC2 would return the same instance: the product's idempotency must not rely on moto.
    expect(b.id).not.toBe(a.id);
    const attr = await ec2.send(
      new DescribeInstanceAttributeCommand({ InstanceId: a.id, Attribute: 'userData' }),
    );
    expect(Buffer.from(attr.UserData?.Value ?? '', 'base64').toString()).toBe('echo one');
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [a.id, b.id] }));
  });

  it('an instance launched without SubnetId gets a 10.x address: not booted, the sim says why', async () => {
    const inst = await launch(`${runTag}-nosubnet`, 'echo hi', { SubnetId: undefined });
    expect(inst.ip).toMatch(/^10\./);
    const note = await waitForNote(inst.id, 'cannot boot');
    expect(note).toContain(`PrivateIpAddress ${inst.ip} is not in the VPC`);
    expect(await sim.instanceContainer(inst.id)).toBeNull();
    expect(await consoleText(inst.id)).toBe(''); // as on EC2: nothing booted, nothing printed
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [inst.id] }));
  });

  it('an instance moto held before the sim started is not booted (adoptExisting is off)', async () => {
    await waitForNote(preexisting, 'before the sim started: not booted');
    expect(await instanceState(preexisting)).toBe('running');
    expect(await sim.instanceContainer(preexisting)).toBeNull();
  });

  it('GetConsoleOutput of an unknown instance is moto’s honest error', async () => {
    await expect(consoleText('i-0123456789abcdef0')).rejects.toMatchObject({
      name: 'InvalidInstanceID.NotFound',
    });
  });
});

describe('an instance through its whole life', () => {
  const workspaceId = `${runTag}-main`;
  const userData = `#!/bin/sh
set -e
echo "user-data: hello from cloud-init"
mkdir -p /root/.ssh
echo '${keys.publicKey}' >> /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
echo hello-from-user-data > /root/user-data-ran
echo run >> /root/user-data-runs
env > /root/user-data-env
cat > /etc/wo/boot.d/counter.sh <<'EOF'
echo boot >> /root/boot-count
echo "counter service ran"
EOF
# enable --now: boot.d runs it on the next boots, this boot starts it here
sh /etc/wo/boot.d/counter.sh
echo "user-data: done"
`;
  let inst: { id: string; ip: string };
  let containerId: string;
  let firstHostKey: Buffer;

  it('boots at exactly the PrivateIpAddress and runs the user-data once', async () => {
    inst = await launch(workspaceId, userData);
    expect(inst.ip).toMatch(/^172\.31\./);
    containerId = await waitForContainer(inst.id);
    const info = await containerInfo(containerId);
    expect(info?.Name).toBe(`/ec2-${inst.id}`);
    expect(info?.Config.Labels).toMatchObject({
      [LABEL_SIM]: '1',
      [LABEL_INSTANCE]: inst.id,
      [LABEL_WORKSPACE]: workspaceId,
    });
    expect(info?.NetworkSettings.Networks[sim.network]?.IPAddress).toBe(inst.ip);
    expect(info?.Config.Hostname).toBe(`ip-${inst.ip.replace(/\./g, '-')}`);

    const text = await waitForConsole(inst.id, '[wo-init] user-data exited 0');
    expect(text).toContain('[wo-init] boot 1');
    expect(text).toContain('user-data: hello from cloud-init');
    expect(text).toContain('counter service ran');
    expect(await instanceState(inst.id)).toBe('running');
  });

  it('serves SSH as root with the key the user-data installed: exec, SFTP, PTY with resize', async () => {
    const { client, hostKey } = await sshWhenReady(inst.ip);
    firstHostKey = hostKey;
    try {
      // The host key is the instance's own, and the console shows it (like cloud-init) for pinning.
      expect(hostKey.equals(hostKeyFromConsole(await consoleText(inst.id)))).toBe(true);

      const cat = await exec(client, 'cat /root/user-data-ran; wc -l < /root/user-data-runs');
      expect(cat.code).toBe(0);
      expect(cat.stdout.split('\n').map((s) => s.trim())).toEqual(['hello-from-user-data', '1', '']);
      // The sim's hand-over never reaches the instance's processes' environment.
      const env = await exec(client, 'cat /root/user-data-env');
      expect(env.stdout).toContain('HOME=/root');
      expect(env.stdout).not.toMatch(/WO_SIM/);

      const sftp = await sftpOf(client);
      await new Promise<void>((resolve, reject) =>
        sftp.writeFile('/root/from-sftp.txt', 'written over sftp\n', (err) =>
          err ? reject(err) : resolve(),
        ),
      );
      const read = await new Promise<string>((resolve, reject) =>
        sftp.readFile('/root/user-data-ran', (err, buf) => (err ? reject(err) : resolve(buf.toString()))),
      );
      expect(read).toBe('hello-from-user-data\n');
      const names = await new Promise<string[]>((resolve, reject) =>
        sftp.readdir('/root', (err, list) => (err ? reject(err) : resolve(list.map((e) => e.filename)))),
      );
      expect(names).toEqual(expect.arrayContaining(['from-sftp.txt', 'user-data-ran', 'boot-count', '.ssh']));
      expect((await exec(client, 'cat /root/from-sftp.txt')).stdout).toBe('written over sftp\n');
      sftp.end();

      const shell = await new Promise<ClientChannel>((resolve, reject) =>
        client.shell({ term: 'xterm', rows: 24, cols: 80 }, (err, s) => (err ? reject(err) : resolve(s))),
      );
      shell.write('stty size\n');
      expect(await readUntil(shell, /\b24 80\b/)).toBe('24 80');
      shell.setWindow(40, 132, 0, 0);
      shell.write('stty size\n');
      expect(await readUntil(shell, /\b40 132\b/)).toBe('40 132');
      shell.end('exit\n');

      // The host, as the instances see it: platformHost reaches a service listening on 0.0.0.0.
      const ping = await exec(
        client,
        `node -e "fetch('http://${sim.platformHost}:${platformPort}/').then(r => r.text()).then(t => console.log(t))"`,
      );
      expect(ping.stdout.trim()).toBe('pong');
    } finally {
      client.end();
    }
  });

  it('StopInstances stops the container, StartInstances boots the same one: boot services again, no user-data', async () => {
    await ec2.send(new StopInstancesCommand({ InstanceIds: [inst.id] }));
    await waitFor(async () => (await containerInfo(containerId))?.State.Running === false, {
      timeoutMs: 30_000,
      describe: `container of ${inst.id} to stop`,
    });
    expect(await instanceState(inst.id)).toBe('stopped');
    expect(await sim.instanceContainer(inst.id)).toBe(containerId);
    expect(await consoleText(inst.id)).toContain('[wo-init] halted');

    await ec2.send(new StartInstancesCommand({ InstanceIds: [inst.id] }));
    await waitFor(async () => (await containerInfo(containerId))?.State.Running === true, {
      timeoutMs: 30_000,
      describe: `container of ${inst.id} to run again`,
    });
    expect(await sim.instanceContainer(inst.id)).toBe(containerId);
    const text = await waitForConsole(inst.id, '[wo-init] boot 2 finished');
    expect(text).toContain('[wo-init] user-data already ran on first boot: skipped');
    expect(text.match(/\[wo-init\] user-data exited/g)).toHaveLength(1);

    const { client, hostKey } = await sshWhenReady(inst.ip);
    try {
      expect(hostKey.equals(firstHostKey)).toBe(true); // generated on first boot only
      const counts = await waitFor(
        async () => {
          const out = await exec(client, 'wc -l < /root/boot-count; wc -l < /root/user-data-runs');
          const [boots, runs] = out.stdout.split('\n').map((s) => Number(s.trim()));
          return boots === 2 ? { boots, runs } : false;
        },
        { timeoutMs: 10_000, describe: 'the boot service to run on the second boot' },
      );
      expect(counts).toEqual({ boots: 2, runs: 1 });
    } finally {
      client.end();
    }
  });

  it('RebootInstances reboots the same container: boot services again, no user-data', async () => {
    await ec2.send(new RebootInstancesCommand({ InstanceIds: [inst.id] }));
    const text = await waitForConsole(inst.id, '[wo-init] boot 3 finished');
    expect(text.match(/\[wo-init\] user-data exited/g)).toHaveLength(1);
    expect(await sim.instanceContainer(inst.id)).toBe(containerId);
    expect(await instanceState(inst.id)).toBe('running');
    const { client } = await sshWhenReady(inst.ip);
    try {
      const boots = await waitFor(
        async () => {
          const n = Number((await exec(client, 'wc -l < /root/boot-count')).stdout.trim());
          return n === 3 ? n : false;
        },
        { timeoutMs: 10_000, describe: 'the boot service to run on the third boot' },
      );
      expect(boots).toBe(3);
    } finally {
      client.end();
    }
  });

  it('TerminateInstances removes the container before it returns', async () => {
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [inst.id] }));
    expect(await containerInfo(containerId)).toBeNull();
    expect(await sim.instanceContainer(inst.id)).toBeNull();
    expect(await instanceState(inst.id)).toBe('terminated');
    expect(await consoleText(inst.id)).toBe('');
  });
});

describe('knobs', () => {
  const stamp = `echo "user-data at $(node -e 'process.stdout.write(String(Date.now()))')"`;

  it('userDataDelayMs delays the user-data; userDataFails runs exit 1; bootDelayMs delays the container', async () => {
    const slow = `${runTag}-slow`;
    const failing = `${runTag}-fails`;
    const late = `${runTag}-late`;
    sim.setKnobs(slow, { userDataDelayMs: 1_500 });
    sim.setKnobs(failing, { userDataFails: true });
    sim.setKnobs(late, { bootDelayMs: 1_500 });

    const launchedAt = Date.now();
    const [a, b, c] = await Promise.all([
      launch(slow, stamp),
      launch(failing, 'echo should-not-run'),
      launch(late, 'echo late-but-fine'),
    ]);

    const slowText = await waitForConsole(a.id, '[wo-init] user-data exited 0');
    expect(slowText).toContain('[wo-init] user-data delayed by 1500 ms');
    const ranAt = Number(/user-data at (\d+)/.exec(slowText)?.[1]);
    const started = Date.parse(
      (await containerInfo((await sim.instanceContainer(a.id)) ?? ''))?.State.StartedAt ?? '',
    );
    expect(ranAt - started).toBeGreaterThanOrEqual(1_500);

    const failText = await waitForConsole(b.id, '[wo-init] user-data exited 1');
    expect(failText).not.toContain('should-not-run');

    const lateContainer = await waitForContainer(c.id);
    const created = Date.parse((await containerInfo(lateContainer))?.Created ?? '');
    expect(created - launchedAt).toBeGreaterThanOrEqual(1_500);
    expect(await waitForConsole(c.id, '[wo-init] user-data exited 0')).toContain('late-but-fine');
  });

  it('neverBoots: moto says running, no container ever', async () => {
    const ghost = `${runTag}-ghost`;
    sim.setKnobs(ghost, { neverBoots: true });
    const inst = await launch(ghost, 'echo never');
    // The sim has seen it and decided (its note says so): no sleep needed to be sure.
    await waitForNote(inst.id, 'neverBoots');
    expect(await instanceState(inst.id)).toBe('running');
    expect(await sim.instanceContainer(inst.id)).toBeNull();
    expect(await consoleText(inst.id)).toBe('');
  });

  it('knobs can target an org (OrgId tag); a workspace target wins over its org', async () => {
    const org = `${runTag}-org`;
    sim.setKnobs({ orgId: org }, { neverBoots: true });
    sim.setKnobs({ workspaceId: `${runTag}-org-b` }, { neverBoots: false });
    const tagged = (workspaceId: string): Partial<RunInstancesCommandInput> => ({
      TagSpecifications: [
        {
          ResourceType: 'instance',
          Tags: [
            { Key: 'ManagedBy', Value: 'workspace-orchestrator' },
            { Key: 'WorkspaceId', Value: workspaceId },
            { Key: 'OrgId', Value: org },
          ],
        },
      ],
    });
    const a = await launch(`${runTag}-org-a`, 'echo a', tagged(`${runTag}-org-a`));
    const b = await launch(`${runTag}-org-b`, 'echo b', tagged(`${runTag}-org-b`));
    await waitForNote(a.id, 'neverBoots');
    await waitForConsole(b.id, '[wo-init] user-data exited 0');
    expect(await sim.instanceContainer(a.id)).toBeNull();
  });

  it('KeyName: the key pair’s public key is installed like an EC2 image does', async () => {
    const keyName = `${runTag}-key`;
    await ec2.send(
      new ImportKeyPairCommand({ KeyName: keyName, PublicKeyMaterial: Buffer.from(keys.publicKey) }),
    );
    const inst = await launch(`${runTag}-keyname`, undefined, { KeyName: keyName });
    await waitForContainer(inst.id);
    await waitForConsole(inst.id, '[wo-init] no user-data');
    const { client } = await sshWhenReady(inst.ip);
    try {
      expect((await exec(client, 'hostname')).stdout.trim()).toBe(`ip-${inst.ip.replace(/\./g, '-')}`);
    } finally {
      client.end();
    }
  });
});

describe('a second sim on the same moto, mirroring a VPC of its own', () => {
  it('boots only the instances of its VPC, on its own network; stop() removes its containers', async () => {
    const moto = motoClient(inject('MOTO_ENDPOINT'));
    let second: Ec2Sim | undefined;
    let networkName: string | undefined;
    let lastError: unknown;
    try {
      // A free /16 for the Docker network (another may exist here: try a few).
      for (let attempt = 0; attempt < 4 && !second; attempt++) {
        const cidr = `10.${100 + Math.floor(Math.random() * 50)}.0.0/16`;
        const vpc = await moto.send(new CreateVpcCommand({ CidrBlock: cidr }));
        await moto.send(
          new CreateSubnetCommand({ VpcId: vpc.Vpc?.VpcId, CidrBlock: cidr.replace('.0.0/16', '.0.0/24') }),
        );
        const name = `wo-ec2-sim-${runTag}-${attempt}`;
        try {
          second = await startEc2Sim({
            motoEndpoint: inject('MOTO_ENDPOINT'),
            docker,
            vmImage: await ensureVmImage({ docker, runtimeImage: inject('RUNTIME_IMAGE') }),
            network: { name, subnet: cidr },
            pollMs: 100,
            log,
          });
          networkName = name;
        } catch (err) {
          lastError = err;
        }
      }
      if (!second) throw lastError;
      expect(second.subnetCidr).not.toBe(sim.subnetCidr);
      expect(second.subnetId).not.toBe('');

      const client2 = new EC2Client({
        endpoint: second.endpoint,
        region: second.region,
        credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      });
      const out = await client2.send(
        new RunInstancesCommand({
          ImageId: second.amiId,
          MinCount: 1,
          MaxCount: 1,
          SubnetId: second.subnetId,
          UserData: Buffer.from('echo in-my-own-vpc').toString('base64'),
          TagSpecifications: [
            {
              ResourceType: 'instance',
              Tags: [
                { Key: 'ManagedBy', Value: 'workspace-orchestrator' },
                { Key: 'WorkspaceId', Value: `${runTag}-vpc2` },
              ],
            },
          ],
        }),
      );
      client2.destroy();
      const id = out.Instances?.[0]?.InstanceId ?? '';
      const ip = out.Instances?.[0]?.PrivateIpAddress ?? '';
      launched.push(id);
      // Running, not merely created: the address is attached when the container starts.
      const containerId = await waitForContainer(id, 30_000, second);
      const info = await containerInfo(containerId);
      expect(info?.NetworkSettings.Networks[second.network]?.IPAddress).toBe(ip);
      // The first sim leaves it alone: its address is not in the first sim's VPC.
      await waitForNote(id, `${ip} is in another VPC (${second.subnetCidr})`);
      expect(await sim.instanceContainer(id)).toBeNull();

      await second.stop();
      expect(await containerInfo(containerId)).toBeNull();
    } finally {
      await second?.stop();
      moto.destroy();
      if (networkName)
        await docker
          .getNetwork(networkName)
          .remove()
          .catch(() => undefined);
    }
  });
});
