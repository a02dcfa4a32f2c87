/**
 * The credential the A2A proxy presents to a workspace's agent. Derived, not stored: HMAC of
 * `<workspaceId>:<generation>` under a key derived from SECRETS_KEY, so every generation has its own
 * (a superseded one's credential opens nothing new) and the platform needs no new table. The agent
 * gets it in its bootstrap bundle and refuses A2A calls without it, so a neighbour that reaches the
 * agent's address directly (same VPC, same host) cannot bypass the proxy's org scoping and log.
 */
import { createHmac } from 'node:crypto';
import type { SecretBox } from './secrets.js';

/** The header the proxy sends it in (src/agent/server.ts reads the same name). */
export const AGENT_CREDENTIAL_HEADER = 'x-wo-agent-credential';

export function agentCredential(box: SecretBox, workspaceId: string, generation: number): string {
  return createHmac('sha256', box.deriveKey('agent-a2a-credential'))
    .update(`${workspaceId}:${generation}`)
    .digest('base64url');
}
