/** A worker process on its own (production runs N of these; tests SIGKILL one mid-provision). */
import pino from 'pino';
import { ConfigError, loadConfig } from '../config.js';
import { exitOnFatalErrors } from '../fatal.js';
import { startService, type RunningService } from '../service.js';

const log = pino({ level: process.env.LOG_LEVEL ?? 'info' });
let running: RunningService | undefined;
exitOnFatalErrors(log, async () => running?.close());

loadConfigAndRun().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else log.error({ err }, 'worker failed');
  process.exit(1);
});

async function loadConfigAndRun(): Promise<void> {
  const service = await startService(loadConfig(), { api: false, worker: true, log });
  running = service;
  const stop = async () => {
    await service.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}
