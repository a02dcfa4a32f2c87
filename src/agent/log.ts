/**
 * Agent logging. Stdout becomes the workspace boot log (docker logs / console output), so every
 * line is prefixed and timestamped; callers never pass tokens or secret values in here.
 */
export function log(message: string): void {
  process.stdout.write(`${new Date().toISOString()} agent: ${message}\n`);
}

/**
 * Fatal error: one clear line on stderr, exit 1. The platform reads the boot log to explain a
 * failed boot, so the line must stand on its own ("agent: bootstrap refused (401 ...): ...").
 */
export function die(message: string): never {
  process.stderr.write(`agent: ${message}\n`);
  process.exit(1);
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    // fetch() hides the useful part (ECONNREFUSED, ENOTFOUND) in `cause`.
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return `${err.message}${cause}`;
  }
  return String(err);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
