/**
 * Real answers against the documented ones: finds the operation of a method and path in the route
 * table and validates the answer with the same zod schema /openapi.json was generated from. An
 * undocumented status, media type or field is a failure.
 */
import type { z } from 'zod';
import { errorStatuses } from '../../src/api/openapi/document.js';
import type { Operation } from '../../src/api/openapi/operation.js';
import { ROUTES } from '../../src/api/openapi/routes.js';
import { errorResponse } from '../../src/api/responses.js';
import { ApiClient, type ApiResponse } from './stack.js';

const templates = ROUTES.map((op) => ({
  op,
  regex: new RegExp(`^${op.path.replace(/\{[^}]+\}/g, '[^/]+')}/?$`),
  // A literal segment beats a parameter (`…/files/content` over `…/files/{x}`).
  literals: op.path.split('/').filter((s) => s && !s.startsWith('{')).length,
}));

/** The documented operation of `METHOD /path?query`, or null. */
function operationOf(method: string, pathWithQuery: string): Operation | null {
  const pathName = pathWithQuery.split('?')[0]!;
  const m = method.toLowerCase();
  const found = templates
    .filter((t) => t.op.method === m && t.regex.test(pathName))
    .sort((a, b) => b.literals - a.literals)[0];
  return found?.op ?? null;
}

/** The documented operation of `METHOD /path?query`, or throws. */
export function findOperation(method: string, pathWithQuery: string): Operation {
  const op = operationOf(method, pathWithQuery);
  if (!op) throw new Error(`${method} ${pathWithQuery.split('?')[0]} is not in the OpenAPI route table`);
  return op;
}

/** The media type part of a Content-Type header. */
const mediaType = (header: string | null | undefined) => (header ?? '').split(';')[0]!.trim().toLowerCase();

/**
 * Checks one answer: its status is documented for the operation, and a JSON body parses with the
 * documented schema (strict schemas: no undocumented field). Throws with the issues otherwise.
 */
export function checkResponse(
  method: string,
  pathWithQuery: string,
  res: { status: number; contentType?: string | null; body: unknown },
): void {
  const where = `${method} ${pathWithQuery} → ${res.status}`;
  const op = operationOf(method, pathWithQuery);
  if (!op) {
    // No operation there: the app's 404 for unknown routes, still the documented Error shape.
    if (res.status !== 404) throw new Error(`${where}: not in the OpenAPI route table`);
    const parsed = errorResponse.safeParse(res.body);
    if (!parsed.success) throw new Error(`${where}: not the Error shape: ${parsed.error.message}`);
    return;
  }
  const documented = op.responses[res.status];
  let schemas: Record<string, z.ZodType> | undefined;
  if (documented) schemas = documented.content;
  else if (errorStatuses(op).includes(res.status)) schemas = { 'application/json': errorResponse };
  else throw new Error(`${where}: status not documented for ${op.operationId}`);

  if (!schemas) {
    if (res.body !== null && res.body !== undefined && res.body !== '')
      throw new Error(`${where}: documented without a body, answered ${JSON.stringify(res.body)}`);
    return;
  }
  const type = mediaType(res.contentType) || 'application/json';
  const schema = schemas[type];
  if (!schema)
    throw new Error(`${where}: media type ${type} not documented (${Object.keys(schemas).join(', ')})`);
  if (type !== 'application/json') return;
  const parsed = schema.safeParse(res.body);
  if (!parsed.success) {
    throw new Error(`${where}: body does not match ${op.operationId}'s schema: ${parsed.error.message}`);
  }
}

/** An ApiClient whose every answer is checked against the document (see checkResponse). */
export class CheckedApiClient extends ApiClient {
  /** Operations answered so far, `operationId status`: what a suite covered. */
  readonly seen = new Set<string>();

  override async call(
    method: string,
    pathName: string,
    opts: { token?: string; body?: unknown; rawBody?: string } = {},
  ): Promise<ApiResponse<Awaited<ReturnType<ApiClient['call']>>['body']>> {
    const res = await super.call(method, pathName, opts);
    checkResponse(method, pathName, {
      status: res.status,
      contentType: res.headers.get('content-type'),
      body: res.body,
    });
    const op = operationOf(method, pathName);
    if (op) this.seen.add(`${op.operationId} ${res.status}`);
    return res;
  }
}
