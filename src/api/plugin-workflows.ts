/**
 * The API's side of the plugin workflows: start one per request, forward the agent's reports.
 * Every call ends by a deadline (src/api/temporal-deadline.ts), and a start is only tried once a
 * worker is known to poll the task queue: with Temporal away or no worker, the request is refused
 * (503) within the contract's 5 s instead of hanging or being accepted into a queue nobody reads.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import {
  pluginWorkflowId,
  pluginsReportedSignal,
  type PluginWorkflowInput,
  type PluginsReported,
} from '../workflows/messages.js';
import type { pluginWorkflow } from '../workflows/plugin.js';
import { PLUGIN_REPORT_DEADLINE_MS, pluginStartOptions } from '../domain/plugin-start.js';
import { DeadlineExceeded, withDeadline } from './temporal-deadline.js';

export class PluginWorkflowBusy extends Error {}

export interface PluginWorkflowsOptions {
  /** How long the agent has to report the new plugin set after delivery. */
  reportDeadlineMs?: number;
  /** Budget of one request's Temporal calls together (the worker check and the start). */
  callTimeoutMs?: number;
  /**
   * Budget of forwarding one heartbeat's reports: short, the heartbeat waits on it (and may still
   * signal the entity, with its own 4 s, within the agent's 10 s request timeout).
   */
  reportTimeoutMs?: number;
  /** Throws unless a worker polls the task queue, by the deadline (EntityClient.requireWorker). */
  requireWorker?: (deadline: number) => Promise<void>;
}

export class PluginWorkflows {
  readonly reportDeadlineMs: number;
  private readonly callTimeoutMs: number;
  private readonly reportTimeoutMs: number;
  private readonly requireWorkerBy: (deadline: number) => Promise<void>;

  constructor(
    private readonly client: Client,
    private readonly taskQueue: string,
    opts: PluginWorkflowsOptions = {},
  ) {
    this.reportDeadlineMs = opts.reportDeadlineMs ?? PLUGIN_REPORT_DEADLINE_MS;
    this.callTimeoutMs = opts.callTimeoutMs ?? 4000;
    this.reportTimeoutMs = opts.reportTimeoutMs ?? 2000;
    this.requireWorkerBy = opts.requireWorker ?? (async () => undefined);
  }

  /** The deadline of a request's calls (requireWorker, then start) begun now. */
  deadline(): number {
    return Date.now() + this.callTimeoutMs;
  }

  /** Throws unless a worker polls the task queue (NoWorkerPolling), or Temporal's error. */
  async requireWorker(deadline: number): Promise<void> {
    await this.requireWorkerBy(deadline);
  }

  /**
   * Starts the request's run; a run of the same plugin still going → PluginWorkflowBusy. Any other
   * throw (the deadline included) leaves the outcome unknown: the start may still reach Temporal.
   */
  async start(input: Omit<PluginWorkflowInput, 'reportDeadlineMs'>, deadline: number): Promise<void> {
    const workflowId = pluginWorkflowId(input.workspaceId, input.name);
    const startRun = () => this.startRun(input, deadline);
    try {
      await startRun();
      return;
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    // A request is only started once the plugin's previous one is settled (its row says so), and a
    // run settles its request just before it ends: the run still there is most likely ending now
    // (a caller who saw `installed` and uninstalled at once). Wait for it, keeping a second of the
    // deadline for one more start; a run that does not end by then (a lost start still going) is
    // busy: 409.
    const waitUntil = deadline - 1_000;
    let ended: boolean;
    try {
      if (waitUntil > Date.now()) {
        await withDeadline(this.client, () => this.client.workflow.getHandle(workflowId).result(), waitUntil);
      }
      ended = Date.now() < waitUntil;
    } catch (err) {
      // It ended whatever its outcome (failed, terminated): only a wait that ran out says otherwise.
      ended = !(err instanceof DeadlineExceeded) && Date.now() < waitUntil;
    }
    if (!ended) throw new PluginWorkflowBusy(`plugin workflow ${workflowId} is still running`);
    try {
      await startRun();
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) throw new PluginWorkflowBusy(err.message);
      throw err;
    }
  }

  /**
   * Starts the run of a request left in flight with none (lost: see PLUGIN_REQUEST_LOST_AFTER_MS),
   * once; `running` when a run of the plugin is there already (it is carrying the request out).
   */
  async resume(
    input: Omit<PluginWorkflowInput, 'reportDeadlineMs'>,
    deadline: number,
  ): Promise<'resumed' | 'running'> {
    try {
      await this.startRun(input, deadline);
      return 'resumed';
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return 'running';
      throw err;
    }
  }

  private startRun(input: Omit<PluginWorkflowInput, 'reportDeadlineMs'>, deadline: number) {
    return withDeadline(
      this.client,
      () =>
        this.client.workflow.start<typeof pluginWorkflow>(
          'pluginWorkflow',
          pluginStartOptions({ ...input, reportDeadlineMs: this.reportDeadlineMs }, this.taskQueue),
        ),
      deadline,
    );
  }

  /** Best effort: a run that already finished has nothing to learn from a report. */
  async report(workspaceId: string, name: string, report: PluginsReported): Promise<void> {
    try {
      await withDeadline(
        this.client,
        () =>
          this.client.workflow
            .getHandle(pluginWorkflowId(workspaceId, name))
            .signal(pluginsReportedSignal, report),
        Date.now() + this.reportTimeoutMs,
      );
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return;
      if (err instanceof Error && /already completed/i.test(err.message)) return;
      throw err;
    }
  }
}
