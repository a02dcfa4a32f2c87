import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { z } from 'zod';

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

export const badRequest = (message: string, field?: string) =>
  new HttpError(400, 'invalid_request', message, { field });
export const notFound = (what = 'workspace') => new HttpError(404, 'not_found', `${what} not found`);
export const conflict = (message: string, code = 'conflict') => new HttpError(409, code, message);

/** Parses with zod; the 400 names the first offending field. */
export function parse<T extends z.ZodType>(schema: T, value: unknown, where = 'body'): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.length ? issue.path.join('.') : where;
  throw badRequest(`${field}: ${issue.message}`, field);
}

export const notFoundRoute: RequestHandler = (req) => {
  throw new HttpError(404, 'not_found', `no route for ${req.method} ${req.path}`);
};

export function errorHandler(log: { error: (obj: object, msg: string) => void }): ErrorRequestHandler {
  return (err: unknown, _req, res, _next) => {
    if (err instanceof HttpError) {
      if (err.extra.retryAfterSeconds !== undefined)
        res.set('Retry-After', String(err.extra.retryAfterSeconds));
      const body: Record<string, unknown> = { code: err.code, message: err.message };
      if (err.extra.field) body.field = err.extra.field;
      res.status(err.status).json({ error: body });
      return;
    }
    // body-parser errors carry a status and a type.
    const e = err as { status?: number; type?: string };
    if (e?.type === 'entity.parse.failed') {
      res.status(400).json({ error: { code: 'invalid_json', message: 'request body is not valid JSON' } });
      return;
    }
    if (e?.type === 'entity.too.large') {
      res.status(413).json({ error: { code: 'payload_too_large', message: 'request body too large' } });
      return;
    }
    if (e?.status && e.status >= 400 && e.status < 500) {
      res.status(e.status).json({ error: { code: 'bad_request', message: 'bad request' } });
      return;
    }
    log.error({ err }, 'unhandled error');
    res.status(500).json({ error: { code: 'internal', message: 'internal error' } });
  };
}
