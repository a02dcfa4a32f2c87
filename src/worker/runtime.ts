/**
 * The Temporal runtime of a worker process, installed once before its first connection: the SDK's
 * logs (its own, the activity context loggers', and the native core's, forwarded) go to the
 * service's pino logger, and the SDK's own metrics (temporal_*: task slots, polls, latencies) are
 * served for Prometheus at WORKER_METRICS_ADDRESS.
 */
import { Runtime, type RuntimeOptions } from '@temporalio/worker';
import type { Logger as TemporalLogger, LogLevel, LogMetadata } from '@temporalio/common';
import type { Logger } from 'pino';
import { metricsAddresses } from './metrics-address.js';

/** The workspace a workflow id belongs to (`workspace:<id>`, `workspace:<id>:schedule:…`). */
const WORKSPACE_WORKFLOW = /^workspace:([A-Za-z0-9_-]+)/;

/** Temporal's Logger interface over pino: the SDK's metadata (workflowId, activity…) as fields. */
export function temporalLogger(log: Logger): TemporalLogger {
  const write = (level: LogLevel, message: string, meta: LogMetadata = {}): void => {
    const fields: Record<string, unknown> = { ...meta };
    const workflowId = fields.workflowId;
    if (fields.workspaceId === undefined && typeof workflowId === 'string') {
      const m = WORKSPACE_WORKFLOW.exec(workflowId);
      if (m) fields.workspaceId = m[1];
    }
    const at =
      level === 'TRACE'
        ? 'trace'
        : level === 'DEBUG'
          ? 'debug'
          : level === 'INFO'
            ? 'info'
            : level === 'WARN'
              ? 'warn'
              : 'error';
    log[at](fields, message);
  };
  return {
    log: write,
    trace: (m, meta) => write('TRACE', m, meta),
    debug: (m, meta) => write('DEBUG', m, meta),
    info: (m, meta) => write('INFO', m, meta),
    warn: (m, meta) => write('WARN', m, meta),
    error: (m, meta) => write('ERROR', m, meta),
  };
}

/**
 * Installs the runtime, serving its metrics on the first address of WORKER_METRICS_ADDRESS the
 * exporter can bind (one address, or each port of a range in turn); returns that address, or
 * undefined for `off` or when none was free. A port already taken costs the metrics, never the
 * worker: logged, and the runtime is installed without them.
 */
export function installWorkerRuntime(log: Logger, metricsAddress: string): string | undefined {
  const base: RuntimeOptions = {
    logger: temporalLogger(log.child({ component: 'temporal' })),
    telemetryOptions: { logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} } },
  };
  // The configuration has validated the setting; an invalid one here serves nothing.
  const candidates = metricsAddresses(metricsAddress) ?? [];
  let lastErr: unknown;
  for (const bindAddress of candidates) {
    try {
      // A failed bind throws before the singleton is set, so the next candidate may install.
      Runtime.install({
        ...base,
        telemetryOptions: { ...base.telemetryOptions, metrics: { prometheus: { bindAddress } } },
      });
      log.info({ metricsAddress: bindAddress }, 'worker metrics served');
      return bindAddress;
    } catch (err) {
      lastErr = err;
    }
  }
  if (candidates.length > 0) log.warn({ err: lastErr, metricsAddress }, 'worker metrics not served');
  Runtime.install(base);
  return undefined;
}
