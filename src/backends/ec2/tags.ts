/** Tags and names of everything the EC2 backend launches; the orphan sweep and lookups rely on these. */
import type { Tag, TagSpecification } from '@aws-sdk/client-ec2';

export const MANAGED_BY = 'workspace-orchestrator';

export const TAG = {
  managedBy: 'ManagedBy',
  workspaceId: 'WorkspaceId',
  orgId: 'OrgId',
  generation: 'Generation',
  runtime: 'Runtime',
  name: 'Name',
  /** Set on a workspace's data volume (data-volume.ts); instances and root volumes carry none. */
  role: 'Role',
} as const;

/** Same shape as the Docker container name, so an operator recognises a workspace on both backends. */
export const instanceName = (workspaceId: string, generation: number): string =>
  `ws-${workspaceId}-g${generation}`;

/**
 * RunInstances idempotency token (AWS: at most 64 ASCII characters). The generation is in it, so a
 * retried activity gets the instance the first attempt launched instead of a second one.
 */
export function clientToken(workspaceId: string, generation: number): string {
  const token = `${workspaceId}-${generation}`;
  if (token.length > 64 || !/^[\x21-\x7e]+$/.test(token)) {
    throw new Error(`workspace id ${JSON.stringify(workspaceId)} does not fit an EC2 ClientToken`);
  }
  return token;
}

export function instanceTags(spec: {
  workspaceId: string;
  orgId: string;
  generation: number;
  runtime: string;
}): Tag[] {
  return [
    { Key: TAG.managedBy, Value: MANAGED_BY },
    { Key: TAG.workspaceId, Value: spec.workspaceId },
    { Key: TAG.orgId, Value: spec.orgId },
    { Key: TAG.generation, Value: String(spec.generation) },
    { Key: TAG.runtime, Value: spec.runtime },
    { Key: TAG.name, Value: instanceName(spec.workspaceId, spec.generation) },
  ];
}

/** Tags applied atomically with the launch: an instance is never visible without its identity. */
export function launchTagSpecifications(tags: Tag[]): TagSpecification[] {
  return [
    { ResourceType: 'instance', Tags: tags },
    // The root volume carries the identity too, so a leaked volume can be traced to its workspace.
    { ResourceType: 'volume', Tags: tags.filter((t) => t.Key !== TAG.name) },
  ];
}

/** A tag of an instance or a volume. */
export function tagValue(resource: { Tags?: Tag[] }, key: string): string | undefined {
  return resource.Tags?.find((t) => t.Key === key)?.Value;
}

/**
 * The workspace identity an instance or volume was tagged with at launch; null when a tag is
 * missing (our managed-by tag without our identity tags: not ours to manage).
 */
export function identityOf(resource: {
  Tags?: Tag[];
}): { workspaceId: string; orgId: string; generation: number } | null {
  const workspaceId = tagValue(resource, TAG.workspaceId);
  const generation = Number(tagValue(resource, TAG.generation));
  if (!workspaceId || !Number.isInteger(generation)) return null;
  return { workspaceId, orgId: tagValue(resource, TAG.orgId) ?? '', generation };
}

/** DescribeInstances filters selecting a workspace's instances (one generation, or all of them). */
export function workspaceFilters(
  workspaceId: string,
  generation?: number,
): Array<{ Name: string; Values: string[] }> {
  return [
    { Name: `tag:${TAG.managedBy}`, Values: [MANAGED_BY] },
    { Name: `tag:${TAG.workspaceId}`, Values: [workspaceId] },
    ...(generation === undefined ? [] : [{ Name: `tag:${TAG.generation}`, Values: [String(generation)] }]),
  ];
}
