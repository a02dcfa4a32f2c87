/**
 * The reference agent's A2A surface, on the official `@a2a-js/sdk`: its agent card (protocol 1.0,
 * with a 0.3 JSON-RPC interface for older peers) and the echo skill as an `AgentExecutor`.
 */
import { randomUUID } from 'node:crypto';
import { A2A_PROTOCOL_VERSION, Role, TaskState, type AgentCard, type Message, type Part } from '@a2a-js/sdk';
import {
  AgentEvent,
  DefaultRequestHandler,
  InMemoryTaskStore,
  type AgentExecutor,
  type ExecutionEventBus,
  type RequestContext,
  type ServerCallContext,
} from '@a2a-js/sdk/server';
import type { AgentHooks } from './bundle.js';
import type { AgentStats } from './stats.js';

/** Who this agent is; everything the A2A answers and the registry calls need to say. */
export interface Identity {
  workspaceId: string;
  name: string;
  runtime: string;
  generation: number;
  configHash: string;
}

export const AGENT_VERSION = '0.2.0';
/** The protocol the agent speaks natively (the SDK's), and the older one it also answers. */
export const A2A_VERSION = A2A_PROTOCOL_VERSION;
export const A2A_LEGACY_VERSION = '0.3';
/**
 * The extension that carries which workspace this agent is (cards have no free-form metadata):
 * callers that care read its params; others may ignore it (not required).
 */
export const WORKSPACE_EXTENSION_URI = 'urn:workspace-orchestrator:workspace:v1';

const TEXT = 'text/plain';

/** The card for `url`, the address callers use (the agent's own; the platform's proxy swaps in its). */
export function agentCard(identity: Identity, url: string): AgentCard {
  return {
    name: identity.name,
    description: `Reference echo agent of workspace ${identity.name} (${identity.workspaceId})`,
    supportedInterfaces: [
      { url, protocolBinding: 'JSONRPC', tenant: '', protocolVersion: A2A_VERSION },
      { url, protocolBinding: 'JSONRPC', tenant: '', protocolVersion: A2A_LEGACY_VERSION },
    ],
    provider: undefined,
    version: AGENT_VERSION,
    capabilities: {
      streaming: true,
      pushNotifications: false,
      extendedAgentCard: false,
      extensions: [
        {
          uri: WORKSPACE_EXTENSION_URI,
          description: 'The workspace this agent serves.',
          required: false,
          params: {
            workspaceId: identity.workspaceId,
            runtime: identity.runtime,
            generation: identity.generation,
          },
        },
      ],
    },
    securitySchemes: {},
    securityRequirements: [],
    defaultInputModes: [TEXT],
    defaultOutputModes: [TEXT],
    skills: [
      {
        id: 'echo',
        name: 'echo',
        description: 'Answers with a deterministic echo of the text it received, naming the workspace.',
        tags: ['echo', 'test'],
        examples: ['hello there'],
        inputModes: [TEXT],
        outputModes: [TEXT],
        securityRequirements: [],
      },
    ],
    signatures: [],
  };
}

export const echoText = (identity: Identity, text: string): string =>
  `workspace ${identity.name} (${identity.workspaceId}) on runtime ${identity.runtime} received: ${text}`;

/** The text parts of a message, joined with spaces. */
export function textOf(message: Message | undefined): string {
  return (message?.parts ?? [])
    .map((p) => (p.content?.$case === 'text' ? p.content.value : undefined))
    .filter((t): t is string => typeof t === 'string')
    .join(' ');
}

const textPart = (text: string): Part => ({
  content: { $case: 'text', value: text },
  metadata: undefined,
  filename: '',
  mediaType: TEXT,
});

/** What every answer carries: who answered, and who the platform said asked (null: not a workspace). */
function replyMetadata(identity: Identity, incoming: Message) {
  const meta = incoming.metadata as { peer?: unknown } | undefined;
  return {
    workspaceId: identity.workspaceId,
    runtime: identity.runtime,
    generation: identity.generation,
    peer: meta?.peer ?? null,
  };
}

