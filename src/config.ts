import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import express from 'express';
import { z } from 'zod';
import { DEFAULT_BOUNDS } from './api/bounds.js';
import {
  MEMORIES_PER_WORKSPACE_MAX,
  PLUGINS_MAX_BYTES,
  PLUGINS_PER_WORKSPACE_MAX,
  SECRETS_MAX_KEYS,
} from './domain/quotas.js';
import {
  loadTemplateCatalog,
  mergeTemplates,
  TemplateCatalogError,
  type TemplateCatalog,
} from './templates/catalog.js';
import { parseWorkspaceNetworking } from './backends/docker/network.js';
import { templateName, templateSpecSchema } from './templates/schema.js';
import { loadPluginCatalog, PluginCatalogError, type PluginCatalog } from './plugins/catalog.js';
import { METRICS_ADDRESS_RULE, metricsAddresses } from './worker/metrics-address.js';

/**
 * Every setting the service reads, parsed and validated in one place. The README documents each
 * one; a bad value fails at start with the variable named, never later at first use.
 */
/** A positive whole number (a count, a size in bytes), with its default. */
const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);
/** The same, in milliseconds. */
const msSetting = positiveInt;
/** The trimmed, non-empty items of a comma-separated setting. */
const listItems = (v: string): string[] =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
/** A comma-separated setting as its items. */
const commaList = (fallback: string) => z.string().default(fallback).transform(listItems);
/** A positive count, or one of `words` (the first is the default). */
const countOrWord = (...words: [string, ...string[]]) =>
  z
    .string()
    .default(words[0])
    .transform((v, ctx) => {
      const text = v.trim();
      if (words.includes(text)) return text;
      if (/^\d+$/.test(text) && Number(text) >= 1 && Number(text) <= 10_000_000) return Number(text);
      ctx.addIssue({
        code: 'custom',
        message: `a whole number from 1 to 10000000, or ${words.join(' or ')}`,
      });
      return z.NEVER;
    });

/** Days rows are kept (90 by default), or `off`: kept for good. */
const retentionDays = (name: string) =>
  z
    .string()
    .default('90')
    .transform((v, ctx): number | 'off' => {
      const text = v.trim();
      if (text === 'off') return text;
      if (/^\d+$/.test(text) && Number(text) >= 1 && Number(text) <= 36_500) return Number(text);
      ctx.addIssue({
        code: 'custom',
        message: `${name} must be off or a whole number of days from 1 to 36500`,
      });
      return z.NEVER;
    });

/** Worker metrics pages one scrape of the API may fetch (WORKER_METRICS_URL). */
const MAX_WORKER_PAGES = 32;

const DEFAULT_RUNTIMES = ['claude-code', 'langgraph', 'crewai', 'autogen'] as const;

const templatesSchema = z.record(templateName, templateSpecSchema);
export type Templates = z.infer<typeof templatesSchema>;

