import { Router } from 'express';
import type { ApiDeps } from '../deps.js';

/** Activity log and chat history (`/v1/workspaces/:id/activity`, `/chat-history`). */
export function activityRouter(_deps: ApiDeps): Router {
  return Router();
}