function agentMessage(
  identity: Identity,
  incoming: Message,
  ids: { contextId: string; taskId: string },
  text: string,
): Message {
  return {
    messageId: randomUUID(),
    contextId: ids.contextId,
    taskId: ids.taskId,
    role: Role.ROLE_AGENT,
    parts: [textPart(text)],
    metadata: replyMetadata(identity, incoming),
    extensions: [],
    referenceTaskIds: [],
  };
}

/** Marks a call as streamed (set by the request handler, read by the executor). */
const STREAMED = 'wo.streamed';

/**
 * The SDK's handler, marking streamed calls: a plain send is answered with one message, a stream
 * with a task whose status moves through `streamChunks` updates (a message stream of one event
 * would show a proxy nothing about buffering).
 */
class EchoRequestHandler extends DefaultRequestHandler {
  override sendMessageStream(...args: Parameters<DefaultRequestHandler['sendMessageStream']>) {
    args[1].state.set(STREAMED, true);
    return super.sendMessageStream(...args);
  }
}

const streamed = (context: ServerCallContext) => context.state.get(STREAMED) === true;

export class EchoExecutor implements AgentExecutor {
  private readonly timers = new Map<string, { cancel: () => void }>();

  constructor(
    private readonly identity: Identity,
    private readonly hooks: AgentHooks,
    private readonly stats: AgentStats,
  ) {}

  async execute(ctx: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const incoming = ctx.userMessage;
    const text = echoText(this.identity, textOf(incoming));
    const ids = { contextId: ctx.contextId, taskId: ctx.taskId };
    this.stats.charge(this.hooks.centsPerTask);
    this.stats.taskStarted();
    if (!streamed(ctx.context)) {
      bus.publish(AgentEvent.message({ ...agentMessage(this.identity, incoming, ids, text), taskId: '' }));
      bus.finished();
      this.stats.taskEnded(false);
      return;
    }
    const metadata = replyMetadata(this.identity, incoming);
    bus.publish(
      AgentEvent.task({
        id: ctx.taskId,
        contextId: ctx.contextId,
        status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: now() },
        artifacts: [],
        history: [incoming],
        metadata,
      }),
    );
    const n = this.hooks.streamChunks;
    let failed = true;
    try {
      for (let i = 1; i <= n; i++) {
        if (i > 1 && !(await this.pause(ctx.taskId))) {
          bus.publish(this.status(ids, TaskState.TASK_STATE_CANCELED, incoming, 'canceled'));
          return;
        }
        const state = i === n ? TaskState.TASK_STATE_COMPLETED : TaskState.TASK_STATE_WORKING;
        bus.publish(this.status(ids, state, incoming, `chunk ${i} of ${n}: ${text}`));
      }
      failed = false;
    } finally {
      this.stats.taskEnded(failed);
      bus.finished();
    }
  }

  async cancelTask(taskId: string): Promise<void> {
    this.timers.get(taskId)?.cancel();
  }

  private status(
    ids: { contextId: string; taskId: string },
    state: TaskState,
    incoming: Message,
    text: string,
  ) {
    return AgentEvent.statusUpdate({
      taskId: ids.taskId,
      contextId: ids.contextId,
      status: { state, message: agentMessage(this.identity, incoming, ids, text), timestamp: now() },
      metadata: replyMetadata(this.identity, incoming),
    });
  }

  /** Waits one stream interval; false when the task was canceled meanwhile. */
  private pause(taskId: string): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(taskId);
        resolve(true);
      }, this.hooks.streamIntervalMs);
      this.timers.set(taskId, {
        cancel: () => {
          clearTimeout(timer);
          this.timers.delete(taskId);
          resolve(false);
        },
      });
    });
  }
}

const now = () => new Date().toISOString();

/** The SDK request handler serving the echo skill, tasks kept in memory (they live one generation). */
export function echoRequestHandler(
  identity: Identity,
  hooks: AgentHooks,
  stats: AgentStats,
  cardUrl: string,
): DefaultRequestHandler {
  return new EchoRequestHandler(
    agentCard(identity, cardUrl),
    new InMemoryTaskStore(),
    new EchoExecutor(identity, hooks, stats),
  );
}
