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
  type BackendName,
  type CarriedState,
  type RestartPolicyInput,
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

/** What a create's entity input comes from besides the workspace itself (the service's settings). */
export interface CreateSettings {
  bootDeadlineMs: number;
  continueAsNewAfterEvents: number;
  /** The restart policy's settings; the workspace's or its template's `restartPolicy` picks always/never. */
  restartPolicy?: RestartPolicyInput;
  templates: Record<string, { restartPolicy?: 'always' | 'never' }>;
}

/**
 * The input of a workspace's first entity run: the API's create, and the orphan sweep's start of a
 * create whose own start never landed. The policy in force: the workspace's own, else its
 * template's, else the default.
 */
export function createInput(
  settings: CreateSettings,
  w: {
    id: string;
    orgId: string;
    backend: BackendName;
    template: string | null;
    restartPolicy: 'always' | 'never' | null;
  },
): WorkspaceWorkflowInput {
  const template =
    w.template && Object.hasOwn(settings.templates, w.template) ? settings.templates[w.template] : undefined;
  return {
    workspaceId: w.id,
    orgId: w.orgId,
    backend: w.backend,
    bootDeadlineMs: settings.bootDeadlineMs,
    continueAsNewAfterEvents: settings.continueAsNewAfterEvents,
    restartPolicy: {
      ...settings.restartPolicy,
      policy: w.restartPolicy ?? template?.restartPolicy ?? settings.restartPolicy?.policy ?? 'always',
    },
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
