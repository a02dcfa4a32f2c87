/**
 * The page cursor of the lists paged by id alone (workspaces, orgs): opaque to clients, it names
 * the last item of the previous page, and the query pages on from where that item stands (keyset
 * paging, stable under inserts). A tampered cursor, or one of another list, is a 400, never a
 * query error.
 */
import { badRequest } from './errors.js';
import { ID_PATTERN } from './schemas.js';

export type CursorKind = 'ws' | 'org';

export function encodeIdCursor(kind: CursorKind, id: string): string {
  return Buffer.from(`${kind}:${id}`).toString('base64url');
}

export function decodeIdCursor(kind: CursorKind, cursor: string): string {
  const raw = Buffer.from(cursor, 'base64url').toString('utf8');
  const id = raw.startsWith(`${kind}:`) ? raw.slice(kind.length + 1) : '';
  if (!ID_PATTERN.test(id)) throw badRequest('cursor: invalid cursor', 'cursor');
  return id;
}
