/** The API's side of the plugin workflows: start one per request, forward the agent's reports. */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import {
  pluginWorkflowId,
  pluginsReportedSignal,
  type PluginWorkflowInput,
  type PluginsReported,
} from '../workflows/messages.js';
import type { pluginWorkflow } from '../workflows/plugin.js';
import { pluginMetadata } from '../domain/workflow-metadata.js';

export class PluginWorkflowBusy extends Error {}

export class PluginWorkflows {
  constructor(
    private readonly client: Client,
    private readonly taskQueue: string,
    readonly reportDeadlineMs = 120_000,
  ) {}

  /** Starts the request's run; a run of the same plugin still going → PluginWorkflowBusy. */
  async start(input: Omit<PluginWorkflowInput, 'reportDeadlineMs'>): Promise<void> {
    try {
      await this.client.workflow.start<typeof pluginWorkflow>('pluginWorkflow', {
        taskQueue: this.taskQueue,
        workflowId: pluginWorkflowId(input.workspaceId, input.name),
        args: [{ ...input, reportDeadlineMs: this.reportDeadlineMs }],
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        ...pluginMetadata(input),
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) throw new PluginWorkflowBusy(err.message);
      throw err;
    }
  }

  /** Best effort: a run that already finished has nothing to learn from a report. */
  async report(workspaceId: string, name: string, report: PluginsReported): Promise<void> {
    try {
      await this.client.workflow
        .getHandle(pluginWorkflowId(workspaceId, name))
        .signal(pluginsReportedSignal, report);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return;
      if (err instanceof Error && /already completed/i.test(err.message)) return;
      throw err;
    }
  }
}
