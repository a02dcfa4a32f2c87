/**
 * ec2-sim's EBS data volumes against the real moto of globalSetup and the real dockerd: a volume
 * tagged for a workspace is staged into that workspace's VMs only, its device appears in the VM once
 * attached (again after a stop/start, gone after a detach), the blkid/mkfs/mount shims give the
 * product's user-data a disk at /workspace, its data outlives the instance, and its Docker volume
 * goes with DeleteVolume (or with the sim).
 */
import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DeleteVolumeCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  EC2Client,
  GetConsoleOutputCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  EBS_MOUNT_ROOT,
  demuxLogs,
  ebsDockerVolumeName,
  ebsNvmeLink,
  LABEL_EBS_VOLUME,
  LABEL_INSTANCE,
  LABEL_MOTO,
  LABEL_NETWORK,
  LABEL_SIM,
  startEc2Sim,
  type Ec2Sim,
} from '../ec2-sim/sim.js';
import { ensureVmImage } from '../ec2-sim/vm-image.js';
import { dataVolumeSteps } from '../../src/backends/ec2/user-data.js';
import { waitFor } from '../setup/wait-for.js';

const docker = new Dockerode();
const runTag = `vol${Date.now().toString(36)}`;
const org = `${runTag}-org`;
const launched: string[] = [];
const volumes: string[] = [];
/** The shell the init runs the user-data in: the product's PATH, the disk shims as functions. */
const SHELL_SETUP =
  'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; . /usr/local/lib/ec2-sim/shims.sh';

let sim: Ec2Sim;
let ec2: EC2Client;
let zone: string;

const log = (line: string): void => {
  if (process.env.EC2_SIM_TEST_VERBOSE) console.log(`[ec2-sim] ${line}`);
};

async function createVolume(workspaceId: string): Promise<string> {
  const out = await ec2.send(
    new CreateVolumeCommand({
      AvailabilityZone: zone,
      Size: 1,
      VolumeType: 'gp3',
      TagSpecifications: [
        {
          ResourceType: 'volume',
          Tags: [
            { Key: 'ManagedBy', Value: 'workspace-orchestrator' },
            { Key: 'WorkspaceId', Value: workspaceId },
            { Key: 'OrgId', Value: org },
            { Key: 'Role', Value: 'workspace-data' },
            { Key: 'Name', Value: `ws-${workspaceId}-data` },
          ],
        },
      ],
    }),
  );
  if (!out.VolumeId) throw new Error('CreateVolume returned no volume');
  volumes.push(out.VolumeId);
  return out.VolumeId;
}

/**
 * The product's own data volume steps (src/backends/ec2/user-data.ts: wait for the device, format
 * it only when blkid says blank, mount it at /workspace); then keep a file there, or show the one
 * kept.
 */
function dataVolumeUserData(volumeId: string): string {
  return `#!/bin/sh
set -eu
log() { echo "wo-user-data: $*"; }
mkdir -p /workspace
${dataVolumeSteps(volumeId)}
if [ -f /workspace/data.txt ]; then
  echo "data: found $(cat /workspace/data.txt)"
else
  echo kept > /workspace/data.txt
  echo "data: wrote"
fi
`;
}

async function consoleText(instanceId: string): Promise<string> {
  const out = await ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId }));
  return Buffer.from(out.Output ?? '', 'base64').toString('utf8');
}

function waitForUserData(instanceId: string): Promise<string> {
  return waitFor(
    async () => {
      const text = await consoleText(instanceId);
      return /\[wo-init\] user-data exited/.test(text) ? text : false;
    },
    { timeoutMs: 60_000, intervalMs: 200, describe: `the user-data of ${instanceId} to finish` },
  );
}

async function launch(workspaceId: string, userData?: string): Promise<string> {
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
            { Key: 'OrgId', Value: org },
          ],
        },
      ],
    }),
  );
  const id = out.Instances?.[0]?.InstanceId;
  if (!id) throw new Error('RunInstances returned no instance');
  launched.push(id);
  return id;
}

