/**
 * Memory use cases: a workspace's memories, paged newest first and redacted before storage with
 * the one redaction function (`redactorFor`).
 */
import type pg from 'pg';
import {
  deleteMemory,
  insertMemoryWithin,
  listMemories,
  type MemoryPosition,
  type MemoryRow,
} from '../db/memories.js';
import { redactorFor } from '../db/secrets.js';
import type { SecretBox } from '../security/secrets.js';
import { missing, quotaExceeded } from './errors.js';
import { MEMORIES_PER_WORKSPACE_MAX } from '../domain/quotas.js';

export interface MemoryDeps {
  db: pg.Pool;
  secrets: SecretBox;
  settings?: { memoriesPerWorkspaceMax?: number };
}

/** One page, newest first; `next` says where the following page starts (null on the last). */
export function listPage(
  deps: MemoryDeps,
  workspaceId: string,
  q: { limit: number; scope?: string; after?: MemoryPosition },
): Promise<{ items: MemoryRow[]; next: MemoryPosition | null }> {
  return listMemories(deps.db, { workspaceId, ...q });
}

/** Stores a memory with every secret of the workspace (and its org's) redacted from it. */
export async function remember(
  deps: MemoryDeps,
  workspaceId: string,
  m: { content: string; scope?: string },
): Promise<MemoryRow> {
  const clean = await redactorFor(deps.db, deps.secrets, workspaceId);
  const max = deps.settings?.memoriesPerWorkspaceMax ?? MEMORIES_PER_WORKSPACE_MAX;
  const stored = await insertMemoryWithin(deps.db, workspaceId, clean(m.content), m.scope ?? 'local', max);
  if (!stored) {
    throw quotaExceeded(`the workspace holds ${max} memories, its quota; delete some first`);
  }
  return stored;
}

/** Forgets one memory; a memory id that is not the workspace's is not found. */
export async function forget(deps: MemoryDeps, workspaceId: string, memoryId: string): Promise<void> {
  if (!(await deleteMemory(deps.db, workspaceId, memoryId))) throw missing('memory');
}
