/** The API process on its own (production); workers run separately. */
import { ConfigError, loadConfig } from '../config.js';
import { exitOnFatalErrors } from '../fatal.js';
import { createLogger, loggerOptionsFromEnv } from '../log.js';
import { startService, type RunningService } from '../service.js';

const log = createLogger(loggerOptionsFromEnv());
let running: RunningService | undefined;
exitOnFatalErrors(log, async () => running?.close());

run().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else log.error({ err }, 'api failed');
  process.exit(1);
});

async function run(): Promise<void> {
  const service = await startService(loadConfig(), { api: true, worker: false, log });
  running = service;
  log.info({ url: service.url }, 'api up');
  const stop = async () => {
    await service.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}
