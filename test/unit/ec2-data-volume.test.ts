/**
 * The data volume's attach decision (data-volume.ts): from what EC2 says of the volume, attach it,
 * wait, or nothing to do. Against moto: integration/ec2-backend.test.ts › the data volume.
 */
import type { Volume } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { dataVolumeTags, isDataVolume, nextAttachStep } from '../../src/backends/ec2/data-volume.js';

const vol = (v: Partial<Volume>): Volume => ({
  VolumeId: 'vol-1',
  State: 'available',
  Attachments: [],
  ...v,
});

describe('nextAttachStep', () => {
  it('attaches an available volume attached to nothing', () => {
    expect(nextAttachStep(vol({}), 'i-new')).toEqual({ kind: 'attach' });
    // A leftover `detached` record is no attachment.
    expect(
      nextAttachStep(vol({ Attachments: [{ InstanceId: 'i-old', State: 'detached' }] }), 'i-new'),
    ).toEqual({ kind: 'attach' });
  });

  it('does nothing when it is with this instance already (a retried start, a stop/start)', () => {
    for (const State of ['attaching', 'attached'] as const) {
      expect(
        nextAttachStep(vol({ State: 'in-use', Attachments: [{ InstanceId: 'i-new', State }] }), 'i-new'),
      ).toEqual({ kind: 'attached' });
    }
  });

  it('waits while another instance holds it, or while it is not available yet', () => {
    expect(
      nextAttachStep(
        vol({ State: 'in-use', Attachments: [{ InstanceId: 'i-old', State: 'detaching' }] }),
        'i-new',
      ),
    ).toEqual({ kind: 'wait', why: 'attached to i-old (detaching)' });
    expect(nextAttachStep(vol({ State: 'creating' }), 'i-new')).toEqual({
      kind: 'wait',
      why: 'volume is creating',
    });
  });
});

describe('data volume tags', () => {
  it('carry the identity and the role, never a generation', () => {
    const tags = dataVolumeTags({ workspaceId: 'w1', orgId: 'o1' });
    expect(Object.fromEntries(tags.map((t) => [t.Key, t.Value]))).toEqual({
      ManagedBy: 'workspace-orchestrator',
      WorkspaceId: 'w1',
      OrgId: 'o1',
      Role: 'workspace-data',
      Name: 'ws-w1-data',
    });
    expect(isDataVolume({ Tags: tags })).toBe(true);
    expect(isDataVolume({ Tags: tags.filter((t) => t.Key !== 'Role') })).toBe(false);
    expect(isDataVolume({})).toBe(false);
  });
});
