/**
 * The EC2 backend's volume handling where moto cannot show it (test/integration/ec2-backend.test.ts
 * covers the rest against moto): DescribeVolumes paging (moto answers one page whatever MaxResults
 * says), a failed or odd image lookup at launch, and DeleteVolume's answers for a volume gone or
 * attached meanwhile. EC2 is a fake client answering per command.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import type { StartSpec } from '../../src/backends/backend.js';
import { Ec2Backend } from '../../src/backends/ec2/ec2-backend.js';
import { MemorySshKeyStore } from '../../src/backends/ssh-keys.js';

type Handler = (input: Record<string, unknown>) => unknown;

/** An EC2 client answering each command with its handler, recording what was sent. */
function fakeEc2(handlers: Record<string, Handler>) {
  const sent: Array<{ command: string; input: Record<string, unknown> }> = [];
  const client = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      const name = command.constructor.name.replace(/Command$/, '');
      sent.push({ command: name, input: command.input });
      const handler = handlers[name];
      if (!handler) throw new Error(`unexpected ${name}`);
      return handler(command.input);
    },
  };
  return {
    client: client as unknown as EC2Client,
    sent,
    count: (c: string) => sent.filter((s) => s.command === c).length,
  };
}

/** An EC2 service error as the SDK raises it. */
const ec2Error = (code: string, status: number) =>
  Object.assign(new Error(`simulated ${code}`), {
    name: code,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
  });

const IMAGE = {
  ImageId: 'ami-1',
  RootDeviceName: '/dev/xvda',
  RootDeviceType: 'ebs',
  BlockDeviceMappings: [
    { DeviceName: '/dev/xvda', Ebs: { DeleteOnTermination: false, SnapshotId: 'snap-1', VolumeSize: 15 } },
  ],
};

const launchHandlers = (image: () => unknown): Record<string, Handler> => ({
  DescribeInstances: () => ({ Reservations: [] }),
  DescribeImages: image,
  // The data volume (data-volume.ts): none yet, so one is made in the region's first zone.
  DescribeAvailabilityZones: () => ({
    AvailabilityZones: [{ ZoneName: 'us-east-1b' }, { ZoneName: 'us-east-1a' }],
  }),
  DescribeVolumes: () => ({ Volumes: [] }),
  CreateVolume: (input) => ({
    VolumeId: 'vol-0123456789abcdef0',
    AvailabilityZone: input.AvailabilityZone,
    State: 'available',
    Attachments: [],
  }),
  AttachVolume: () => ({}),
  RunInstances: (input) => ({
    Instances: [{ InstanceId: `i-${String(input.ClientToken)}`, State: { Name: 'pending' } }],
  }),
});

function backendOn(client: EC2Client) {
  return new Ec2Backend({
    client,
    keys: new MemorySshKeyStore(),
    imageId: 'ami-1',
    instanceType: 't3.micro',
  });
}

let minted = 0;
const spec = (generation: number): StartSpec => ({
  workspaceId: 'w1',
  orgId: 'o1',
  generation,
  runtime: 'echo',
  platformUrl: 'http://127.0.0.1:1',
  mintBootstrapToken: async () => `wo_boot_${++minted}`,
});

describe('launch: the root device mapping', () => {
  it('a failed image lookup is a typed error, launches nothing, and is asked again next time; then cached', async () => {
    let calls = 0;
    const ec2 = fakeEc2(
      launchHandlers(() => {
        if (++calls === 1) throw ec2Error('InternalError', 500);
        return { Images: [IMAGE] };
      }),
    );
    const backend = backendOn(ec2.client);
    const before = minted;
    await expect(backend.start(spec(1))).rejects.toMatchObject({
      name: 'BackendError',
      code: 'transient',
      message: expect.stringContaining('looking up image ami-1: InternalError'),
    });
    expect(ec2.count('RunInstances')).toBe(0);
    expect(minted).toBe(before);

    await backend.start(spec(1));
    await backend.start(spec(2));
    expect(ec2.count('DescribeImages')).toBe(2);
    const runs = ec2.sent.filter((s) => s.command === 'RunInstances').map((s) => s.input);
    expect(runs.map((r) => [r.ClientToken, r.BlockDeviceMappings])).toEqual(
      [1, 2].map((g) => [
        `w1-${g}`,
        [{ DeviceName: '/dev/xvda', Ebs: { DeleteOnTermination: true, VolumeSize: 15 } }],
      ]),
    );
    // No subnet configured: the instance launches into the data volume's zone.
    expect(runs.map((r) => r.Placement)).toEqual([1, 2].map(() => ({ AvailabilityZone: 'us-east-1a' })));
    expect(ec2.sent.filter((s) => s.command === 'CreateVolume').map((s) => s.input.AvailabilityZone)).toEqual(
      ['us-east-1a', 'us-east-1a'],
    );
  });

  it('an unknown image is permanent; an instance-store root launches without a mapping; no root name is refused', async () => {
    const missing = fakeEc2(
      launchHandlers(() => {
        throw ec2Error('InvalidAMIID.NotFound', 400);
      }),
    );
    await expect(backendOn(missing.client).start(spec(1))).rejects.toMatchObject({ code: 'permanent' });
    const empty = fakeEc2(launchHandlers(() => ({ Images: [] })));
    await expect(backendOn(empty.client).start(spec(1))).rejects.toMatchObject({ code: 'permanent' });

    const store = fakeEc2(
      launchHandlers(() => ({ Images: [{ ...IMAGE, RootDeviceType: 'instance-store' }] })),
    );
    await backendOn(store.client).start(spec(1));
    expect(store.sent.find((s) => s.command === 'RunInstances')?.input).not.toHaveProperty(
      'BlockDeviceMappings',
    );

    const unnamed = fakeEc2(launchHandlers(() => ({ Images: [{ ...IMAGE, RootDeviceName: undefined }] })));
    await expect(backendOn(unnamed.client).start(spec(1))).rejects.toMatchObject({
      code: 'permanent',
      message: expect.stringContaining('names no root device'),
    });
    expect(unnamed.count('RunInstances')).toBe(0);
  });
});

