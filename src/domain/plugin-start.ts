/**
 * How a plugin workflow is started, shared by the API (a request) and the orphan sweep (a request
 * whose run was never started: its API stopped between recording it and starting the run).
 */
import type { WorkflowStartOptions } from '@temporalio/client';
import { pluginWorkflowId, type PluginWorkflowInput } from '../workflows/messages.js';
import type { pluginWorkflow } from '../workflows/plugin.js';
import { pluginMetadata } from './workflow-metadata.js';

/**
 * A request in flight this long with no run of its plugin is lost. A request's own start is over
 * within the API's Temporal deadline (4 s) or put back; the margin covers a late start landing.
 */
export const PLUGIN_REQUEST_LOST_AFTER_MS = 30_000;

/** The agent's time to report a plugin set after delivery, unless the settings say otherwise. */
export const PLUGIN_REPORT_DEADLINE_MS = 120_000;

export function pluginStartOptions(
  input: PluginWorkflowInput,
  taskQueue: string,
): WorkflowStartOptions<typeof pluginWorkflow> {
  return {
    taskQueue,
    workflowId: pluginWorkflowId(input.workspaceId, input.name),
    args: [input],
    // One run per plugin at a time; a new request's run follows the settled one under the same id.
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    ...pluginMetadata(input),
  };
}
