/**
 * Wires configuration into running parts: database, backends, Temporal client, API server and
 * worker. `./dev up` runs both in one process (required for embedded PGlite); production runs
 * `src/api/main.ts` and N `src/worker/main.ts` processes.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import Dockerode from 'dockerode';
import type { Logger } from 'pino';
import { createActivities } from './activities/index.js';
import { createApp } from './api/app.js';
import { withTimeout } from './api/metrics.js';
import { attachTerminal } from './api/terminal.js';
import type { CappedCounts } from './api/capped-counts.js';
import { answerClientErrors } from './api/client-errors.js';
import { headerTimeouts, limitConnections, resolveConnectionLimits } from './api/connection-limits.js';
import { connectTemporal } from './api/temporal-connection.js';
import type { ApiDeps, ApiSettings } from './api/deps.js';
import { EntityClient } from './api/entity.js';
import { PluginWorkflows } from './api/plugin-workflows.js';
import type { BackendKind, WorkspaceBackend } from './backends/backend.js';
import { BackendError } from './backends/backend.js';
import { DockerBackend } from './backends/docker/docker-backend.js';
import { UnconfiguredBackend } from './backends/unconfigured.js';
import { ec2PlatformCidr, platformUrls, publicUrl, type Config } from './config.js';
import { createEc2Client } from './backends/ec2/client.js';
import { Ec2Backend } from './backends/ec2/ec2-backend.js';
import { DbSshKeyStore } from './db/ssh-keys.js';
import { openDatabase, type Database } from './db/database.js';
import { recordWorkflowOutcome } from './db/metrics.js';
import { createLogger } from './log.js';
import { SecretBox } from './security/secrets.js';
import { createWorker } from './worker/index.js';
import { ensureSweepSchedules, type SweepSettings } from './worker/schedules.js';
import { SweepControl } from './api/sweeps.js';
import { API_TEMPORAL_BUDGET_MS, ScheduleMirror } from './schedules/mirror.js';
import { ChangeFeed } from './db/change-feed.js';
import { ProxyViews } from './db/proxy-view.js';
import { activityBatcher } from './db/activity.js';
import { InFlight } from './api/inflight.js';

export interface ServiceOptions {
  api: boolean;
  worker: boolean;
  log?: Logger;
  /** In place of the configured backends (bench/scale.ts: a light fake behind the contract). */
  backends?: Partial<Record<BackendKind, WorkspaceBackend>>;
  /** How long close() lets A2A calls in flight end before it cuts them (default SHUTDOWN_GRACE_MS). */
  shutdownGraceMs?: number;
  /** Where this process's Temporal runtime serves the worker's metrics (installWorkerRuntime). */
  workerMetricsAddress?: string | undefined;
}

/**
 * What a shutdown gives the A2A calls in flight to end on their own: within the 10 s a container
 * runtime waits after SIGTERM by default (docker, compose), leaving time for what follows.
 */
export const SHUTDOWN_GRACE_MS = 7_000;
/** Then, after the connections are cut: how long the cut calls have to log their rows. */
const CUT_CALLS_GRACE_MS = 1_000;
/** Last, how long the activity rows handed in may take to be written. */
const DRAIN_GRACE_MS = 2_000;

export interface RunningService {
  /** Base URL of the API (when started). */
  url: string | null;
  port: number | null;
  db: Database;
  temporal: Client;
  backends: Record<BackendKind, WorkspaceBackend>;
  worker: Worker | null;
  /** The A2A proxy's cached workspace views (null: no API, or no LISTEN connection: embedded database). */
  proxyViews: ProxyViews | null;
  /** The A2A calls still running (what close() waits for). */
  inflight: InFlight;
  /** The API's settings, as its routes read them (null: no API). */
  apiSettings: ApiSettings | null;
  /** Client connections the API holds open (0 without an API). */
  openConnections(): number;
  close(): Promise<void>;
}