describe('volumes left behind', () => {
  const volume = (id: string, tags: Record<string, string>) => ({
    VolumeId: id,
    State: 'available',
    CreateTime: new Date('2026-01-01T00:00:00Z'),
    Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
  });
  const ours = (id: string, generation?: string) =>
    volume(id, {
      ManagedBy: 'workspace-orchestrator',
      WorkspaceId: 'w1',
      OrgId: 'o1',
      ...(generation === undefined ? {} : { Generation: generation }),
    });

  it('listManagedVolumes reads every page of available, managed volumes', async () => {
    const ec2 = fakeEc2({
      DescribeVolumes: (input) =>
        input.NextToken === undefined
          ? { Volumes: [ours('vol-1', '1'), ours('vol-x')], NextToken: 'page-2' }
          : { Volumes: [ours('vol-2', '2')] },
    });
    const listed = await backendOn(ec2.client).listManagedVolumes();
    expect(listed).toEqual([
      {
        name: 'vol-1',
        workspaceId: 'w1',
        orgId: 'o1',
        generation: 1,
        createdAt: new Date('2026-01-01T00:00:00Z'),
      },
      {
        name: 'vol-2',
        workspaceId: 'w1',
        orgId: 'o1',
        generation: 2,
        createdAt: new Date('2026-01-01T00:00:00Z'),
      },
    ]);
    expect(ec2.sent.map((s) => s.input)).toEqual([
      {
        Filters: [
          { Name: 'tag:ManagedBy', Values: ['workspace-orchestrator'] },
          { Name: 'status', Values: ['available'] },
        ],
        MaxResults: 500,
        NextToken: undefined,
      },
      expect.objectContaining({ NextToken: 'page-2' }),
    ]);
  });

  it('a listing that fails is a typed error (the sweep then skips the backend whole)', async () => {
    const ec2 = fakeEc2({
      DescribeVolumes: () => {
        throw ec2Error('RequestLimitExceeded', 503);
      },
    });
    await expect(backendOn(ec2.client).listManagedVolumes()).rejects.toMatchObject({
      name: 'BackendError',
      code: 'transient',
    });
  });

  it('removal: a volume gone already counts as removed, one attached meanwhile is left, other refusals fail', async () => {
    const deleteAnswers: Record<string, () => unknown> = {
      'vol-1': () => ({}),
      'vol-gone': () => {
        throw ec2Error('InvalidVolume.NotFound', 400);
      },
      'vol-attached': () => {
        throw ec2Error('VolumeInUse', 400);
      },
    };
    const handlers: Record<string, Handler> = {
      DescribeInstances: () => ({ Reservations: [] }),
      DescribeVolumes: () => ({ Volumes: Object.keys(deleteAnswers).map((id) => ours(id, '1')) }),
      DeleteVolume: (input) => deleteAnswers[String(input.VolumeId)]!(),
    };
    const ec2 = fakeEc2(handlers);
    expect(await backendOn(ec2.client).removeOrg('o1')).toEqual(['vol-1', 'vol-gone']);
    await backendOn(ec2.client).remove('w1', { generation: 1 });
    expect(ec2.sent.filter((s) => s.command === 'DescribeVolumes').map((s) => s.input.Filters)).toEqual([
      [
        { Name: 'tag:ManagedBy', Values: ['workspace-orchestrator'] },
        { Name: 'tag:OrgId', Values: ['o1'] },
        { Name: 'status', Values: ['available'] },
      ],
      [
        { Name: 'tag:ManagedBy', Values: ['workspace-orchestrator'] },
        { Name: 'tag:WorkspaceId', Values: ['w1'] },
        { Name: 'tag:Generation', Values: ['1'] },
        { Name: 'status', Values: ['available'] },
      ],
    ]);

    deleteAnswers['vol-1'] = () => {
      throw ec2Error('UnauthorizedOperation', 403);
    };
    await expect(backendOn(ec2.client).remove('w1', { volumes: true })).rejects.toMatchObject({
      name: 'BackendError',
      code: 'permanent',
      message: expect.stringContaining('deleting volume vol-1: UnauthorizedOperation'),
    });
  });
});
