import { Router } from 'express';
import type { ApiDeps } from '../deps.js';

/** A2A proxy (`/v1/workspaces/:id/a2a`, `/agent-card`): forwards to the backend-recorded endpoint. */
export function a2aRouter(_deps: ApiDeps): Router {
  return Router();
}
