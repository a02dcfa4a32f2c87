/**
 * EBS volumes of workspace instances. Only the root volume exists, one per generation, tagged with
 * the instance's identity at launch (tags.ts). It must go with its instance: the launch states
 * DeleteOnTermination itself instead of inheriting the AMI's mapping (an AMI whose root mapping says
 * false would leave one billed volume per generation). A volume left `available` all the same (an
 * instance launched before that, a root detached by hand) is found by tag and deleted.
 */
import {
  DeleteVolumeCommand,
  DescribeImagesCommand,
  DescribeVolumesCommand,
  type BlockDeviceMapping,
  type EC2Client,
  type Filter,
  type Volume,
} from '@aws-sdk/client-ec2';
import { BackendError } from '../backend.js';
import { ec2ErrorCode, toBackendError } from './errors.js';

/**
 * The root device mapping a launch from `imageId` passes: DeleteOnTermination true on the image's
 * root device. Null for an instance-store root (no EBS root volume to leak). The image's own root
 * size goes along: EC2 takes what a root mapping leaves out from the AMI, so it changes nothing
 * there, but moto refuses a mapping with neither size nor snapshot (MissingParameter).
 */
export async function rootDeviceMappings(
  client: EC2Client,
  imageId: string,
): Promise<BlockDeviceMapping[] | null> {
  let image;
  try {
    image = (await client.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
  } catch (err) {
    throw toBackendError(err, `looking up image ${imageId}`);
  }
  if (!image)
    throw new BackendError('permanent', `image ${imageId} not found (DescribeImages lists nothing)`);
  if (image.RootDeviceType === 'instance-store') return null;
  const device = image.RootDeviceName;
  if (!device) {
    // Without the name the launch could not say DeleteOnTermination, and the root could leak.
    throw new BackendError('permanent', `image ${imageId} names no root device`);
  }
  const size = image.BlockDeviceMappings?.find((m) => m.DeviceName === device)?.Ebs?.VolumeSize;
  return [{ DeviceName: device, Ebs: { DeleteOnTermination: true, ...(size ? { VolumeSize: size } : {}) } }];
}

/** DescribeVolumes pages of at most this many (EC2 allows 5..500). */
const PAGE = 500;

/** Every volume in state `available` (attached to nothing) that matches `filters`, all pages. */
export async function availableVolumes(
  client: EC2Client,
  filters: Filter[],
  what: string,
): Promise<Volume[]> {
  const out: Volume[] = [];
  let nextToken: string | undefined;
  try {
    do {
      const page = await client.send(
        new DescribeVolumesCommand({
          Filters: [...filters, { Name: 'status', Values: ['available'] }],
          MaxResults: PAGE,
          NextToken: nextToken,
        }),
      );
      out.push(...(page.Volumes ?? []));
      nextToken = page.NextToken;
    } while (nextToken);
  } catch (err) {
    throw toBackendError(err, what);
  }
  return out;
}

/**
 * Deletes the volumes; answers the ids deleted or already gone. One attached since it was listed
 * (VolumeInUse) is no leak any more and is left: a later look finds it again if it is let go.
 */
export async function deleteVolumes(client: EC2Client, ids: readonly string[]): Promise<string[]> {
  const deleted: string[] = [];
  for (const id of ids) {
    try {
      await client.send(new DeleteVolumeCommand({ VolumeId: id }));
    } catch (err) {
      const code = ec2ErrorCode(err);
      if (code === 'VolumeInUse') continue;
      if (code !== 'InvalidVolume.NotFound') throw toBackendError(err, `deleting volume ${id}`);
    }
    deleted.push(id);
  }
  return deleted;
}
