/**
 * How the org cascade is started, shared by the API (DELETE /v1/orgs/:id) and the orphan sweep (an
 * org marked deleted whose cascade never started: its API stopped between the commit and the start,
 * or Temporal was down then).
 */
import type { WorkflowStartOptions } from '@temporalio/client';
import type { orgDeleteWorkflow } from '../workflows/sweeps.js';
import { orgDeleteMetadata } from './workflow-metadata.js';

export const orgDeleteWorkflowId = (orgId: string): string => `org:${orgId}:delete`;

/**
 * One cascade per org at a time: a start while one runs is refused (already started), and one that
 * ended may be started again (Temporal's default id reuse policy).
 */
export function orgDeleteStartOptions(
  orgId: string,
  waitMs: number,
  taskQueue: string,
): WorkflowStartOptions<typeof orgDeleteWorkflow> {
  return {
    taskQueue,
    workflowId: orgDeleteWorkflowId(orgId),
    args: [{ orgId, waitMs }],
    ...orgDeleteMetadata(orgId, waitMs),
  };
}
