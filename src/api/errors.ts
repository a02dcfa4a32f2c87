import type { ErrorRequestHandler, Request, RequestHandler } from 'express';
import pg from 'pg';
import type { z } from 'zod';
import { AppError, type RefusalKind } from '../app/errors.js';
import { databaseUnavailable } from '../db/unavailable.js';

/** Every error answer is `{error: {code, message, field?}}`: never a stack trace, never a secret. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: { field?: string; retryAfterSeconds?: number } = {},
  ) {
    super(message);
  }
}

const STATUS_OF: Record<RefusalKind, number> = {
  invalid: 400,
  payment_required: 402,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  upstream_failed: 502,
  insufficient_storage: 507,
  unavailable: 503,
};

/** An application service's refusal as the API answers it. */
export function fromApp(err: unknown): HttpError | null {
  if (!(err instanceof AppError)) return null;
  return new HttpError(STATUS_OF[err.kind], err.code, err.message, err.extra);
}

export const badRequest = (message: string, field?: string) =>
  new HttpError(400, 'invalid_request', message, { field });
export const notFound = (what = 'workspace') => new HttpError(404, 'not_found', `${what} not found`);
export const conflict = (message: string, code = 'conflict') => new HttpError(409, code, message);

/** Parses with zod; the 400 names the first offending field. */
export function parse<T extends z.ZodType>(schema: T, value: unknown, where = 'body'): z.infer<T> {
  // api.md: an invalid body is 400 with the field named.
  if (value === NOT_JSON) throw nonJsonBody(where);
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  // A field the route does not know (a typo would otherwise be dropped unseen): named itself.
  if (issue.code === 'unrecognized_keys') {
    const field = [...issue.path, issue.keys[0]].join('.');
    throw badRequest(`${field}: unknown field`, field);
  }
  const field = issue.path.length ? issue.path.join('.') : where;
  throw badRequest(`${field}: ${issue.message}`, field);
}

/** `req.body` of a request whose body was not declared JSON: `parse` answers 400 `body` for it. */
export const NOT_JSON: Readonly<Record<string, never>> = Object.freeze({});

/**
 * Behind the JSON parser: marks a body that is not declared JSON (text/plain, a form, none
 * declared), so that a route reading a body says so rather than that the body seems missing. A route that reads none (an action: restart, stop) is unaffected, whatever was sent.
 */
export const markNonJsonBody: RequestHandler = (req, _res, next) => {
  if (hasNonJsonBody(req)) req.body = NOT_JSON;
  next();
};

/** Whether the request carries a body declared other than JSON (or not declared at all). */
export function hasNonJsonBody(req: Request): boolean {
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length']) > 0;
  return hasBody && req.is('application/json') === false;
}

/** The refusal of such a body where one is read. */
export const nonJsonBody = (where = 'body') =>
  badRequest(`${where}: must be JSON (Content-Type: application/json)`, where);

/**
 * Why the JSON parser refused a body: not JSON at all, or JSON that is not an object or array (the
 * parser is strict: `null`, `"text"`, `42` are valid JSON, but no route takes them).
 */
function parseFailure(body: unknown): string {
  if (typeof body === 'string') {
    try {
      JSON.parse(body);
      return 'request body must be a JSON object';
    } catch {
      // Not JSON: the message below.
    }
  }
  return 'request body is not valid JSON';
}

export const notFoundRoute: RequestHandler = (req) => {
  throw new HttpError(404, 'not_found', `no route for ${req.method} ${req.path}`);
};

const camel = (s: string) => s.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

/** The field a PostgreSQL error names: its column, else the column part of its constraint's name. */
function pgField(err: pg.DatabaseError): string | undefined {
  if (err.column) return camel(err.column);
  if (!err.constraint) return undefined;
  let name = err.constraint;
  if (err.table && name.startsWith(`${err.table}_`)) name = name.slice(err.table.length + 1);
  name = name.replace(/_(fkey|pkey|key|check|not_null|excl)$/, '');
  return name ? camel(name) : undefined;
}

/**
 * Safety net behind validation: a PostgreSQL data error (SQLSTATE class 22) or integrity violation
 * (class 23) is the caller's input, not our failure. Null for every other error.
 */
