/** Names and labels of everything the Docker backend creates; the orphan sweep relies on these. */

export const MANAGED_BY = 'workspace-orchestrator';

export const LABEL = {
  managedBy: 'wo.managed-by',
  workspaceId: 'wo.workspace-id',
  orgId: 'wo.org-id',
  generation: 'wo.generation',
  runtime: 'wo.runtime',
} as const;

/** The generation is in the name, so a retried create collides (409) instead of duplicating. */
export const containerName = (workspaceId: string, generation: number): string =>
  `ws-${workspaceId}-g${generation}`;

/** Per workspace, not per generation: /configs and /workspace survive restarts and re-provisions. */
export const volumeNames = (workspaceId: string) => ({
  configs: `ws-${workspaceId}-configs`,
  workspace: `ws-${workspaceId}-workspace`,
});

export function workspaceLabels(spec: {
  workspaceId: string;
  orgId: string;
  generation?: number;
  runtime?: string;
}): Record<string, string> {
  return {
    [LABEL.managedBy]: MANAGED_BY,
    [LABEL.workspaceId]: spec.workspaceId,
    [LABEL.orgId]: spec.orgId,
    ...(spec.generation === undefined ? {} : { [LABEL.generation]: String(spec.generation) }),
    ...(spec.runtime === undefined ? {} : { [LABEL.runtime]: spec.runtime }),
  };
}
