/**
 * Leaks on demand: a managed resource started straight through a backend, as a crash or a bug would
 * leave it, for workspace ids the DB may not know. On EC2 the SSH key pair goes to a memory store
 * (the DB store refuses keys of a workspace it has no row for).
 */
import { randomBytes } from 'node:crypto';
import type { WorkspaceBackend } from '../../src/backends/backend.js';
import { createEc2Client } from '../../src/backends/ec2/client.js';
import { Ec2Backend } from '../../src/backends/ec2/ec2-backend.js';
import { MemorySshKeyStore } from '../../src/backends/ssh-keys.js';
import { ec2PlatformCidr } from '../../src/config.js';
import type { ParityFixture } from './backends.js';
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
  });
}

/** Starts generation `generation` of `workspaceId` in `orgId` with the managed marks; its id. */
export async function plantLeak(
  t: ParityFixture,
  workspaceId: string,
  orgId: string,
  generation: number,
): Promise<string> {
  const info = await leakingBackend(t).start({
    workspaceId,
    orgId,
    generation,
    runtime: 'claude-code',
    platformUrl: 'http://127.0.0.1:1',
    mintBootstrapToken: async () => `wo_boot_${randomBytes(24).toString('base64url')}`,
  });
  return info.instanceId;
}

/** The Temporal Schedules of a workspace (`workspace:<id>:schedule:<sid>`): none may outlive it. */
export async function schedulesOf(client: Client, workspaceId: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const s of client.schedule.list()) {
    if (s.scheduleId.startsWith(`workspace:${workspaceId}:`)) ids.push(s.scheduleId);
  }
  return ids;
}
