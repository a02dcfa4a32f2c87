/**
 * The workspace's data volume: one EBS volume per workspace, mounted at `/workspace` by the
 * user-data, so a restart (a new instance per generation) keeps the user's files as a docker
 * workspace's named volume does. Root volumes go with their generation (volumes.ts); this one goes
 * only with the workspace (`remove` with `volumes`) or its org.
 *
 * It is found by tag, never remembered: a crashed worker's retry finds the volume it made. An
 * instance can only use a volume of its own Availability Zone, so a new instance launches into the
 * volume's zone, and a volume is made in the zone of the subnet the instance will launch into.
 */
import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DescribeAvailabilityZonesCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Tag,
  type Volume,
} from '@aws-sdk/client-ec2';
import { BackendError } from '../backend.js';
import { ec2ErrorCode, toBackendError } from './errors.js';
import { MANAGED_BY, TAG } from './tags.js';

/** Where the data volume is attached; the user-data also knows it by its NVMe id (see there). */
export const DATA_DEVICE = '/dev/sdf';
/** The `Role` tag's value on a data volume (root volumes carry no `Role`). */
export const DATA_ROLE = 'workspace-data';

export const dataVolumeName = (workspaceId: string): string => `ws-${workspaceId}-data`;

export function dataVolumeTags(spec: { workspaceId: string; orgId: string }): Tag[] {
  return [
    { Key: TAG.managedBy, Value: MANAGED_BY },
    { Key: TAG.workspaceId, Value: spec.workspaceId },
    { Key: TAG.orgId, Value: spec.orgId },
    { Key: TAG.role, Value: DATA_ROLE },
    { Key: TAG.name, Value: dataVolumeName(spec.workspaceId) },
  ];
}

export const isDataVolume = (v: { Tags?: Tag[] }): boolean =>
  v.Tags?.some((t) => t.Key === TAG.role && t.Value === DATA_ROLE) ?? false;

/** States in which a volume still holds the data (deleting/deleted/error do not). */
const USABLE = ['creating', 'available', 'in-use'];

/**
 * The workspace's data volume, or null. Should EC2 hold several (moto ignores CreateVolume's
 * ClientToken; an operator's copy), the oldest is the one: every caller picks the same.
 */
export async function findDataVolume(client: EC2Client, workspaceId: string): Promise<Volume | null> {
  let volumes: Volume[];
  try {
    const res = await client.send(
      new DescribeVolumesCommand({
        Filters: [
          { Name: `tag:${TAG.managedBy}`, Values: [MANAGED_BY] },
          { Name: `tag:${TAG.workspaceId}`, Values: [workspaceId] },
          { Name: `tag:${TAG.role}`, Values: [DATA_ROLE] },
          { Name: 'status', Values: USABLE },
        ],
      }),
    );
    volumes = res.Volumes ?? [];
  } catch (err) {
    throw toBackendError(err, `looking up the data volume of ${workspaceId}`);
  }
  return (
    [...volumes].sort(
      (a, b) =>
        (a.CreateTime?.getTime() ?? 0) - (b.CreateTime?.getTime() ?? 0) ||
        (a.VolumeId ?? '').localeCompare(b.VolumeId ?? ''),
    )[0] ?? null
  );
}

/** The Availability Zone of `subnetId`, else the region's first available zone. */
export async function zoneFor(client: EC2Client, subnetId: string | undefined): Promise<string> {
  try {
    if (subnetId) {
      const res = await client.send(new DescribeSubnetsCommand({ SubnetIds: [subnetId] }));
      const zone = res.Subnets?.[0]?.AvailabilityZone;
      if (!zone)
        throw new BackendError('permanent', `subnet ${subnetId} not found (DescribeSubnets lists nothing)`);
      return zone;
    }
    const res = await client.send(
      new DescribeAvailabilityZonesCommand({ Filters: [{ Name: 'state', Values: ['available'] }] }),
    );
    const zone = res.AvailabilityZones?.map((z) => z.ZoneName)
      .filter((z): z is string => !!z)
      .sort()[0];
    if (!zone) throw new BackendError('transient', 'no available Availability Zone in the region');
    return zone;
  } catch (err) {
    if (err instanceof BackendError) throw err;
    throw toBackendError(err, subnetId ? `looking up subnet ${subnetId}` : 'listing Availability Zones');
  }
}

export async function createDataVolume(
  client: EC2Client,
  spec: { workspaceId: string; orgId: string; zone: string; sizeGiB: number },
): Promise<Volume> {
  try {
    const res = await client.send(
      new CreateVolumeCommand({
        AvailabilityZone: spec.zone,
        Size: spec.sizeGiB,
        VolumeType: 'gp3',
        Encrypted: true,
        // Same token for every attempt: EC2 answers a retried create with the volume it made.
        ClientToken: `${spec.workspaceId}-data`.slice(0, 64),
        TagSpecifications: [{ ResourceType: 'volume', Tags: dataVolumeTags(spec) }],
      }),
    );
    if (!res.VolumeId)
      throw new BackendError('transient', `CreateVolume for ${spec.workspaceId} returned no volume`);
    return res;
  } catch (err) {
    if (err instanceof BackendError) throw err;
    throw toBackendError(err, `creating the data volume of ${spec.workspaceId}`);
  }
}

export type AttachStep = { kind: 'attached' } | { kind: 'wait'; why: string } | { kind: 'attach' };

/**
 * What to do next to have `volume` attached to `instanceId`, from what EC2 says now: nothing (it
 * is), wait (it is still with another instance, say the terminated previous generation, or not
 * `available` yet), or attach it.
 */
export function nextAttachStep(volume: Volume, instanceId: string): AttachStep {
  const attachments = (volume.Attachments ?? []).filter((a) => a.State !== 'detached');
  if (attachments.some((a) => a.InstanceId === instanceId)) return { kind: 'attached' };
  const other = attachments[0];
  if (other)
    return {
      kind: 'wait',
      why: `attached to ${other.InstanceId ?? 'another instance'} (${other.State ?? '?'})`,
    };
  if (volume.State !== 'available')
    return { kind: 'wait', why: `volume is ${volume.State ?? 'in an unknown state'}` };
  return { kind: 'attach' };
}

/**
 * One AttachVolume. Answers false when EC2 says not yet (the instance still `pending`, the volume
 * still detaching or being created): the caller polls and tries again.
 */
export async function attachDataVolume(
  client: EC2Client,
  volumeId: string,
  instanceId: string,
): Promise<boolean> {
  try {
    await client.send(
      new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: DATA_DEVICE }),
    );
    return true;
  } catch (err) {
    const code = ec2ErrorCode(err);
    if (code === 'IncorrectState' || code === 'IncorrectInstanceState' || code === 'VolumeInUse')
      return false;
    throw toBackendError(err, `attaching data volume ${volumeId} to ${instanceId}`);
  }
}

/** By id; null when EC2 says it does not exist. */
export async function describeVolume(client: EC2Client, volumeId: string): Promise<Volume | null> {
  try {
    const res = await client.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
    return res.Volumes?.[0] ?? null;
  } catch (err) {
    if (ec2ErrorCode(err) === 'InvalidVolume.NotFound') return null;
    throw toBackendError(err, `describing volume ${volumeId}`);
  }
}