export function createBackends(
  config: Config,
  deps: { db: Database; secrets: SecretBox; log?: Logger },
): Record<BackendKind, WorkspaceBackend> {
  const image = (runtime: string): string => {
    const tag = config.runtimeImages[runtime];
    if (!tag) throw new BackendError('permanent', `no image configured for runtime "${runtime}"`);
    return tag;
  };
  return {
    docker: config.ENABLED_BACKENDS.includes('docker')
      ? new DockerBackend({
          docker: new Dockerode({ socketPath: config.DOCKER_SOCKET }),
          image,
          orgNetworkPool: { cidr: config.DOCKER_ORG_NETWORK_POOL, prefix: 24 },
          networking: config.DOCKER_WORKSPACE_NETWORK,
        })
      : new UnconfiguredBackend('docker'),
    ec2:
      config.ENABLED_BACKENDS.includes('ec2') && config.EC2_AMI_ID
        ? new Ec2Backend({
            client: createEc2Client({
              region: config.ec2Region,
              endpoint: config.EC2_ENDPOINT,
              credentials:
                config.AWS_ACCESS_KEY_ID && config.AWS_SECRET_ACCESS_KEY
                  ? { accessKeyId: config.AWS_ACCESS_KEY_ID, secretAccessKey: config.AWS_SECRET_ACCESS_KEY }
                  : undefined,
            }),
            keys: new DbSshKeyStore(deps.db.pool, deps.secrets),
            imageId: config.EC2_AMI_ID,
            instanceType: config.EC2_INSTANCE_TYPE,
            subnetId: config.EC2_SUBNET_ID,
            securityGroupIds: config.EC2_SECURITY_GROUP_IDS,
            platformCidr: ec2PlatformCidr(config),
            dataVolumeGiB: config.EC2_DATA_VOLUME_GIB,
            log: deps.log?.child({ component: 'ec2' }),
          })
        : new UnconfiguredBackend('ec2'),
  };
}

/**
 * The workers' metrics pages the API's /metrics appends: configured (WORKER_METRICS_URL), or the
 * one this process's own Temporal runtime serves (`served`: where installWorkerRuntime bound it;
 * none when it could not, lest the API append whatever other process holds the configured port).
 */
export function workerMetricsUrls(config: Config, served: string | undefined): string[] {
  if (config.WORKER_METRICS_URL) return config.WORKER_METRICS_URL === 'off' ? [] : config.WORKER_METRICS_URL;
  if (served === undefined) return [];
  // A wildcard bind is reached on loopback from this process.
  const local = served.replace(/^0\.0\.0\.0:/, '127.0.0.1:').replace(/^\[::\]:/, '[::1]:');
  return [`http://${local}/metrics`];
}

/** A `*_RETENTION_DAYS` setting in ms; undefined for `off` (kept for good). */
const retentionMs = (days: number | 'off'): number | undefined =>
  days === 'off' ? undefined : days * 86_400_000;

/** The API's settings from configuration (`publicUrl` is settled once the listen port is known). */
export function apiSettings(config: Config): ApiSettings {
  return {
    adminToken: config.ADMIN_TOKEN,
    enabledBackends: config.ENABLED_BACKENDS,
    runtimeImages: config.runtimeImages,
    defaultRuntime: config.DEFAULT_RUNTIME,
    bootDeadlineMs: config.BOOT_DEADLINE_MS,
    continueAsNewAfterEvents: config.CONTINUE_AS_NEW_AFTER_EVENTS,
    restartPolicy: {
      policy: config.AUTO_RESTART_POLICY,
      max: config.AUTO_RESTART_MAX,
      windowMs: config.AUTO_RESTART_WINDOW_MS,
      degradedAfterMs: config.AUTO_RESTART_DEGRADED_MS,
      backoffInitialMs: config.AUTO_RESTART_BACKOFF_MS,
      backoffMaxMs: config.AUTO_RESTART_BACKOFF_MAX_MS,
      healthyResetMs: config.AUTO_RESTART_RESET_MS,
    },
    heartbeatIntervalMs: config.HEARTBEAT_INTERVAL_MS,
    publicUrl: config.PUBLIC_URL ?? '',
    templates: config.templates,
    plugins: config.plugins,
    bounds: {
      fileReadMaxBytes: config.FILE_READ_MAX_BYTES,
      fileListMaxEntries: config.FILE_LIST_MAX_ENTRIES,
      bootLogConsoleMaxBytes: config.BOOT_LOG_CONSOLE_MAX_BYTES,
      bootLogMaxEvents: config.BOOT_LOG_MAX_EVENTS,
      eventStreamsMax: config.EVENT_STREAMS_MAX,
      eventStreamsPerPrincipal: config.EVENT_STREAMS_PER_PRINCIPAL,
      eventsPollMs: config.EVENTS_POLL_MS,
      bufferedUploadsMax: config.FILE_BUFFERED_UPLOADS_MAX,
      bufferedUploadsPerPrincipal: config.FILE_BUFFERED_UPLOADS_PER_PRINCIPAL,
    },
    orgWorkspaceQuota: config.ORG_WORKSPACE_QUOTA,
    acceptWithoutWorker: config.ACCEPT_WITHOUT_WORKER === '1',
    memoriesPerWorkspaceMax: config.MEMORIES_PER_WORKSPACE_MAX,
    secretsMaxKeys: config.SECRETS_MAX_KEYS,
    pluginsPerWorkspaceMax: config.PLUGINS_PER_WORKSPACE_MAX,
    pluginsMaxBytes: config.PLUGINS_MAX_BYTES,
    mcpSendTimeoutMs: config.MCP_SEND_TIMEOUT_MS,
    rateLimitPerMinute: config.RATE_LIMIT_PER_MINUTE,
    trustProxy: config.TRUST_PROXY,
    scheduleMinIntervalMs: config.SCHEDULE_MIN_INTERVAL_MS,
    terminalSessions: {
      refreshMs: config.TERMINAL_SESSION_REFRESH_MS,
      staleMs: config.TERMINAL_SESSION_STALE_MS,
      reapIntervalMs: config.TERMINAL_REAP_INTERVAL_MS,
    },
    temporalUi: { url: config.TEMPORAL_UI_URL, namespace: config.TEMPORAL_NAMESPACE },
  };
}

