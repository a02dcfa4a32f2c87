/**
 * An `uncaughtException` or `unhandledRejection` is a bug, never a way to keep serving: the process
 * logs it with its origin, tries a bounded clean shutdown (so the worker's slots and the API's
 * sockets are released rather than cut) and exits non-zero for the supervisor to restart it.
 */
import type { Logger } from 'pino';

/** How long the shutdown after a fatal error may take before the process exits anyway. */
export const FATAL_SHUTDOWN_MS = 5_000;

export function exitOnFatalErrors(
  log: Pick<Logger, 'fatal'>,
  shutdown: () => Promise<void> = async () => undefined,
  exit: (code: number) => void = (code) => process.exit(code),
): void {
  let exiting = false;
  const fatal = (err: unknown, origin: string): void => {
    log.fatal({ err, origin, pid: process.pid }, `fatal ${origin}: exiting`);
    if (exiting) return;
    exiting = true;
    process.exitCode = 1;
    const timer = setTimeout(() => exit(1), FATAL_SHUTDOWN_MS);
    timer.unref();
    shutdown()
      .catch(() => undefined)
      .finally(() => {
        clearTimeout(timer);
        exit(1);
      });
  };
  process.on('uncaughtException', (err, origin) => fatal(err, origin));
  process.on('unhandledRejection', (reason) => fatal(reason, 'unhandledRejection'));
}