function safeJson(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return Symbol('invalid JSON');
  }
}

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** The API listens here; workspaces must reach it, so the default covers the docker bridge. */
  BIND_HOST: z.string().default('0.0.0.0'),
  /**
   * The API's URL as clients reach it: the base of the agent-card URL and of `metadata.peer`'s
   * agentCardUrl. Default: the listen URL. Never taken from a request's Host header.
   */
  PUBLIC_URL: z
    .string()
    .url()
    .refine((v) => /^https?:\/\//.test(v), 'PUBLIC_URL must be http(s)')
    .transform((v) => v.replace(/\/+$/, ''))
    .optional(),
  DATA_DIR: z.string().default('.data'),
  DATABASE_URL: z.string().url().optional(),
  /** How long a request waits for a database connection before it answers 503 (external only). */
  DB_CONNECT_TIMEOUT_MS: msSetting(5_000),
  /** How long one statement of an API request may take before it answers 503 (external only). */
  DB_REQUEST_TIMEOUT_MS: msSetting(10_000),
  TEMPORAL_ADDRESS: z.string().default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TASK_QUEUE: z.string().default('workspace-orchestrator'),
  /** The Temporal UI as operators reach it: the console links each workspace to its workflow there. */
  TEMPORAL_UI_URL: z
    .string()
    .url()
    .refine((v) => /^https?:\/\//.test(v), 'TEMPORAL_UI_URL must be http(s)')
    .transform((v) => v.replace(/\/+$/, ''))
    .default('http://127.0.0.1:8233'),
  ADMIN_TOKEN: z.string().min(16, 'ADMIN_TOKEN must be at least 16 characters'),
  /** 32 bytes, base64: the AES-256-GCM key for secrets at rest. */
  SECRETS_KEY: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length === 32, 'SECRETS_KEY must be 32 bytes, base64'),
  /** Comma list of earlier SECRETS_KEYs: they still open rows until `secrets re-encrypt` has run. */
  SECRETS_OLD_KEYS: commaList('').refine(
    (keys) => keys.every((k) => Buffer.from(k, 'base64').length === 32),
    'SECRETS_OLD_KEYS must be a comma list of 32-byte base64 keys',
  ),
  /** Comma list of enabled backends; a disabled one answers a typed "not configured" error. */
  ENABLED_BACKENDS: commaList('docker').pipe(z.array(z.enum(['docker', 'ec2']))),
  /** `1` adds `ec2` to ENABLED_BACKENDS (what `./dev up --ec2-sim` sets). */
  ENABLE_EC2: z.enum(['0', '1', '']).optional(),
  DOCKER_SOCKET: z.string().default('/var/run/docker.sock'),
  /** URL the agent inside a Docker workspace uses to reach the platform. */
  DOCKER_PLATFORM_URL: z.string().url().optional(),
  /** IPv4 CIDR the per-org workspace networks' /24 subnets are carved from. */
  DOCKER_ORG_NETWORK_POOL: z
    .string()
    .regex(
      /^\d{1,3}(\.\d{1,3}){3}\/([89]|1\d|2[0-4])$/,
      'DOCKER_ORG_NETWORK_POOL must be an IPv4 CIDR of /8 to /24',
    )
    .default('10.213.0.0/16'),
  /**
   * Where docker workspaces are placed: `auto` (the daemon's default bridge while `dockerd
   * --icc=false`, else a bridge per org), `per-org`, or the name of one network with ICC off.
   */
  DOCKER_WORKSPACE_NETWORK: z
    .string()
    .default('auto')
    .transform((v, ctx) => {
      try {
        return parseWorkspaceNetworking(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `DOCKER_WORKSPACE_NETWORK: ${(err as Error).message}` });
        return z.NEVER;
      }
    }),
  /** Image for every runtime unless RUNTIME_IMAGES maps it; default: the tag `./dev` built. */
  RUNTIME_IMAGE: z.string().optional(),
  /** JSON object runtime → image; its keys (plus the defaults) are the accepted runtimes. */
  RUNTIME_IMAGES: z
    .string()
    .default('{}')
    .transform((v, ctx) => {
      try {
        return z.record(z.string(), z.string()).parse(JSON.parse(v));
      } catch {
        ctx.addIssue({ code: 'custom', message: 'RUNTIME_IMAGES must be a JSON object of strings' });
        return z.NEVER;
      }
    }),
  DEFAULT_RUNTIME: z.string().default('claude-code'),
  /**
   * JSON object: template name → {runtime?, config?, ec2?: {imageId?, instanceType?, subnetId?,
   * securityGroupIds?}}. A workspace created with `template` starts from its config and placement.
   */
  TEMPLATES: z
    .string()
    .default('{}')
    .transform((v, ctx) => {
      const parsed = templatesSchema.safeParse(safeJson(v));
      if (parsed.success) return parsed.data;
      ctx.addIssue({ code: 'custom', message: `TEMPLATES: ${parsed.error.issues[0]?.message ?? 'invalid'}` });
      return z.NEVER;
    }),
  /** The template catalog (`<dir>/<name>/template.yaml` + files); default `templates`. */
  TEMPLATES_DIR: z.string().optional(),
  /** The plugin catalog (`<dir>/<name>/plugin.yaml` + files); default `plugins`. */
  PLUGINS_DIR: z.string().optional(),
  /** How long the agent has to report an installed or removed plugin before the install fails. */
  PLUGIN_REPORT_DEADLINE_MS: msSetting(120_000),
  /** EC2 API endpoint override (moto/ec2-sim); unset = AWS's regional endpoint. */
  EC2_ENDPOINT: z.string().url().optional(),
  EC2_REGION: z.string().optional(),
  AWS_REGION: z.string().optional(),
  /** Static credentials (moto/ec2-sim or CI); unset = the AWS SDK's default provider chain. */
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_SECRET_ACCESS_KEY: z.string().optional(),
  /** AMI of workspace instances (must carry node + the agent at /opt/agent, like the VM image). */
  EC2_AMI_ID: z.string().optional(),
  EC2_INSTANCE_TYPE: z.string().default('t3.small'),
  EC2_SUBNET_ID: z.string().optional(),
  /** Size of each workspace's data volume (EBS gp3, mounted at /workspace, kept across restarts). */
  EC2_DATA_VOLUME_GIB: z.coerce.number().int().min(1).max(16_384).default(8),
  EC2_SECURITY_GROUP_IDS: commaList(''),
  /** How an agent on an instance reaches the platform; default http://EC2_PLATFORM_HOST:PORT. */
  EC2_PLATFORM_URL: z.string().url().optional(),
  EC2_PLATFORM_HOST: z.string().optional(),
  /**
   * Source the managed workspace security group admits (SSH + agent port); default the platform
   * host (EC2_PLATFORM_HOST, else the host of EC2_PLATFORM_URL) as a /32.
   */
  EC2_PLATFORM_CIDR: z
    .string()
    .regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'EC2_PLATFORM_CIDR must be an IPv4 CIDR')
    .optional(),
  BOOT_DEADLINE_MS: msSetting(180_000),
  HEARTBEAT_INTERVAL_MS: msSetting(15_000),
  BOOTSTRAP_TOKEN_TTL_MS: msSetting(3_600_000),
  /** The entity continues-as-new past this many history events (or when the server suggests). */
  CONTINUE_AS_NEW_AFTER_EVENTS: z.coerce.number().int().min(10).default(2000),
  /**
   * `1`: a create or an org delete is accepted while no worker polls the task queue (its workflow
   * waits in Temporal and runs when a worker comes back). Default `0`: 503 temporal_unavailable with
   * nothing recorded, as api.md has it for every call a worker must carry out.
   */
  ACCEPT_WITHOUT_WORKER: z.enum(['0', '1']).default('0'),
  /** Live (not deleted) workspaces per org; creating beyond it answers 403 quota_exceeded. */
  ORG_WORKSPACE_QUOTA: z.coerce.number().int().min(1).max(1_000_000).default(50),
  /** Longest an MCP send_message may wait for its peer's whole answer; then a tool error (504 logged). */
  MCP_SEND_TIMEOUT_MS: msSetting(600_000),
  /** Memories a workspace may hold; storing one beyond it answers 403 quota_exceeded. */
  MEMORIES_PER_WORKSPACE_MAX: z.coerce
    .number()
    .int()
    .min(1)
    .max(10_000_000)
    .default(MEMORIES_PER_WORKSPACE_MAX),
  /**
   * Secret keys a workspace, or an org's defaults, may hold: every one is in each boot bundle and in
   * each redaction. Storing a new one beyond it (or creating with more) answers 403 quota_exceeded.
   */
  SECRETS_MAX_KEYS: z.coerce.number().int().min(1).max(100_000).default(SECRETS_MAX_KEYS),
  /**
   * Plugins a workspace may hold, and the bytes of their files (as stored: base64): every one is in
   * each of its boot bundles. Installing past either answers 403 quota_exceeded; a re-install of a
   * held plugin counts its new files instead of its old ones.
   */
  PLUGINS_PER_WORKSPACE_MAX: z.coerce.number().int().min(1).max(10_000).default(PLUGINS_PER_WORKSPACE_MAX),
  PLUGINS_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(2 ** 40)
    .default(PLUGINS_MAX_BYTES),
  /** Requests per minute per API key or workspace; beyond it 429 rate_limited with Retry-After. */
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).max(10_000_000).default(600),
  /**
   * Client connections one API process holds open at once; past it a new one is answered 503
   * `too_many_connections` and closed. `auto`: a third of the process's descriptor limit, at most
   * 10,000 (src/api/connection-limits.ts).
   */
  API_MAX_CONNECTIONS: countOrWord('auto'),
  /**
   * Of those, how many one TCP peer address may hold. `auto`: a quarter of API_MAX_CONNECTIONS, or
   * none when TRUST_PROXY is set (every connection then comes from the proxy); `off`: none.
   */
  API_MAX_CONNECTIONS_PER_CLIENT: countOrWord('auto', 'off'),
  /**
   * How long a client may take to send a request's headers; past it the connection is answered 408
   * and closed. Node's own 60 s (checked every 30 s) let a client dribbling headers hold a connection
   * for up to 90 s. At most 300 s (Node's whole-request timeout, which must not be shorter).
   */
  API_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(300_000).default(15_000),
  /**
   * The proxies in front of the API whose `X-Forwarded-For` names the client (Express's `trust
   * proxy`: a hop count, or addresses/subnets and `loopback`/`linklocal`/`uniquelocal`, comma
   * separated); unset: the TCP peer is the client. Only the failed-authentication limit is per client.
   */
  TRUST_PROXY: z
    .string()
    .default('')
    .transform((v, ctx) => {
      const value = trustProxyValue(v);
      try {
        express().set('trust proxy', value);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
      return value;
    }),
  /** `off`: this process creates no sweep Schedules (test stacks; a deployment that runs its own). */
  SWEEP_SCHEDULES: z.enum(['on', 'off']).default('on'),
  /** Prepended to the sweep Schedules' ids, for several deployments in one Temporal namespace. */
  SWEEP_SCHEDULE_PREFIX: z.string().max(100).default(''),
  /** Every how often `sweep:health` cross-checks heartbeats against the backends. */
  HEALTH_SWEEP_INTERVAL_MS: msSetting(30_000),
  /** A heartbeat older than this is stale; unset: 3 × HEARTBEAT_INTERVAL_MS. */
  HEARTBEAT_STALE_MS: z.coerce.number().int().positive().optional(),
  /** Restart policy of workspaces whose create body and template name none. */
  AUTO_RESTART_POLICY: z.enum(['always', 'never']).default('always'),
  /** Restart policy: automatic restarts per window before a workspace goes `failed`. */
  AUTO_RESTART_MAX: z.coerce.number().int().min(0).max(1000).default(5),
  AUTO_RESTART_WINDOW_MS: msSetting(3_600_000),
  /** `degraded` this long leads to an automatic restart (offline restarts at once). */
  AUTO_RESTART_DEGRADED_MS: msSetting(60_000),
  /** First backoff between automatic restarts; it doubles up to AUTO_RESTART_BACKOFF_MAX_MS. */
  AUTO_RESTART_BACKOFF_MS: msSetting(1_000),
  AUTO_RESTART_BACKOFF_MAX_MS: msSetting(300_000),
  /** Online this long resets the restart count. */
  AUTO_RESTART_RESET_MS: msSetting(600_000),
  /** Every how often `sweep:orphans` looks for leaked resources. */
  ORPHAN_SWEEP_INTERVAL_MS: msSetting(300_000),
  /** An orphan younger than this is left for the next sweep (it may belong to a create in flight). */
  ORPHAN_GRACE_MS: msSetting(600_000),
  /**
   * Days an activity row (proxied calls, lifecycle entries: GET …/activity, chat-history) is kept;
   * each orphan sweep run deletes older ones. `off`: kept for good.
   */
  ACTIVITY_RETENTION_DAYS: retentionDays('ACTIVITY_RETENTION_DAYS'),
  /**
   * Days a workspace's history is kept: its past generations' boot events and kept consoles, its
   * status transitions (each workspace keeps its newest), a deleted workspace's all. What it runs
   * now is never removed. Each orphan sweep run deletes older rows. `off`: kept for good.
   */
  HISTORY_RETENTION_DAYS: retentionDays('HISTORY_RETENTION_DAYS'),
  /** Every how often `sweep:budget` looks for workspaces at or over their budget. */
  BUDGET_SWEEP_INTERVAL_MS: msSetting(60_000),
  /** What `sweep:budget` does with them: `stop` (through the entity), `notify` (log), `none` (list). */
  BUDGET_POLICY: z.enum(['stop', 'notify', 'none']).default('stop'),
  /** Least interval of a workspace schedule's `@every` (cron itself fires at most once a minute). */
  SCHEDULE_MIN_INTERVAL_MS: msSetting(60_000),
  /** How long an org delete waits for its workspaces to reach `deleted` before its final sweep. */
  ORG_DELETE_WAIT_MS: msSetting(600_000),
  /** Every how often an API process marks its open terminal sessions alive (one UPDATE for all). */
  TERMINAL_SESSION_REFRESH_MS: msSetting(20_000),
  /** A session not marked alive this long outlived its API process: a reaper kills its processes. */
  TERMINAL_SESSION_STALE_MS: msSetting(90_000),
  /** Every how often each API process looks for such sessions (and once shortly after its start). */
  TERMINAL_REAP_INTERVAL_MS: msSetting(30_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `1`: human-readable log lines (pino-pretty) instead of JSON; `./dev up` sets it. */
  LOG_PRETTY: z.enum(['0', '1']).default('0'),
  /**
   * Where a worker process serves the Temporal SDK's own metrics (temporal_*) for Prometheus at
   * /metrics: host:port, or host:first-last (the first port of the range no other process holds, so
   * the workers of one host can share the setting); `off`: none.
   */
  WORKER_METRICS_ADDRESS: z
    .string()
    .refine((v) => metricsAddresses(v) !== null, `WORKER_METRICS_ADDRESS must be ${METRICS_ADDRESS_RULE}`)
    .default('127.0.0.1:9464'),
  /**
   * The workers' metrics pages (`http://host:port/metrics`, comma-separated) that the API's
   * /metrics appends, so one scrape has the SDK's temporal_* too (api.md); several are merged, each
   * worker's series labelled `wo_worker`. Default: this process's own worker's, when it runs one and
   * serves them; `off`: none.
   */
  WORKER_METRICS_URL: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === 'off') return v;
      // Each page once: one listed twice would be the same series twice.
      const urls = [...new Set(listItems(v))];
      const bad = urls.find((u) => !z.url({ protocol: /^https?$/ }).safeParse(u).success);
      if (urls.length === 0 || urls.length > MAX_WORKER_PAGES || bad !== undefined) {
        ctx.addIssue({
          code: 'custom',
          message: `WORKER_METRICS_URL must be off or 1 to ${MAX_WORKER_PAGES} comma-separated http(s) URLs${bad ? ` (not one: ${bad})` : ''}`,
        });
        return z.NEVER;
      }
      return urls;
    }),
  /** Data-plane caps (src/api/bounds.ts). */
  FILE_READ_MAX_BYTES: positiveInt(DEFAULT_BOUNDS.fileReadMaxBytes),
  FILE_LIST_MAX_ENTRIES: positiveInt(DEFAULT_BOUNDS.fileListMaxEntries),
  BOOT_LOG_CONSOLE_MAX_BYTES: positiveInt(DEFAULT_BOUNDS.bootLogConsoleMaxBytes),
  BOOT_LOG_MAX_EVENTS: positiveInt(DEFAULT_BOUNDS.bootLogMaxEvents),
  EVENT_STREAMS_MAX: positiveInt(DEFAULT_BOUNDS.eventStreamsMax),
  EVENT_STREAMS_PER_PRINCIPAL: positiveInt(DEFAULT_BOUNDS.eventStreamsPerPrincipal),
  EVENTS_POLL_MS: msSetting(DEFAULT_BOUNDS.eventsPollMs),
  FILE_BUFFERED_UPLOADS_MAX: positiveInt(DEFAULT_BOUNDS.bufferedUploadsMax),
  FILE_BUFFERED_UPLOADS_PER_PRINCIPAL: positiveInt(DEFAULT_BOUNDS.bufferedUploadsPerPrincipal),
});

