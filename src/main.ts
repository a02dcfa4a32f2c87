/** `./dev up`: API + worker in one process (embedded PGlite allows one owner). */
import { ConfigError, loadConfig } from './config.js';
import { exitOnFatalErrors } from './fatal.js';
import { createLogger, loggerOptionsFromEnv } from './log.js';
import { startService, type RunningService } from './service.js';
import { installWorkerRuntime } from './worker/runtime.js';

const log = createLogger(loggerOptionsFromEnv());
let running: RunningService | undefined;
exitOnFatalErrors(log, async () => running?.close());

async function main(): Promise<void> {
  const config = loadConfig();
  const workerMetricsAddress = installWorkerRuntime(log, config.WORKER_METRICS_ADDRESS);
  const service = await startService(config, { api: true, worker: true, log, workerMetricsAddress });
  running = service;
  log.info({ url: service.url }, 'workspace-orchestrator up');
  const stop = async () => {
    log.info('shutting down');
    await service.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else log.error({ err }, 'failed to start');
  process.exit(1);
});
