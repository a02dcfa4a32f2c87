/**
 * The security group of workspace instances: admits only the platform (SSH for files/terminal, the
 * agent port for the A2A proxy) from one CIDR, nothing from other instances of the VPC. Created
 * once per VPC (or found again by name and tag) and tagged managed-by, so an operator and a later
 * sweep can recognise it. Egress stays open (agents call model APIs). ec2-sim does not enforce
 * security groups; the agent's per-generation credential covers that gap (and AWS's too).
 */
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  type EC2Client,
  type IpPermission,
} from '@aws-sdk/client-ec2';
import { BackendError } from '../backend.js';
import { ec2ErrorCode, toBackendError } from './errors.js';
import { MANAGED_BY, TAG } from './tags.js';

export const WORKSPACE_SG_NAME = 'wo-workspaces';

export interface SecurityGroupSpec {
  /** The platform's address range (e.g. 10.0.1.5/32). */
  platformCidr: string;
  sshPort: number;
  agentPort: number;
}

/** The ingress rules the group must hold: the platform on SSH and on the agent port, nothing else. */
export function ingressRules(spec: SecurityGroupSpec): IpPermission[] {
  return [spec.sshPort, spec.agentPort].map((port) => ({
    IpProtocol: 'tcp',
    FromPort: port,
    ToPort: port,
    IpRanges: [{ CidrIp: spec.platformCidr, Description: 'workspace-orchestrator platform' }],
  }));
}

/** The VPC a launch lands in: the subnet's, or the region's default VPC without a subnet. */
async function vpcOf(client: EC2Client, subnetId: string | undefined): Promise<string> {
  try {
    if (subnetId) {
      const res = await client.send(new DescribeSubnetsCommand({ SubnetIds: [subnetId] }));
      const vpc = res.Subnets?.[0]?.VpcId;
      if (!vpc) throw new BackendError('permanent', `subnet ${subnetId} has no VPC`);
      return vpc;
    }
    const res = await client.send(
      new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] }),
    );
    const vpc = res.Vpcs?.[0]?.VpcId;
    if (!vpc) throw new BackendError('permanent', 'no subnet configured and the region has no default VPC');
    return vpc;
  } catch (err) {
    throw toBackendError(err, subnetId ? `looking up subnet ${subnetId}` : 'looking up the default VPC');
  }
}

async function findGroup(client: EC2Client, vpcId: string): Promise<string | null> {
  const res = await client.send(
    new DescribeSecurityGroupsCommand({
      Filters: [
        { Name: 'vpc-id', Values: [vpcId] },
        { Name: 'group-name', Values: [WORKSPACE_SG_NAME] },
        { Name: `tag:${TAG.managedBy}`, Values: [MANAGED_BY] },
      ],
    }),
  );
  return res.SecurityGroups?.[0]?.GroupId ?? null;
}

/**
 * Creates (or finds) the group in the launch's VPC and makes sure it admits the platform. Safe to
 * repeat and to race: a duplicate name re-reads the winner's group, a duplicate rule is a no-op.
 */
export async function ensureWorkspaceSecurityGroup(
  client: EC2Client,
  subnetId: string | undefined,
  spec: SecurityGroupSpec,
): Promise<string> {
  const vpcId = await vpcOf(client, subnetId);
  try {
    let groupId = await findGroup(client, vpcId);
    if (!groupId) {
      try {
        const created = await client.send(
          new CreateSecurityGroupCommand({
            GroupName: WORKSPACE_SG_NAME,
            Description: 'workspace-orchestrator workspaces: only the platform may connect',
            VpcId: vpcId,
            TagSpecifications: [
              {
                ResourceType: 'security-group',
                Tags: [
                  { Key: TAG.managedBy, Value: MANAGED_BY },
                  { Key: TAG.name, Value: WORKSPACE_SG_NAME },
                ],
              },
            ],
          }),
        );
        groupId = created.GroupId ?? null;
      } catch (err) {
        if (ec2ErrorCode(err) !== 'InvalidGroup.Duplicate') throw err;
        groupId = await findGroup(client, vpcId);
      }
      if (!groupId)
        throw new BackendError('transient', `security group ${WORKSPACE_SG_NAME} not visible yet`);
    }
    try {
      await client.send(
        new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: ingressRules(spec) }),
      );
    } catch (err) {
      if (ec2ErrorCode(err) !== 'InvalidPermission.Duplicate') throw err;
    }
    return groupId;
  } catch (err) {
    throw toBackendError(err, `ensuring security group ${WORKSPACE_SG_NAME} in ${vpcId}`);
  }
}
