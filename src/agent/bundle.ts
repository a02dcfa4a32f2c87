import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

/** One template file delivered by the platform, written under the configs dir. */
export interface BundleFile {
  path: string;
  contentBase64: string;
}

/** The answer of `GET /v1/registry/bootstrap`: everything the workspace needs to boot. */
export interface Bundle {
  workspaceId: string;
  orgId: string;
  name: string;
  runtime: string;
  generation: number;
  configHash: string;
  config: Record<string, unknown>;
  configYaml: string;
  files: BundleFile[];
  plugins: unknown[];
  secrets: Record<string, string>;
  workspaceToken: string;
  /** What the platform's A2A proxy presents; '' (an older platform) refuses every A2A call. */
  agentCredential: string;
  heartbeatIntervalMs: number;
}

/** What the agent keeps in `.wo/bundle.json` to recognise a reboot of the same generation. */
export interface SavedBundle extends Bundle {
  bootstrapTokenSha256: string;
}

/** Test hooks the platform's suites drive through `config.agent`. */
export interface AgentHooks {
  /** Serve A2A but never register / report platform-health-ok / heartbeat. */
  neverHealthy: boolean;
  /** Reported as `runtimeState` in heartbeats. */
  runtimeState: string;
  streamChunks: number;
  streamIntervalMs: number;
  /** Wait this long after `boot` before writing /configs: templates that arrive late. */
  materializeDelayMs: number;
  /** Wait this long after `agent-started` before registering: a crash window a test can hit. */
  registerDelayMs: number;
  /**
   * Name of a delivered secret whose value the agent echoes into a boot message and its console:
   * how the suites prove the platform redacts before storing (a leaky runtime, on purpose).
   */
  echoSecret: string | null;
  /**
   * What each A2A task costs, in cents: the reference agent's stand-in for model spend, reported
   * as `spentCents` in heartbeats (how the suites drive budgets). Default 0.
   */
  centsPerTask: number;
}

export const DEFAULT_HEARTBEAT_INTERVAL_MS = 15_000;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function requireString(raw: Record<string, unknown>, key: string): string {
  const v = raw[key];
  if (typeof v !== 'string' || v === '') throw new Error(`bundle field ${key} is missing or not a string`);
  return v;
}

/**
 * Validates the platform's answer. Identity fields are required (without them the agent cannot
 * talk to the registry); the rest default so an older platform's sparser bundle still boots.
 */
export function parseBundle(raw: unknown): Bundle {
  if (!isRecord(raw)) throw new Error('bundle is not a JSON object');
  const workspaceId = requireString(raw, 'workspaceId');
  const workspaceToken = requireString(raw, 'workspaceToken');
  const configHash = requireString(raw, 'configHash');
  const generation = raw.generation;
  if (typeof generation !== 'number' || !Number.isInteger(generation)) {
    throw new Error('bundle field generation is missing or not an integer');
  }

  // config and configYaml describe the same document; accept either one alone.
  let config: Record<string, unknown> = {};
  let configYaml = typeof raw.configYaml === 'string' ? raw.configYaml : '';
  if (isRecord(raw.config)) {
    config = raw.config;
    if (typeof raw.configYaml !== 'string') configYaml = stringifyYaml(config);
  } else if (configYaml !== '') {
    const parsed: unknown = parseYaml(configYaml);
    if (isRecord(parsed)) config = parsed;
  }

  const files: BundleFile[] = [];
  if (Array.isArray(raw.files)) {
    for (const f of raw.files) {
      if (!isRecord(f) || typeof f.path !== 'string' || typeof f.contentBase64 !== 'string') {
        throw new Error('bundle files[] entries need string path and contentBase64');
      }
      files.push({ path: f.path, contentBase64: f.contentBase64 });
    }
  }

  const secrets: Record<string, string> = {};
  if (isRecord(raw.secrets)) {
    for (const [k, v] of Object.entries(raw.secrets)) {
      if (typeof v === 'string') secrets[k] = v;
    }
  }

  const interval = raw.heartbeatIntervalMs;
  return {
    workspaceId,
    orgId: typeof raw.orgId === 'string' ? raw.orgId : '',
    name: typeof raw.name === 'string' && raw.name !== '' ? raw.name : workspaceId,
    runtime: typeof raw.runtime === 'string' && raw.runtime !== '' ? raw.runtime : 'unknown',
    generation,
    configHash,
    config,
    configYaml,
    files,
    plugins: Array.isArray(raw.plugins) ? raw.plugins : [],
    secrets,
    workspaceToken,
    agentCredential: typeof raw.agentCredential === 'string' ? raw.agentCredential : '',
    heartbeatIntervalMs:
      typeof interval === 'number' && Number.isFinite(interval) && interval > 0
        ? interval
        : DEFAULT_HEARTBEAT_INTERVAL_MS,
  };
}

function positiveInt(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : fallback;
}

export function agentHooks(config: Record<string, unknown>): AgentHooks {
  const agent = isRecord(config.agent) ? config.agent : {};
  return {
    neverHealthy: agent.neverHealthy === true,
    runtimeState:
      typeof agent.runtimeState === 'string' && agent.runtimeState !== '' ? agent.runtimeState : 'ok',
    // Capped: a test hook, not a way to pin an agent streaming forever.
    streamChunks: Math.min(positiveInt(agent.streamChunks, 5), 1000),
    // 0 is a legitimate "as fast as possible" interval.
    streamIntervalMs:
      typeof agent.streamIntervalMs === 'number' && agent.streamIntervalMs >= 0
        ? agent.streamIntervalMs
        : 200,
    // Capped like the others: a hook to widen a race window, not to park an agent.
    materializeDelayMs: Math.min(positiveInt(agent.materializeDelayMs, 0), 60_000),
    registerDelayMs: Math.min(positiveInt(agent.registerDelayMs, 0), 60_000),
    echoSecret: typeof agent.echoSecret === 'string' && agent.echoSecret !== '' ? agent.echoSecret : null,
    centsPerTask: Math.min(positiveInt(agent.centsPerTask, 0), 1_000_000),
  };
}
