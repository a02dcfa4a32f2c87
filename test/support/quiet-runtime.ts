/**
 * Imported for its effect by the test modules that run Temporal workers: the SDK's default logger
 * prints every worker state change and bundle at INFO, thousands of lines per run that bury the
 * failures. Warnings and errors still print. Must run before the first worker or connection of the
 * process (the runtime is installed once).
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';

try {
  Runtime.install({ logger: new DefaultLogger('WARN') });
} catch {
  // Already installed in this process (another module got there first): keep that one.
}