export type Env = z.infer<typeof envSchema>;

export interface Config extends Omit<Env, 'RUNTIME_IMAGES'> {
  dataDir: string;
  ec2Region: string;
  /** runtime → image; the accepted runtimes are exactly its keys. */
  runtimeImages: Record<string, string>;
  /** The catalog merged with TEMPLATES (src/templates/catalog.ts). */
  templates: TemplateCatalog;
  /** The plugin catalog (src/plugins/catalog.ts). */
  plugins: PluginCatalog;
}

export class ConfigError extends Error {}

/** TRUST_PROXY as Express takes it: off, a hop count, or the list as written. */
function trustProxyValue(text: string): false | number | string {
  const v = text.trim();
  if (v === '' || v === 'false') return false;
  return /^\d+$/.test(v) ? Number(v) : v;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  if (e.ENABLE_EC2 === '1' && !e.ENABLED_BACKENDS.includes('ec2')) e.ENABLED_BACKENDS.push('ec2');
  if (e.ENABLED_BACKENDS.includes('ec2') && !e.EC2_AMI_ID) {
    throw new ConfigError('invalid configuration:\n  EC2_AMI_ID: required when the ec2 backend is enabled');
  }
  if (e.TERMINAL_SESSION_STALE_MS < 2 * e.TERMINAL_SESSION_REFRESH_MS) {
    // A live session whose refresh is merely late must never look dead to a reaper.
    throw new ConfigError(
      'invalid configuration:\n  TERMINAL_SESSION_STALE_MS: must be at least twice TERMINAL_SESSION_REFRESH_MS',
    );
  }
  const dataDir = resolve(e.DATA_DIR);
  const runtimeImage = e.RUNTIME_IMAGE ?? readBuiltImageTag(dataDir);
  const runtimeImages: Record<string, string> = {};
  for (const r of DEFAULT_RUNTIMES) if (runtimeImage) runtimeImages[r] = runtimeImage;
  Object.assign(runtimeImages, e.RUNTIME_IMAGES);
  const { RUNTIME_IMAGES: _unused, ...rest } = e;
  return {
    ...rest,
    RUNTIME_IMAGE: runtimeImage,
    dataDir,
    ec2Region: e.EC2_REGION ?? e.AWS_REGION ?? 'us-east-1',
    runtimeImages,
    templates: loadTemplates(e.TEMPLATES_DIR, e.TEMPLATES),
    plugins: loadPlugins(e.PLUGINS_DIR),
  };
}

