/**
 * The service's one logger: pino JSON, each line carrying the fields of the context it was written
 * in (request id, workspace, workflow: see {@link logContext}), secrets redacted twice over: by key
 * (pino `redact` paths: authorization headers, tokens, secret values) and by value (every line
 * passes through the redaction function of src/security/redact.ts, with the process's own secrets).
 * `LOG_PRETTY=1` (what `./dev up` sets) prints it through pino-pretty instead of as JSON.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import pino, { type DestinationStream, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';
import { redact } from './security/redact.js';
import { workspaceWorkflowId } from './workflows/messages.js';

/** What every line written in a context carries (an HTTP request, an activity). */
export interface LogContext {
  requestId?: string;
  workspaceId?: string;
  workflowId?: string;
  orgId?: string;
}

/** The context of the line being written; mutable, so a route can add the workspace it resolved. */
export const logContext = new AsyncLocalStorage<LogContext>();

/** From here on, the current context's lines name this workspace and its entity workflow. */
export function bindLogWorkspace(workspaceId: string, ctx = logContext.getStore()): void {
  if (!ctx) return;
  ctx.workspaceId = workspaceId;
  ctx.workflowId = workspaceWorkflowId(workspaceId);
}

/** Keys whose values never reach a log line, wherever they sit (pino `redact`, one level deep). */
export const REDACTED_PATHS = [
  'authorization',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
  '*.authorization',
  '*.headers.authorization',
  '*.headers.Authorization',
  'token',
  '*.token',
  'workspaceToken',
  '*.workspaceToken',
  'bootstrapToken',
  '*.bootstrapToken',
  'agentCredential',
  '*.agentCredential',
  'secret',
  '*.secret',
  'secrets',
  '*.secrets',
  'password',
  '*.password',
  'apiKey',
  '*.apiKey',
];

export interface LoggerOptions {
  level?: string;
  /** Human-readable lines (pino-pretty) instead of JSON. */
  pretty?: boolean;
  /** Where lines go (default stdout); tests pass a stream to read them. */
  destination?: DestinationStream;
  /** Values that must never appear in a line (the admin token, keys): replaced wherever they are. */
  hide?: readonly (string | undefined)[];
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const out = opts.destination ?? pino.destination(1);
  const sink: DestinationStream = opts.pretty
    ? pinoPretty({ destination: out, colorize: process.stdout.isTTY, sync: true })
    : out;
  // A line is JSON: a value is matched as JSON writes it (quotes and backslashes escaped).
  const hidden = (opts.hide ?? [])
    .filter((v): v is string => typeof v === 'string' && v.length >= 8)
    .map((v) => JSON.stringify(v).slice(1, -1));
  return pino(
    {
      level: opts.level ?? 'info',
      redact: { paths: REDACTED_PATHS, censor: '[REDACTED]' },
      // The line's own fields win over the context's (pino merges the mixin first).
      mixin: () => ({ ...logContext.getStore() }),
    },
    { write: (line: string) => sink.write(redact(line, hidden)) },
  );
}

/** The logger settings of a process, from its environment (read before the full configuration). */
export function loggerOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): LoggerOptions {
  return {
    level: env.LOG_LEVEL ?? 'info',
    pretty: env.LOG_PRETTY === '1',
    hide: [
      env.ADMIN_TOKEN,
      env.SECRETS_KEY,
      ...(env.SECRETS_OLD_KEYS ?? '').split(','),
      env.AWS_SECRET_ACCESS_KEY,
      databasePassword(env.DATABASE_URL),
    ],
  };
}

function databasePassword(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return decodeURIComponent(new URL(url).password) || undefined;
  } catch {
    return undefined;
  }
}
