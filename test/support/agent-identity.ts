/**
 * For HTTP servers standing in for a workspace's agent: answers the platform's identity check
 * (src/a2a/identity.ts) with the agent's own code (src/agent/identity.ts), for whichever workspace
 * generation the platform asks, with the credential `credentialOf` says that generation holds;
 * every other request goes to the server's own handler.
 */
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { answerIdentity } from '../../src/agent/identity.js';
import { presentedAgentCredential } from '../../src/db/agent-credentials.js';
import {
  GENERATION_HEADER,
  IDENTITY_PATH,
  NONCE_HEADER,
  PROOF_HEADER,
  WORKSPACE_HEADER,
  identityProof,
} from '../../src/security/agent-identity.js';
import { SecretBox } from '../../src/security/secrets.js';
import type { Stack } from './stack.js';

export type CredentialOf = (workspaceId: string, generation: number) => string | Promise<string>;

export function answeringIdentity(credentialOf: CredentialOf, handler: RequestListener): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' || req.url !== IDENTITY_PATH) {
      handler(req, res);
      return;
    }
    const workspaceId = String(req.headers[WORKSPACE_HEADER] ?? '');
    const generation = Number(req.headers[GENERATION_HEADER] ?? 0);
    void Promise.resolve(credentialOf(workspaceId, generation)).then(
      (credential) => answerIdentity(req, res, { workspaceId, generation, credential }),
      () => res.writeHead(500, { 'content-length': '0' }).end(),
    );
  };
}

/** Makes `server` (its request handlers as they are) answer the identity check first. */
export function provingIdentity<S extends Server>(server: S, credentialOf: CredentialOf): S {
  const handlers = server.listeners('request') as RequestListener[];
  server.removeAllListeners('request');
  server.on(
    'request',
    answeringIdentity(credentialOf, (req, res) => {
      for (const h of handlers) h.call(server, req, res);
    }),
  );
  return server;
}

/** The credentials the stack's platform presents (what its genuine agents hold). */
export function stackCredentials(stack: () => Stack): CredentialOf {
  let box: SecretBox | undefined;
  return (workspaceId, generation) => {
    const s = stack();
    box ??= new SecretBox(s.config.SECRETS_KEY, s.config.SECRETS_OLD_KEYS);
    return presentedAgentCredential(s.service.db.pool, box, workspaceId, generation);
  };
}

/**
 * For raw TCP stand-ins: the bytes of the answer an agent holding `credential` gives to the identity
 * check whose request head (up to the blank line) is `head`, for the workspace generation it asks.
 */
export function rawIdentityAnswer(head: string, credential: string): string {
  const { nonce, workspaceId, generation } = askedIn(head);
  const proof = identityProof(credential, nonce, workspaceId, generation);
  return `HTTP/1.1 204 No Content\r\n${PROOF_HEADER}: ${proof}\r\n\r\n`;
}

/** The same, with the credential `credentialOf` says the generation asked for holds. */
export async function rawIdentityAnswerOf(head: string, credentialOf: CredentialOf): Promise<string> {
  const { workspaceId, generation } = askedIn(head);
  return rawIdentityAnswer(head, await credentialOf(workspaceId, generation));
}

function askedIn(head: string): { nonce: string; workspaceId: string; generation: number } {
  const header = (name: string) => new RegExp(`^${name}: (.*)$`, 'mi').exec(head)?.[1]?.trim() ?? '';
  return {
    nonce: header(NONCE_HEADER),
    workspaceId: header(WORKSPACE_HEADER),
    generation: Number(header(GENERATION_HEADER)),
  };
}
