import { newId } from '../security/tokens.js';
import type { Queryable } from './queryable.js';

/** Content must already be redacted by the caller (the one redaction function). */
export async function insertMemory(
  db: Queryable,
  workspaceId: string,
  content: string,
  scope: string,
): Promise<string> {
  const id = newId();
  await db.query(`INSERT INTO memories (id, workspace_id, content, scope) VALUES ($1, $2, $3, $4)`, [
    id,
    workspaceId,
    content,
    scope,
  ]);
  return id;
}
