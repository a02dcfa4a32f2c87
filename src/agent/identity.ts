/**
 * The agent's half of the identity check (src/security/agent-identity.ts): answers the platform's
 * nonce with the proof that it holds this generation's credential. Plain node:http types, so a test
 * standing in for an agent answers with the same code.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  GENERATION_HEADER,
  NONCE_HEADER,
  NONCE_PATTERN,
  PROOF_HEADER,
  WORKSPACE_HEADER,
  identityProof,
} from '../security/agent-identity.js';

export interface ProvenIdentity {
  workspaceId: string;
  generation: number;
  /** The per-generation A2A credential from the bundle ('' = none: nothing is proven). */
  credential: string;
}

const one = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
};

/**
 * Answers `GET IDENTITY_PATH`: 204 with the proof header when the platform asks for this workspace
 * and generation; 421 (Misdirected Request) when it expects another one (it reached the wrong
 * agent: nothing to prove, and the platform treats it as unreachable); 400 for a malformed nonce.
 * Every answer is bodiless and keeps the connection open: the platform's real request follows on
 * it.
 */
export function answerIdentity(req: IncomingMessage, res: ServerResponse, me: ProvenIdentity): void {
  req.resume();
  const nonce = one(req, NONCE_HEADER);
  if (nonce === undefined || !NONCE_PATTERN.test(nonce) || me.credential === '') {
    res.writeHead(400, { 'content-length': '0' }).end();
    return;
  }
  if (
    one(req, WORKSPACE_HEADER) !== me.workspaceId ||
    one(req, GENERATION_HEADER) !== String(me.generation)
  ) {
    res.writeHead(421, { 'content-length': '0' }).end();
    return;
  }
  res
    .writeHead(204, {
      [PROOF_HEADER]: identityProof(me.credential, nonce, me.workspaceId, me.generation),
      'cache-control': 'no-store',
    })
    .end();
}
