/** The shape of one documented operation: what the route table says and the generator renders. */
import type { z } from 'zod';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** Who may call: each is a bearer token of its own kind (security schemes of the same names). */
export type Auth = 'adminToken' | 'orgKey' | 'workspaceToken' | 'bootstrapToken';

export interface Content {
  /** Media type → body schema (zod). */
  [mediaType: string]: z.ZodType;
}

export interface Answer {
  description: string;
  /** Media type → schema; absent: no body (204, 101). */
  content?: Content;
  /** Response headers, name → description. */
  headers?: Record<string, string>;
}

export interface Operation {
  method: Method;
  /** OpenAPI form: `/v1/workspaces/{id}`. */
  path: string;
  operationId: string;
  tag: string;
  summary: string;
  description?: string;
  /** Empty: public. */
  auth: readonly Auth[];
  params?: { path?: z.ZodObject; query?: z.ZodObject };
  body?: { description?: string; content: Content; required?: boolean };
  /** Success (and other non-error) answers by status. */
  responses: Record<number, Answer>;
  /**
   * Served by an `upgrade` handler of the HTTP server, not the Express app (the terminal): no
   * default error answers, and the router walk does not expect it.
   */
  upgrade?: true;
  /** Error statuses beyond the defaults (401/429 on authenticated routes, 400/413/415 on JSON bodies). */
  errors?: readonly number[];
}
