/**
 * The Temporal runtime of a worker process, installed once before its first connection: the SDK's
 * logs (its own, the activity context loggers', and the native core's, forwarded) go to the
 * service's pino logger, and the SDK's own metrics (temporal_*: task slots, polls, latencies) are
 * served for Prometheus at WORKER_METRICS_ADDRESS.
 */
import { Runtime, type RuntimeOptions } from '@temporalio/worker';
import type { Logger as TemporalLogger, LogLevel, LogMetadata } from '@temporalio/common';
import type { Logger } from 'pino';

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
 * Installs the runtime; `metricsAddress` `off` serves no metrics. A port already taken (a second
 * worker on the host with the default) costs the metrics, never the worker: logged, and the runtime
 * is installed without them.
 */
export function installWorkerRuntime(log: Logger, metricsAddress: string): void {
  const base: RuntimeOptions = {
    logger: temporalLogger(log.child({ component: 'temporal' })),
    telemetryOptions: { logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} } },
  };
  if (metricsAddress === 'off') {
    Runtime.install(base);
    return;
  }
  try {
    Runtime.install({
      ...base,
      telemetryOptions: {
        ...base.telemetryOptions,
        metrics: { prometheus: { bindAddress: metricsAddress } },
      },
    });
    log.info({ metricsAddress }, 'worker metrics served');
  } catch (err) {
    log.warn({ err, metricsAddress }, 'worker metrics not served');
    Runtime.install(base);
  }
}
