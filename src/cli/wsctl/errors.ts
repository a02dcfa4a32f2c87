/**
 * Exit codes of `wsctl`, so scripts can tell "fix your token" from "no such workspace" from "try
 * again later" without parsing messages. Every error is one line on stderr.
 */
export const EXIT = {
  ok: 0,
  /** Anything else: a 5xx, a workspace that failed to boot, a timeout. */
  generic: 1,
  /** Bad arguments, or the server refused the request as invalid (400). */
  usage: 2,
  /** Missing/invalid token (401) or a forbidden action (403). */
  auth: 3,
  /** Unknown workspace, org, file or route (404). */
  notFound: 4,
  /** The request conflicts with the workspace's state or limits (409, 402, 429). */
  conflict: 5,
  /** The service cannot be reached or is unavailable (connection refused, 503). */
  unavailable: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
  ) {
    super(message);
  }
}

/** The exit code for an HTTP error status. */
export function exitCodeForStatus(status: number): ExitCode {
  if (status === 400 || status === 422) return EXIT.usage;
  if (status === 401 || status === 403) return EXIT.auth;
  if (status === 404) return EXIT.notFound;
  if (status === 402 || status === 409 || status === 429) return EXIT.conflict;
  if (status === 503) return EXIT.unavailable;
  return EXIT.generic;
}

/** The exit code for a terminal WebSocket close code (the contract's 44xx codes). */
export function exitCodeForClose(code: number): ExitCode {
  if (code === 4401) return EXIT.auth;
  if (code === 4404) return EXIT.notFound;
  if (code === 4409) return EXIT.conflict;
  return code === 1000 ? EXIT.ok : EXIT.generic;
}

/** One line, whatever the message carried (a server message never spans lines on stderr). */
export const oneLine = (s: string): string => s.replace(/\s*[\r\n]+\s*/g, ' ').trim();
