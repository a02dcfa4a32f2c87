/**
 * How a workspace's agent proves who it is before the platform sends it anything that matters. A
 * recorded endpoint can go stale and be reused by another tenant's agent (a host port freed when
 * dockerd restarts, a private IP handed to another instance), so on every new connection the
 * platform sends a fresh nonce with the workspace and generation it expects to reach, and only the
 * agent holding that generation's A2A credential (src/security/agent-credential.ts) can answer
 * HMAC-SHA256(credential, nonce ‖ workspace ‖ generation). The credential itself is never sent to
 * a peer that has not answered. Shared by the platform (src/a2a/identity.ts) and the agent
 * (src/agent/identity.ts); only node:crypto here, so the agent bundle stays self-contained.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Served by the agent without the credential header (the proof is the point of the exchange). */
export const IDENTITY_PATH = '/.well-known/wo-agent-identity';
export const NONCE_HEADER = 'x-wo-identity-nonce';
export const WORKSPACE_HEADER = 'x-wo-identity-workspace';
export const GENERATION_HEADER = 'x-wo-identity-generation';
export const PROOF_HEADER = 'x-wo-identity-proof';

/** base64url of 16 to 96 random bytes (the platform sends 32). */
export const NONCE_PATTERN = /^[A-Za-z0-9_-]{22,128}$/;
/** Workspace ids are printable tokens; nothing that could blur the fields of the proven string. */
export const WORKSPACE_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
export const GENERATION_PATTERN = /^[1-9][0-9]{0,15}$/;

/**
 * The proof: versioned and newline-separated, every field checked against a pattern without
 * newlines first, so no two (nonce, workspace, generation) triples sign the same bytes.
 */
export function identityProof(
  credential: string,
  nonce: string,
  workspaceId: string,
  generation: number,
): string {
  return createHmac('sha256', credential)
    .update(`wo-agent-identity/1\n${nonce}\n${workspaceId}\n${generation}`)
    .digest('base64url');
}

/** Constant-time comparison of two proofs (a presented one of any length or shape is just false). */
export function proofMatches(expected: string, presented: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}
