/** A worker process on its own (production runs N of these; tests SIGKILL one mid-provision). */
import { ConfigError, loadConfig } from '../config.js';
import { exitOnFatalErrors } from '../fatal.js';
import { createLogger, loggerOptionsFromEnv } from '../log.js';
import { startService, type RunningService } from '../service.js';
import { installWorkerRuntime } from './runtime.js';

const log = createLogger(loggerOptionsFromEnv());
let running: RunningService | undefined;
exitOnFatalErrors(log, async () => running?.close());

loadConfigAndRun().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else log.error({ err }, 'worker failed');
  process.exit(1);
});

async function loadConfigAndRun(): Promise<void> {
  const config = loadConfig();
  const workerMetricsAddress = installWorkerRuntime(log, config.WORKER_METRICS_ADDRESS);
  const service = await startService(config, { api: false, worker: true, log, workerMetricsAddress });
  running = service;
  const stop = async () => {
    await service.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}
