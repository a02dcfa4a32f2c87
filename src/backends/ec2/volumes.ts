/**
 * EBS volumes of workspace instances. Only the root volume exists, one per generation, tagged with
 * the instance's identity at launch (tags.ts). It must go with its instance: the launch states
 * DeleteOnTermination itself instead of inheriting the AMI's mapping (an AMI whose root mapping says
 * false would leave one billed volume per generation).
 */
import { DescribeImagesCommand, type BlockDeviceMapping, type EC2Client } from '@aws-sdk/client-ec2';
import { BackendError } from '../backend.js';
import { toBackendError } from './errors.js';

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
