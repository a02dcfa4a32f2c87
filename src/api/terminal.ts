import type { Server } from 'node:http';
import type { ApiDeps } from './deps.js';

/** The terminal WebSocket (`GET /v1/workspaces/:id/terminal`), attached to the API's HTTP server. */
export function attachTerminal(_server: Server, _deps: ApiDeps): { close(): Promise<void> } {
  return { close: async () => undefined };
}
