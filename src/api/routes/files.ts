import { Router } from 'express';
import type { ApiDeps } from '../deps.js';

/** Files API (`/v1/workspaces/:id/files…`), served directly by the backend, not through Temporal. */
export function filesRouter(_deps: ApiDeps): Router {
  return Router();
}
