import { randomUUID } from 'node:crypto';

/** Who this agent is; everything the A2A answers and the registry calls need to say. */
export interface Identity {
  workspaceId: string;
  name: string;
  runtime: string;
  generation: number;
  configHash: string;
}

export const AGENT_VERSION = '0.1.0';
export const A2A_PROTOCOL_VERSION = '0.2.5';

export type RpcId = string | number | null;

export interface RpcRequest {
  id: RpcId;
  method: string;
  params: unknown;
}

export const RPC_PARSE_ERROR = -32700;
export const RPC_INVALID_REQUEST = -32600;
export const RPC_METHOD_NOT_FOUND = -32601;
export const RPC_INVALID_PARAMS = -32602;

export const rpcResult = (id: RpcId, result: unknown) => ({ jsonrpc: '2.0' as const, id, result });
export const rpcError = (id: RpcId, code: number, message: string) => ({
  jsonrpc: '2.0' as const,
  id,
  error: { code, message },
});

export function agentCard(identity: Identity, url: string) {
  return {
    name: identity.name,
    description: `Reference echo agent of workspace ${identity.name} (${identity.workspaceId})`,
    url,
    version: AGENT_VERSION,
    protocolVersion: A2A_PROTOCOL_VERSION,
    capabilities: { streaming: true },
    defaultInputModes: ['text'],
    defaultOutputModes: ['text'],
    skills: [
      {
        id: 'echo',
        name: 'echo',
        description: 'Answers with a deterministic echo of the text it received, naming the workspace.',
      },
    ],
    metadata: {
      workspaceId: identity.workspaceId,
      runtime: identity.runtime,
      generation: identity.generation,
    },
  };
}

/** Parses one JSON-RPC 2.0 request, or returns the error response to send instead. */
export function parseRpc(body: string): { request: RpcRequest } | { error: ReturnType<typeof rpcError> } {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    return { error: rpcError(null, RPC_PARSE_ERROR, 'Parse error: body is not valid JSON') };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { error: rpcError(null, RPC_INVALID_REQUEST, 'Invalid Request: expected one JSON-RPC object') };
  }
  const r = raw as Record<string, unknown>;
  const id: RpcId = typeof r.id === 'string' || typeof r.id === 'number' ? r.id : null;
  if (r.jsonrpc !== '2.0' || typeof r.method !== 'string') {
    return { error: rpcError(id, RPC_INVALID_REQUEST, 'Invalid Request: need jsonrpc "2.0" and a method') };
  }
  return { request: { id, method: r.method, params: r.params } };
}

/** The parts of an A2A message the echo skill uses. */
export interface IncomingMessage {
  text: string;
  peer: unknown;
  contextId: string | undefined;
}

/** Reads `params.message`; null when the params are not a message (→ invalid params). */
export function readMessage(params: unknown): IncomingMessage | null {
  if (typeof params !== 'object' || params === null) return null;
  const message = (params as { message?: unknown }).message;
  if (typeof message !== 'object' || message === null) return null;
  const { parts, metadata, contextId } = message as {
    parts?: unknown;
    metadata?: unknown;
    contextId?: unknown;
  };
  if (!Array.isArray(parts)) return null;
  const texts = parts
    .map((p: unknown) => (typeof p === 'object' && p !== null ? (p as { text?: unknown }).text : undefined))
    .filter((t): t is string => typeof t === 'string');
  const peer =
    typeof metadata === 'object' && metadata !== null
      ? ((metadata as { peer?: unknown }).peer ?? null)
      : null;
  return { text: texts.join(' '), peer, contextId: typeof contextId === 'string' ? contextId : undefined };
}

export const echoText = (identity: Identity, text: string): string =>
  `workspace ${identity.name} (${identity.workspaceId}) on runtime ${identity.runtime} received: ${text}`;

const replyMetadata = (identity: Identity, peer: unknown) => ({
  workspaceId: identity.workspaceId,
  runtime: identity.runtime,
  generation: identity.generation,
  peer,
});

/** The `message/send` result: one agent message with the deterministic echo. */
export function echoMessage(identity: Identity, msg: IncomingMessage) {
  return {
    kind: 'message',
    role: 'agent',
    messageId: randomUUID(),
    ...(msg.contextId === undefined ? {} : { contextId: msg.contextId }),
    parts: [{ kind: 'text', text: echoText(identity, msg.text) }],
    metadata: replyMetadata(identity, msg.peer),
  };
}

/** One `message/stream` event (chunk i of n, 1-based); the last one is final. */
export function streamChunk(
  identity: Identity,
  msg: IncomingMessage,
  stream: { taskId: string; contextId: string },
  i: number,
  n: number,
) {
  const final = i === n;
  return {
    kind: 'status-update',
    taskId: stream.taskId,
    contextId: stream.contextId,
    final,
    text: `chunk ${i} of ${n}: ${echoText(identity, msg.text)}`,
    status: { state: final ? 'completed' : 'working', timestamp: new Date().toISOString() },
    metadata: replyMetadata(identity, msg.peer),
  };
}