async function containerInfo(containerId: string): Promise<Dockerode.ContainerInspectInfo | null> {
  try {
    return await docker.getContainer(containerId).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw err;
  }
}

async function dockerVolume(name: string): Promise<Dockerode.VolumeInspectInfo | null> {
  try {
    return await docker.getVolume(name).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw err;
  }
}

function waitForContainer(instanceId: string): Promise<string> {
  return waitFor(
    async () => {
      const container = await sim.instanceContainer(instanceId);
      return container && (await containerInfo(container))?.State.Running ? container : null;
    },
    { timeoutMs: 30_000, describe: `a running container for ${instanceId}` },
  );
}

/** A shell script run as root in the VM, in the shell the user-data runs in. */
async function sh(containerId: string, script: string): Promise<{ code: number; out: string }> {
  const exec = await docker.getContainer(containerId).exec({
    Cmd: ['/bin/sh', '-c', `${SHELL_SETUP}; ${script}`],
    User: 'root',
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({});
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => void chunks.push(c));
  await new Promise<void>((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
  });
  return { code: (await exec.inspect()).ExitCode ?? -1, out: demuxLogs(Buffer.concat(chunks)) };
}

/** Waits until `blkid -p <dev>` answers `code` in the VM (the device appears once linked). */
function waitForBlkid(containerId: string, dev: string, code: number): Promise<string> {
  return waitFor(
    async () => {
      const r = await sh(containerId, `[ -e ${dev} ] && blkid -p ${dev}`);
      return r.code === code ? r.out : false;
    },
    { timeoutMs: 30_000, intervalMs: 100, describe: `blkid -p ${dev} to exit ${code} in ${containerId}` },
  );
}

async function attach(volumeId: string, instanceId: string): Promise<void> {
  await ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' }));
}

beforeAll(async () => {
  const vmImage = await ensureVmImage({ docker, runtimeImage: inject('RUNTIME_IMAGE'), log });
  sim = await startEc2Sim({ motoEndpoint: inject('MOTO_ENDPOINT'), docker, vmImage, pollMs: 100, log });
  ec2 = new EC2Client({
    endpoint: sim.endpoint,
    region: sim.region,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  const subnets = await ec2.send(new DescribeSubnetsCommand({ SubnetIds: [sim.subnetId] }));
  zone = subnets.Subnets?.[0]?.AvailabilityZone ?? '';
  expect(zone).not.toBe('');
});

afterAll(async () => {
  if (ec2 && launched.length > 0) {
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: launched })).catch(() => undefined);
  }
  for (const id of volumes) {
    await ec2?.send(new DeleteVolumeCommand({ VolumeId: id })).catch(() => undefined);
  }
  await sim?.stop();
  ec2?.destroy();
  // Nothing of this run may outlive it (the suite's leak check does not list these volumes).
  const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_SIM}=1`] } });
  for (const c of left.filter((c) => launched.includes(c.Labels[LABEL_INSTANCE] ?? ''))) {
    await docker.getContainer(c.Id).remove({ force: true, v: true });
  }
  for (const id of volumes) {
    await docker
      .getVolume(ebsDockerVolumeName(id))
      .remove()
      .catch(() => undefined);
  }
});

describe('a workspace data volume', () => {
  const workspaceId = `${runTag}-main`;
  const otherWorkspace = `${runTag}-other`;
  let volumeId: string;
  let otherVolume: string;
  let second: string;
  let secondContainer: string;

  it('is staged into its workspace’s VM only; attached, it is a blank disk to mkfs and mount at /workspace', async () => {
    volumeId = await createVolume(workspaceId);
    otherVolume = await createVolume(otherWorkspace);
    const first = await launch(workspaceId, dataVolumeUserData(volumeId));
    const containerId = await waitForContainer(first);

    // Staged: a Docker volume of this sim, mounted at /mnt/.sim-ebs/<vol-id>, root's only.
    const staged = await dockerVolume(ebsDockerVolumeName(volumeId));
    expect(staged?.Labels).toMatchObject({
      [LABEL_SIM]: '1',
      [LABEL_MOTO]: inject('MOTO_ENDPOINT'),
      [LABEL_NETWORK]: sim.network,
      [LABEL_EBS_VOLUME]: volumeId,
    });
    const info = await containerInfo(containerId);
    expect(info?.Mounts.filter((m) => m.Type === 'volume').map((m) => [m.Name, m.Destination])).toEqual([
      [ebsDockerVolumeName(volumeId), `${EBS_MOUNT_ROOT}/${volumeId}`],
    ]);
    expect(info?.HostConfig.Tmpfs ?? {}).toEqual({});
    const modes = await sh(containerId, `stat -c '%a %u %n' ${EBS_MOUNT_ROOT} ${EBS_MOUNT_ROOT}/*`);
    expect(modes.out.trim().split('\n')).toEqual([
      `700 0 ${EBS_MOUNT_ROOT}`,
      `700 0 ${EBS_MOUNT_ROOT}/${volumeId}`,
    ]);
    // Another workspace's volume is nowhere: not in the VM, not even as a Docker volume.
    expect((await sh(containerId, `ls -A ${EBS_MOUNT_ROOT}`)).out.trim()).toBe(volumeId);
    expect(await dockerVolume(ebsDockerVolumeName(otherVolume))).toBeNull();
    // Not attached yet: no device.
    expect((await sh(containerId, '[ -e /dev/sdf ]')).code).not.toBe(0);

    // The user-data waits for the device: it appears once the volume is attached.
    await attach(volumeId, first);
    const text = await waitForUserData(first);
    expect(text).toContain('[wo-init] user-data exited 0');
    expect(text).toContain(`data volume ${volumeId} at ${ebsNvmeLink(volumeId)}: blank, formatting it`);
    expect(text).toContain('data: wrote');
    expect(
      (await sh(containerId, `readlink ${ebsNvmeLink(volumeId)}; readlink /dev/sdf`)).out.trim().split('\n'),
    ).toEqual([`${EBS_MOUNT_ROOT}/${volumeId}`, `${EBS_MOUNT_ROOT}/${volumeId}`]);
    expect(await sh(containerId, 'ls -A /workspace; cat /workspace/data.txt')).toEqual({
      code: 0,
      out: 'data.txt\nkept\n',
    });
    // Nothing of the emulation shows in /workspace; the volume's root holds the filesystem only.
    expect((await sh(containerId, `ls -A ${EBS_MOUNT_ROOT}/${volumeId}`)).out).toBe('fs\n');
    const typed = await sh(containerId, 'blkid -p /dev/sdf');
    expect(typed).toEqual({ code: 0, out: '/dev/sdf: TYPE="ext4"\n' });
    // Mounted once: a second mount fails, as a real one would.
    expect((await sh(containerId, 'mount /dev/sdf /workspace')).code).toBe(32);

    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [first] }));
    expect(await containerInfo(containerId)).toBeNull();
    const after = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
    expect(after.Volumes?.[0]?.State).toBe('available');
    // Still in moto: the data stays.
    expect(await dockerVolume(ebsDockerVolumeName(volumeId))).not.toBeNull();
  });

  it('the next instance of the workspace finds the data; a stop/start links the device again', async () => {
    second = await launch(workspaceId, dataVolumeUserData(volumeId));
    secondContainer = await waitForContainer(second);
    expect((await sh(secondContainer, `ls -A ${EBS_MOUNT_ROOT}`)).out.trim()).toBe(volumeId);
    await attach(volumeId, second);
    const text = await waitForUserData(second);
    expect(text).toContain('[wo-init] user-data exited 0');
    expect(text).toContain(`data volume ${volumeId} at ${ebsNvmeLink(volumeId)}: keeping its filesystem`);
    expect(text).toContain('data: found kept');

    await ec2.send(new StopInstancesCommand({ InstanceIds: [second] }));
    await waitFor(async () => (await containerInfo(secondContainer))?.State.Running === false, {
      timeoutMs: 30_000,
      describe: `container of ${second} to stop`,
    });
    await ec2.send(new StartInstancesCommand({ InstanceIds: [second] }));
    await waitFor(async () => (await containerInfo(secondContainer))?.State.Running === true, {
      timeoutMs: 30_000,
      describe: `container of ${second} to run again`,
    });
    // /dev is new at each boot: the sim links the device again; the mount (a symlink) stayed.
    await waitForBlkid(secondContainer, '/dev/sdf', 0);
    expect((await sh(secondContainer, 'cat /workspace/data.txt')).out).toBe('kept\n');
  });

  it('a volume created after the VM is not attachable (noted); a detach removes the device', async () => {
    const late = await createVolume(workspaceId);
    await ec2.send(new AttachVolumeCommand({ VolumeId: late, InstanceId: second, Device: '/dev/sdg' }));
    const note = await waitFor(() => sim.instanceNotes(second).find((n) => n.includes(late)), {
      timeoutMs: 30_000,
      describe: `a note on ${second} about ${late}`,
    });
    expect(note).toContain('was not staged');
    expect((await sh(secondContainer, '[ -e /dev/sdg ]')).code).not.toBe(0);
    await ec2.send(new DetachVolumeCommand({ VolumeId: late, InstanceId: second }));

    await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: second }));
    await waitFor(
      async () =>
        (await sh(secondContainer, `[ -e /dev/sdf ] || [ -e ${ebsNvmeLink(volumeId)} ]`)).code === 1,
      { timeoutMs: 30_000, describe: `/dev/sdf to go from ${second}` },
    );
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [second] }));
  });

  it('DeleteVolume: the Docker volume goes once no container uses it', async () => {
    const name = ebsDockerVolumeName(volumeId);
    expect(await dockerVolume(name)).not.toBeNull();
    await ec2.send(new DeleteVolumeCommand({ VolumeId: volumeId }));
    await waitFor(async () => (await dockerVolume(name)) === null, {
      timeoutMs: 30_000,
      describe: `docker volume ${name} to be removed after DeleteVolume`,
    });
  });
});

describe('with the workspaceDiskBytes knob', () => {
  it('the data volume is a tmpfs of that size (and /workspace no tmpfs of its own)', async () => {
    const workspaceId = `${runTag}-small`;
    const size = 8 * 1024 * 1024;
    sim.setKnobs(workspaceId, { workspaceDiskBytes: size });
    const volumeId = await createVolume(workspaceId);
    const instanceId = await launch(workspaceId);
    const containerId = await waitForContainer(instanceId);
    const staged = await dockerVolume(ebsDockerVolumeName(volumeId));
    expect(staged?.Options).toMatchObject({ type: 'tmpfs', device: 'tmpfs' });
    expect(staged?.Options?.o).toContain(`size=${size}`);
    expect((await containerInfo(containerId))?.HostConfig.Tmpfs ?? {}).toEqual({});

    await attach(volumeId, instanceId);
    expect(await waitForBlkid(containerId, '/dev/sdf', 2)).toBe('');
    // Not formatted: mount refuses, as a real one would.
    expect((await sh(containerId, 'mount /dev/sdf /workspace')).code).toBe(32);
    const full = await sh(
      containerId,
      'mkfs -t ext4 -q /dev/sdf && mount /dev/sdf /workspace && ' +
        `stat -c %a ${EBS_MOUNT_ROOT}/${volumeId} && ` +
        'dd if=/dev/zero of=/workspace/fill bs=1M count=16 2>/dev/null; echo "dd $?"',
    );
    expect(full.out).toBe('700\ndd 1\n');
  });

  it('stop() removes the sim’s EBS Docker volumes with its containers', async () => {
    const names = volumes.map(ebsDockerVolumeName);
    expect((await Promise.all(names.map(dockerVolume))).some((v) => v !== null)).toBe(true);
    await sim.stop();
    expect((await Promise.all(names.map(dockerVolume))).filter((v) => v !== null)).toEqual([]);
  });
});