/** HEARTBEAT_STALE_MS, or three heartbeat intervals when it is not set. */
export const heartbeatStaleMs = (
  config: Pick<Config, 'HEARTBEAT_STALE_MS' | 'HEARTBEAT_INTERVAL_MS'>,
): number => config.HEARTBEAT_STALE_MS ?? 3 * config.HEARTBEAT_INTERVAL_MS;

export async function startService(config: Config, opts: ServiceOptions): Promise<RunningService> {
  const log =
    opts.log ??
    createLogger({
      level: config.LOG_LEVEL,
      pretty: config.LOG_PRETTY === '1',
      hide: [
        config.ADMIN_TOKEN,
        config.SECRETS_KEY,
        ...config.SECRETS_OLD_KEYS,
        config.AWS_SECRET_ACCESS_KEY,
      ],
    });
  const db = await openDatabase({
    databaseUrl: config.DATABASE_URL,
    dataDir: config.dataDir,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    requestTimeoutMs: config.DB_REQUEST_TIMEOUT_MS,
  });
  const secrets = new SecretBox(config.SECRETS_KEY, config.SECRETS_OLD_KEYS);
  const backends = { ...createBackends(config, { db, secrets, log }), ...opts.backends };
  // API and worker in one process (`./dev up`, the benches, the test stacks): the API's client goes
  // through the worker's native connection, which lets a create's start be eager (the first
  // workflow task comes back with the start, to this worker). Apart, the API has its own.
  const shared = opts.api && opts.worker;
  const workerConnection = opts.worker
    ? await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS })
    : null;
  const connection =
    shared && workerConnection ? workerConnection : await connectTemporal(config.TEMPORAL_ADDRESS);
  const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });

  const sweepSettings: SweepSettings = {
    taskQueue: config.TASK_QUEUE,
    schedulePrefix: config.SWEEP_SCHEDULE_PREFIX,
    orphanIntervalMs: config.ORPHAN_SWEEP_INTERVAL_MS,
    orphanGraceMs: config.ORPHAN_GRACE_MS,
    healthIntervalMs: config.HEALTH_SWEEP_INTERVAL_MS,
    heartbeatStaleMs: heartbeatStaleMs(config),
    budgetIntervalMs: config.BUDGET_SWEEP_INTERVAL_MS,
    budgetPolicy: config.BUDGET_POLICY,
  };

  let server: Server | null = null;
  let terminal: { close(): Promise<void> } | null = null;
  let connections: CappedCounts | null = null;
  let port: number | null = null;
  let feed: ChangeFeed | null = null;
  let proxyViews: ProxyViews | null = null;
  let settings: ApiSettings | null = null;
  const inflight = new InFlight();
  if (opts.api) {
    // The A2A proxy's workspace views, kept while a dedicated connection listens for changes; the
    // same connection hears new transitions and wakes the `/events` poller.
    const newClient = db.newClient;
    if (newClient) {
      feed = new ChangeFeed({
        newClient,
        onChange: (id) => proxyViews?.invalidate(id),
        log,
      });
      proxyViews = new ProxyViews(db.requestPool, { feed });
      await feed.start();
    }
    const entity = new EntityClient(temporal, config.TASK_QUEUE, {
      eagerStart: shared,
      // The worker this process starts below (none when it runs no worker).
      localWorkerRunning: () => worker?.getState() === 'RUNNING',
    });
    const apiDeps: ApiDeps = {
      db: db.requestPool,
      entity,
      plugins: new PluginWorkflows(temporal, config.TASK_QUEUE, {
        reportDeadlineMs: config.PLUGIN_REPORT_DEADLINE_MS,
        requireWorker: (deadline) => entity.requireWorker(deadline),
      }),
      sweeps: new SweepControl(
        temporal,
        { ...sweepSettings, orgDeleteWaitMs: config.ORG_DELETE_WAIT_MS },
        () => entity.requireWorker(),
      ),
      schedules: new ScheduleMirror(temporal, config.TASK_QUEUE, API_TEMPORAL_BUDGET_MS),
      backends,
      secrets,
      log,
      settings: {
        ...apiSettings(config),
        workerMetricsUrls: workerMetricsUrls(config, opts.worker ? opts.workerMetricsAddress : undefined),
      },
      ...(proxyViews ? { proxyViews } : {}),
      ...(feed ? { transitionHints: feed } : {}),
      inflight,
      // Temporal and the worker are probed through the entity client (with deadlines).
      readiness: {},
    };
    settings = apiDeps.settings;
    server = createServer(headerTimeouts(config.API_HEADERS_TIMEOUT_MS), createApp(apiDeps));
    answerClientErrors(server);
    terminal = attachTerminal(server, apiDeps);
    const connectionLimits = resolveConnectionLimits(config);
    connections = limitConnections(server, connectionLimits, log);
    await new Promise<void>((resolve) => server!.listen(config.PORT, config.BIND_HOST, resolve));
    port = (server.address() as AddressInfo).port;
    apiDeps.settings.publicUrl = publicUrl(config, port);
    log.info({ port, connectionLimits, headersTimeoutMs: config.API_HEADERS_TIMEOUT_MS }, 'api listening');
  }

  let worker: Worker | null = null;
  let workerRun: Promise<void> | null = null;
  if (opts.worker && workerConnection) {
    const activities = createActivities({
      db: db.pool,
      backends,
      platformUrls: platformUrls(config, port ?? config.PORT),
      bootstrapTokenTtlMs: config.BOOTSTRAP_TOKEN_TTL_MS,
      secrets,
      templates: config.templates,
      temporal,
      pluginReportDeadlineMs: config.PLUGIN_REPORT_DEADLINE_MS,
      createSettings: apiSettings(config),
      orgDeleteWaitMs: config.ORG_DELETE_WAIT_MS,
      activityRetentionMs: retentionMs(config.ACTIVITY_RETENTION_DAYS),
      historyRetentionMs: retentionMs(config.HISTORY_RETENTION_DAYS),
    });
    const created = await createWorker({
      address: config.TEMPORAL_ADDRESS,
      namespace: config.TEMPORAL_NAMESPACE,
      taskQueue: config.TASK_QUEUE,
      connection: workerConnection,
      activities,
      // Counted in the DB, not in this process: /metrics is served by the API processes.
      recordOutcome: (workflow, outcome) =>
        recordWorkflowOutcome(db.pool, workflow, outcome).catch((err: unknown) => {
          log.warn({ err, workflow, outcome }, 'workflow outcome not counted');
        }),
    });
    worker = created.worker;
    workerRun = worker.run();
    // workflowBundle null: no prebuilt bundle for these sources, so it was bundled at start.
    log.info({ taskQueue: config.TASK_QUEUE, workflowBundle: created.workflowBundle }, 'worker running');
    const docker = backends.docker;
    if (docker instanceof DockerBackend) {
      // Where docker workspaces go, so an operator sees a daemon without --icc=false at once. Not
      // awaited: a dockerd that does not answer must not hold up the worker's start.
      void docker
        .describePlacement()
        .then((p) => log.info(p, 'docker workspace placement'))
        .catch((err: unknown) =>
          log.warn({ err }, 'docker workspace placement unknown (dockerd not answering)'),
        );
    }
    if (config.SWEEP_SCHEDULES === 'on') {
      await ensureSweepSchedules(temporal, sweepSettings);
      log.info({ prefix: config.SWEEP_SCHEDULE_PREFIX }, 'sweep schedules in place');
    }
  }

  return {
    url: port !== null ? `http://127.0.0.1:${port}` : null,
    port,
    db,
    temporal,
    backends,
    worker,
    proxyViews,
    inflight,
    apiSettings: settings,
    openConnections: () => connections?.held ?? 0,
    async close() {
      await terminal?.close();
      if (server) {
        // No new connections; the A2A calls in flight may end (bounded), then what is left is cut,
        // and the calls cut log their rows as they wind down.
        inflight.closing = true;
        const closed = new Promise<void>((resolve) => server!.close(() => resolve()));
        server.closeIdleConnections();
        await inflight.idle(opts.shutdownGraceMs ?? SHUTDOWN_GRACE_MS);
        server.closeAllConnections();
        await closed;
        await inflight.idle(CUT_CALLS_GRACE_MS);
      }
      if (worker && workerRun) {
        // The SDK already begins shutdown on SIGINT/SIGTERM; a second shutdown() would throw.
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await workerRun;
      }
      await workerConnection?.close();
      if (connection !== workerConnection) await connection.close();
      // Every activity row handed in (by the calls above, by the worker's scheduled runs) is
      // written before the pool goes; bounded, so that a PostgreSQL that hangs does not hold the
      // exit for ever.
      await withTimeout(activityBatcher(db.requestPool).drain(), DRAIN_GRACE_MS).catch(() => undefined);
      await feed?.close();
      await db.close();
    },
  };
}
