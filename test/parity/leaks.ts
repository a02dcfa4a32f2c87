/**
 * Leaks on demand: a managed resource started straight through a backend, as a crash or a bug would
 * leave it, for workspace ids the DB may not know. On EC2 the SSH key pair goes to a memory store
 * (the DB store refuses keys of a workspace it has no row for).
 */
import { randomBytes } from 'node:crypto';
import {
  DescribeImagesCommand,
  DescribeVolumesCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import type { WorkspaceBackend } from '../../src/backends/backend.js';
import { createEc2Client } from '../../src/backends/ec2/client.js';
import { Ec2Backend } from '../../src/backends/ec2/ec2-backend.js';
import { instanceName, instanceTags, launchTagSpecifications } from '../../src/backends/ec2/tags.js';
import { MemorySshKeyStore } from '../../src/backends/ssh-keys.js';
import { ec2PlatformCidr } from '../../src/config.js';
import { waitFor } from '../setup/wait-for.js';
import { instancesOf, motoClient, type ParityFixture } from './backends.js';
import type { Client } from '@temporalio/client';

function leakingBackend(t: ParityFixture): WorkspaceBackend {
  if (t.backend === 'docker') return t.stack.service.backends.docker;
  const c = t.stack.config;
  return new Ec2Backend({
    client: createEc2Client({
      region: c.ec2Region,
      endpoint: c.EC2_ENDPOINT,
      credentials:
        c.AWS_ACCESS_KEY_ID && c.AWS_SECRET_ACCESS_KEY
          ? { accessKeyId: c.AWS_ACCESS_KEY_ID, secretAccessKey: c.AWS_SECRET_ACCESS_KEY }
          : undefined,
    }),
    keys: new MemorySshKeyStore(),
    imageId: c.EC2_AMI_ID!,
    instanceType: c.EC2_INSTANCE_TYPE,
    subnetId: c.EC2_SUBNET_ID,
    securityGroupIds: c.EC2_SECURITY_GROUP_IDS,
    platformCidr: ec2PlatformCidr(c),
    // A leak of a superseded generation finds the workspace's data volume with the live instance:
    // give up on it soon (below) instead of waiting out a real transition.
    transitionWaitMs: 3_000,
  });
}

/**
 * Starts generation `generation` of `workspaceId` in `orgId` with the managed marks; its id. On EC2
 * a generation older than the live one cannot take the workspace's data volume (the live instance
 * holds it): the leak is then its instance without the volume, as a crash between launch and attach
 * leaves one.
 */
export async function plantLeak(
  t: ParityFixture,
  workspaceId: string,
  orgId: string,
  generation: number,
): Promise<string> {
  try {
    const info = await leakingBackend(t).start({
      workspaceId,
      orgId,
      generation,
      runtime: 'claude-code',
      platformUrl: 'http://127.0.0.1:1',
      mintBootstrapToken: async () => `wo_boot_${randomBytes(24).toString('base64url')}`,
    });
    return info.instanceId;
  } catch (err) {
    if (t.backend !== 'ec2' || !/data volume \S+ not attachable/.test((err as Error).message)) throw err;
    const name = instanceName(workspaceId, generation);
    const id = (await instancesOf(workspaceId)).find(
      (i) =>
        i.Tags?.some((tag) => tag.Key === 'Name' && tag.Value === name) &&
        ['pending', 'running'].includes(i.State?.Name ?? ''),
    )?.InstanceId;
    if (!id) throw new Error(`${name}: the leak launched no instance`, { cause: err });
    return id;
  }
}

/**
 * An EC2 root volume leaked as AWS leaks one: an instance launched with DeleteOnTermination=false
 * on its root (what an AMI saying so gave every launch before the backend stated the flag), then
 * terminated. Its volume carries the generation's launch tags and stays `available`. The instance
 * itself gets no managed mark, so neither the backend nor the simulator ever sees it. Its id.
 */
export async function leakRootVolume(
  t: ParityFixture,
  workspaceId: string,
  orgId: string,
  generation: number,
): Promise<string> {
  const ec2 = motoClient();
  const imageId = t.stack.config.EC2_AMI_ID!;
  const image = (await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
  const tags = launchTagSpecifications(
    instanceTags({ workspaceId, orgId, generation, runtime: 'claude-code' }),
  );
  const run = await ec2.send(
    new RunInstancesCommand({
      ImageId: imageId,
      InstanceType: 't3.micro',
      SubnetId: t.stack.config.EC2_SUBNET_ID,
      MinCount: 1,
      MaxCount: 1,
      BlockDeviceMappings: [
        { DeviceName: image?.RootDeviceName, Ebs: { DeleteOnTermination: false, VolumeSize: 8 } },
      ],
      TagSpecifications: tags.filter((s) => s.ResourceType === 'volume'),
    }),
  );
  const instance = run.Instances?.[0];
  const volumeId = instance?.BlockDeviceMappings?.[0]?.Ebs?.VolumeId;
  if (!instance?.InstanceId || !volumeId) throw new Error('moto launched no instance with a root volume');
  await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instance.InstanceId] }));
  await waitFor(
    async () =>
      (await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }))).Volumes?.[0]?.State ===
      'available',
    { timeoutMs: 30_000, describe: `root volume ${volumeId} left available by its terminated instance` },
  );
  return volumeId;
}

/** The Temporal Schedules of a workspace (`workspace:<id>:schedule:<sid>`): none may outlive it. */
export async function schedulesOf(client: Client, workspaceId: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const s of client.schedule.list()) {
    if (s.scheduleId.startsWith(`workspace:${workspaceId}:`)) ids.push(s.scheduleId);
  }
  return ids;
}

/**
 * Waits until Temporal lists `count` Schedules of the workspace. Listing reads the visibility store,
 * which follows a create or a delete after a moment: never assert on one read of it.
 */
export async function waitForSchedulesListed(
  client: Client,
  workspaceId: string,
  count: number,
): Promise<void> {
  await waitFor(async () => (await schedulesOf(client, workspaceId)).length === count, {
    timeoutMs: 30_000,
    intervalMs: 250,
    describe: `${count} Temporal Schedule(s) of workspace ${workspaceId} listed`,
  });
}
