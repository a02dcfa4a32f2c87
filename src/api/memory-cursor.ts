/**
 * The memories API's page cursor: opaque to clients, it carries where the previous page ended
 * (the last item's createdAt with microseconds, and its id), so keyset paging stays exact under
 * inserts and deletes, and a tampered cursor is a 400, never a query error.
 */
import type { MemoryPosition } from '../db/memories.js';
import { badRequest } from './errors.js';
import { ID_PATTERN, isRealTimestamp } from './schemas.js';

const PREFIX = 'mem:';

export function encodeMemoryCursor(p: MemoryPosition): string {
  return Buffer.from(`${PREFIX}${p.createdAt}|${p.id}`).toString('base64url');
}

export function decodeMemoryCursor(cursor: string): MemoryPosition {
  const raw = Buffer.from(cursor, 'base64url').toString('utf8');
  const [createdAt = '', id = ''] = raw.startsWith(PREFIX) ? raw.slice(PREFIX.length).split('|') : [];
  if (createdAt.length > 40 || !isRealTimestamp(createdAt) || !ID_PATTERN.test(id)) {
    throw badRequest('cursor: invalid cursor', 'cursor');
  }
  return { createdAt, id };
}
