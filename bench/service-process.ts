/**
 * One role of the real service in its own process, as production deploys it (docker-compose.yml:
 * `node dist/api/main.js` and `node dist/worker/main.js`): `startService` with the options
 * src/api/main.ts or src/worker/main.ts pass, on the config the parent sends. Forked by
 * bench-env.ts (placement `processes`); the protocol is child.ts's.
 *
 *   start {role: 'api' | 'worker', env}  → {url: string | null}
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import pino from 'pino';
import { loadConfig } from '../src/config.js';
import { startService, type RunningService } from '../src/service.js';
import { serveChild } from './child-serve.js';

let service: RunningService | undefined;

serveChild(
  {
    start: async (arg: { role: 'api' | 'worker'; env: Record<string, string> }) => {
      if (service) throw new Error('already started');
      const worker = arg.role === 'worker';
      // The worker logs through the Temporal runtime (stderr); INFO is worker state chatter.
      if (worker) Runtime.install({ logger: new DefaultLogger('WARN') });
      service = await startService(loadConfig(arg.env), {
        api: !worker,
        worker,
        // Logs go to stderr: the parent's stdout carries the report.
        log: pino({ level: 'warn' }, pino.destination(2)),
      });
      return { url: service.url ?? null };
    },
  },
  async () => {
    await service?.close();
  },
);