export function fromPostgres(err: unknown): HttpError | null {
  if (!(err instanceof pg.DatabaseError) || typeof err.code !== 'string') return null;
  const field = pgField(err);
  const prefix = field ? `${field}: ` : '';
  if (err.code === '23505') {
    return new HttpError(409, 'conflict', `${prefix}already exists`, { field });
  }
  if (err.code.startsWith('23')) {
    const what = err.code === '23503' ? 'refers to something that does not exist' : 'violates a constraint';
    return new HttpError(400, 'invalid_request', `${prefix}${what}`, { field });
  }
  if (err.code.startsWith('22')) {
    // The SQLSTATE, not PostgreSQL's text: that may quote stored values.
    return new HttpError(400, 'invalid_request', `${prefix}invalid value (SQLSTATE ${err.code})`, { field });
  }
  return null;
}

/** The database unreachable, stalled, shutting down or full: the caller may try again shortly. */
export function fromDatabaseOutage(err: unknown): HttpError | null {
  if (!databaseUnavailable(err)) return null;
  return new HttpError(503, 'database_unavailable', 'the database is unavailable; try again shortly', {
    retryAfterSeconds: 5,
  });
}

export function errorHandler(log: {
  error: (obj: object, msg: string) => void;
  warn: (obj: object, msg: string) => void;
}): ErrorRequestHandler {
  return (rawErr: unknown, req, res, _next) => {
    if (res.headersSent) {
      // A stream (SSE, proxied answer) failed midway: the status is gone, so end the connection.
      log.error({ err: rawErr, method: req.method, path: req.path }, 'error after the answer started');
      res.destroy();
      return;
    }
    const outage = fromDatabaseOutage(rawErr);
    if (outage) log.warn({ err: rawErr, method: req.method, path: req.path }, 'database unavailable');
    const err = fromApp(rawErr) ?? fromPostgres(rawErr) ?? outage ?? rawErr;
    if (err instanceof HttpError) {
      // The answer says little on purpose (no backend detail leaves the service): the log says why.
      if (err.status >= 500 && rawErr instanceof Error && rawErr.cause !== undefined) {
        log.warn(
          { err: rawErr.cause, method: req.method, path: req.path, code: err.code },
          'answered with a 5xx',
        );
      }
      if (err.extra.retryAfterSeconds !== undefined)
        res.set('Retry-After', String(err.extra.retryAfterSeconds));
      const body: Record<string, unknown> = { code: err.code, message: err.message };
      if (err.extra.field) body.field = err.extra.field;
      res.status(err.status).json({ error: body });
      return;
    }
    // body-parser errors carry a status and a type.
    const e = err as { status?: number; type?: string };
    // Every 400 names its field: the parser's are about the body as a whole.
    if (e?.type === 'entity.parse.failed') {
      res.status(400).json({
        error: {
          code: 'invalid_json',
          message: parseFailure((err as { body?: unknown }).body),
          field: 'body',
        },
      });
      return;
    }
    if (e?.type === 'entity.too.large') {
      res.status(413).json({ error: { code: 'payload_too_large', message: 'request body too large' } });
      return;
    }
    if (err instanceof URIError) {
      // express could not decode a %-escape of the path.
      res.status(400).json({ error: { code: 'invalid_request', message: 'malformed %-escape in the path' } });
      return;
    }
    if (e?.status === 415) {
      // body-parser: a charset or encoding it cannot read.
      res
        .status(415)
        .json({ error: { code: 'unsupported_media_type', message: 'unsupported body encoding' } });
      return;
    }
    if (e?.status && e.status >= 400 && e.status < 500) {
      // The parser's other refusals (a body that does not inflate as its Content-Encoding says,
      // a length that does not match): the body could not be read.
      const error: Record<string, string> = { code: 'bad_request', message: 'body: could not be read' };
      if (e.status === 400) error.field = 'body';
      res.status(e.status).json({ error });
      return;
    }
    log.error({ err, method: req.method, path: req.path }, 'unhandled error');
    res.status(500).json({ error: { code: 'internal', message: 'internal error' } });
  };
}
