/**
 * The API's side of the entity workflow: start it, send it Updates and Signals, and turn Temporal's
 * errors into the HTTP contract's answers.
 */
import {
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import {
  OrgIdKey,
  WorkspaceBackendKey,
  WorkspaceIdKey,
  WorkspaceStatusKey,
  agentHealthSignal,
  agentLivenessSignal,
  agentReadySignal,
  configureUpdate,
  workspaceWorkflowId,
  type ConfigureInput,
  type ConfigureResult,
  type AgentHealth,
  type AgentLiveness,
  type AgentReady,
  type WorkspaceWorkflowInput,
} from '../workflows/messages.js';
import type { workspaceWorkflow } from '../workflows/workspace.js';
import { HttpError, conflict } from './errors.js';

export class EntityClient {
  constructor(
    private readonly client: Client,
    private readonly taskQueue: string,
  ) {}

  async start(input: WorkspaceWorkflowInput): Promise<string> {
    const workflowId = workspaceWorkflowId(input.workspaceId);
    await this.client.workflow.start<typeof workspaceWorkflow>('workspaceWorkflow', {
      taskQueue: this.taskQueue,
      workflowId,
      args: [input],
      typedSearchAttributes: [
        { key: WorkspaceIdKey, value: input.workspaceId },
        { key: OrgIdKey, value: input.orgId },
        { key: WorkspaceBackendKey, value: input.backend },
        { key: WorkspaceStatusKey, value: 'provisioning' },
      ],
    });
    return workflowId;
  }

  private handle(workspaceId: string): WorkflowHandle {
    return this.client.workflow.getHandle(workspaceWorkflowId(workspaceId));
  }

  /** Saves config through the entity (serialized with restarts); answers once it is in the DB. */
  async configure(workspaceId: string, input: ConfigureInput): Promise<ConfigureResult> {
    return this.mapErrors(() => this.handle(workspaceId).executeUpdate(configureUpdate, { args: [input] }));
  }

  /** Runs a lifecycle Update; a validator rejection or a finished entity answers 409. */
  async update<Ret>(workspaceId: string, def: UpdateDefinition<Ret, []>): Promise<Ret> {
    return this.mapErrors(() => this.handle(workspaceId).executeUpdate(def));
  }

  private async mapErrors<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        const msg = err.cause?.message ?? err.message;
        throw conflict(msg.replace(/^conflict:\s*/, ''));
      }
      if (err instanceof WorkflowNotFoundError || isCompleted(err)) {
        throw conflict('workspace is deleted');
      }
      throw new HttpError(503, 'temporal_unavailable', 'workflow service unavailable');
    }
  }

  /** Signals are best effort: an entity that already finished (deleted) has nothing to learn. */
  async signalReady(workspaceId: string, ready: AgentReady): Promise<void> {
    await this.signal(workspaceId, () => this.handle(workspaceId).signal(agentReadySignal, ready));
  }

  async signalHealth(workspaceId: string, health: AgentHealth): Promise<void> {
    await this.signal(workspaceId, () => this.handle(workspaceId).signal(agentHealthSignal, health));
  }

  async signalLiveness(workspaceId: string, liveness: AgentLiveness): Promise<void> {
    await this.signal(workspaceId, () => this.handle(workspaceId).signal(agentLivenessSignal, liveness));
  }

  private async signal(_workspaceId: string, send: () => Promise<void>): Promise<void> {
    try {
      await send();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || isCompleted(err)) return;
      throw err;
    }
  }
}

function isCompleted(err: unknown): boolean {
  return err instanceof Error && /already completed|workflow execution already completed/i.test(err.message);
}