function loadPlugins(dir: string | undefined): PluginCatalog {
  try {
    return loadPluginCatalog(resolve(dir ?? 'plugins'), { required: !!dir });
  } catch (err) {
    if (err instanceof PluginCatalogError) throw new ConfigError(`invalid configuration:\n  ${err.message}`);
    throw err;
  }
}

function loadTemplates(dir: string | undefined, fromEnv: Env['TEMPLATES']): TemplateCatalog {
  try {
    return mergeTemplates(loadTemplateCatalog(resolve(dir ?? 'templates'), { required: !!dir }), fromEnv);
  } catch (err) {
    if (err instanceof TemplateCatalogError)
      throw new ConfigError(`invalid configuration:\n  ${err.message}`);
    throw err;
  }
}

/**
 * Where an agent reaches the platform registry, per backend. `port` is where the API actually
 * listens (differs from PORT when PORT=0 in tests).
 */
export function platformUrls(config: Config, port: number): Record<'docker' | 'ec2', string> {
  return {
    docker: config.DOCKER_PLATFORM_URL ?? `http://host.docker.internal:${port}`,
    ec2: config.EC2_PLATFORM_URL ?? `http://${config.EC2_PLATFORM_HOST ?? '127.0.0.1'}:${port}`,
  };
}

/**
 * What the managed EC2 security group admits: EC2_PLATFORM_CIDR, else the platform host (the sim's
 * gateway, or the IPv4 host of EC2_PLATFORM_URL) as a /32; undefined when neither names an address.
 */
export function ec2PlatformCidr(config: Config): string | undefined {
  if (config.EC2_PLATFORM_CIDR) return config.EC2_PLATFORM_CIDR;
  const host =
    config.EC2_PLATFORM_HOST ??
    (config.EC2_PLATFORM_URL ? new URL(config.EC2_PLATFORM_URL).hostname : undefined);
  return host && /^\d{1,3}(\.\d{1,3}){3}$/.test(host) ? `${host}/32` : undefined;
}

/** The API's public base URL: PUBLIC_URL, else where it listens (a wildcard bind → loopback). */
export function publicUrl(config: Pick<Config, 'PUBLIC_URL' | 'BIND_HOST'>, port: number): string {
  if (config.PUBLIC_URL) return config.PUBLIC_URL;
  const wildcard = ['0.0.0.0', '::', ''].includes(config.BIND_HOST);
  const host = wildcard ? '127.0.0.1' : config.BIND_HOST;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** `./dev` records the tag of the runtime image it built (content-addressed) here. */
function readBuiltImageTag(dataDir: string): string | undefined {
  const file = join(dataDir, 'runtime-image');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() || undefined : undefined;
}
