/**
 * How an entity workflow is started, shared by the API (create, delete of a row with no entity)
 * and the org cascade's activity (a workspace of a deleted org whose entity is not there).
 */
import type { WorkflowStartOptions } from '@temporalio/client';
import {
  OrgIdKey,
  WorkspaceBackendKey,
  WorkspaceIdKey,
  WorkspaceStatusKey,
  workspaceWorkflowId,
  type CarriedState,
  type WorkspaceStatus,
  type WorkspaceWorkflowInput,
} from '../workflows/messages.js';
import type { workspaceWorkflow } from '../workflows/workspace/workflow.js';
import { entityMetadata, type WorkspaceAbout } from './workflow-metadata.js';

/**
 * The start options of `workspace:<id>`. `firstStart` is the create's start: it must be the first
 * workflow ever under this id, so a delete-only entity started (and maybe already finished) by an
 * org cascade or a DELETE before a late create's start keeps that start from provisioning a
 * workspace that is already deleted.
 */
export function entityStartOptions(
  input: WorkspaceWorkflowInput,
  taskQueue: string,
  opts: { firstStart: boolean },
  about: WorkspaceAbout = {},
): WorkflowStartOptions<typeof workspaceWorkflow> {
  return {
    ...entityMetadata(input, about),
    taskQueue,
    workflowId: workspaceWorkflowId(input.workspaceId),
    args: [input],
    ...(opts.firstStart ? { workflowIdReusePolicy: 'REJECT_DUPLICATE' as const } : {}),
    typedSearchAttributes: [
      { key: WorkspaceIdKey, value: input.workspaceId },
      { key: OrgIdKey, value: input.orgId },
      { key: WorkspaceBackendKey, value: input.backend },
      { key: WorkspaceStatusKey, value: input.carried?.status ?? 'provisioning' },
    ],
  };
}

/**
 * The carried state of an entity that only deletes (continue-as-new's `deleting` carry): for a row
 * that is not `deleted` but has no running entity. It converges like any delete.
 */
export function deleteOnlyCarry(row: { status: WorkspaceStatus; generation: number }): CarriedState {
  return {
    status: row.status,
    generation: row.generation,
    configHash: null,
    desired: 'running',
    restartPending: false,
    error: null,
    latestSavedVersion: 0,
    deleting: { attempts: 0 },
  };
}
