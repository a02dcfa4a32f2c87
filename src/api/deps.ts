import type pg from 'pg';
import type { Logger } from 'pino';
import type { BackendKind, WorkspaceBackend } from '../backends/backend.js';
import type { SecretBox } from '../security/secrets.js';
import type { Bounds } from './bounds.js';
import type { EntityClient } from './entity.js';
import type { RestartPolicyInput } from '../workflows/messages.js';
import type { SweepControl } from './sweeps.js';
import type { ScheduleMirror } from '../schedules/mirror.js';
import type { Template } from '../templates/catalog.js';
import type { PluginCatalog } from '../plugins/catalog.js';
import type { PluginWorkflows } from './plugin-workflows.js';
import type { ChangeFeed } from '../db/change-feed.js';
import type { InFlight } from './inflight.js';
import type { ProxyViews } from '../db/proxy-view.js';
import type { BackendReads } from '../a2a/backend-reads.js';
import type { A2ALimits } from '../a2a/proxy.js';

/** What the API needs of a template; catalog fields beyond the spec are optional for callers. */
export type TemplateSettings = Pick<Template, 'config'> &
  Partial<Pick<Template, 'runtime' | 'restartPolicy' | 'description' | 'files' | 'plugins'>>;

export interface ApiSettings {
  adminToken: string;
  enabledBackends: readonly BackendKind[];
  runtimeImages: Record<string, string>;
  defaultRuntime: string;
  bootDeadlineMs: number;
  continueAsNewAfterEvents: number;
  heartbeatIntervalMs: number;
  /** Base of the URLs the API hands out (agent card, peer metadata); set once the port is known. */
  publicUrl: string;
  /** The template catalog (merged with TEMPLATES): config, files, policy. Unknown template → 400. */
  templates: Record<string, TemplateSettings>;
  /** The restart policy's settings; a workspace's or template's `restartPolicy` picks always/never. */
  restartPolicy?: RestartPolicyInput;
  /** The plugin catalog (`plugins/<name>/`): what `local://<name>` installs. */
  plugins?: PluginCatalog;
  /** Data-plane caps; defaults in bounds.ts. */
  bounds?: Partial<Bounds>;
  /** Live (not deleted) workspaces an org may have; a create beyond it answers 403 quota_exceeded. */
  orgWorkspaceQuota: number;
  /** The workers' metrics pages /metrics appends (temporal_*; several merged); absent: none. */
  workerMetricsUrls?: string[];
  /** Creates and org deletes accepted with no worker polling (ACCEPT_WITHOUT_WORKER); default: 503. */
  acceptWithoutWorker?: boolean;
  /** Longest an MCP send_message may wait for its peer's whole answer (default 10 min); then 504. */
  mcpSendTimeoutMs?: number;
  /** Memories a workspace may hold (default 10,000); storing one beyond it answers 403 quota_exceeded. */
  memoriesPerWorkspaceMax?: number;
  /** Secret keys a workspace, or an org's defaults, may hold (default 200); a new one beyond → 403 quota_exceeded. */
  secretsMaxKeys?: number;
  /** Plugins a workspace may hold (default 32); installing a new one beyond → 403 quota_exceeded. */
  pluginsPerWorkspaceMax?: number;
  /** Bytes of their stored files a workspace's plugins may take (default 64 MiB); beyond → 403 quota_exceeded. */
  pluginsMaxBytes?: number;
  /** Requests per minute per key (org/admin token, or workspace); beyond it 429 rate_limited. */
  rateLimitPerMinute: number;
  /** Express's `trust proxy` (TRUST_PROXY): which proxies' `X-Forwarded-For` names the client. */
  trustProxy?: false | number | string;
  /** The web console's links into the Temporal UI (base URL and namespace); absent: no links. */
  temporalUi?: { url: string; namespace: string };
  /** Least `@every` interval of a workspace schedule (SCHEDULE_MIN_INTERVAL_MS; default 1 min). */
  scheduleMinIntervalMs?: number;
  /** The terminal session registry and reaper (TERMINAL_SESSION_*; defaults in terminal.ts). */
  terminalSessions?: Partial<TerminalSessionSettings>;
  /** The A2A proxy's limits over A2A_DEFAULTS (read per call: a test shortens one for its stack). */
  a2a?: Partial<A2ALimits>;
}

export interface TerminalSessionSettings {
  /** TERMINAL_SESSION_REFRESH_MS: every how often this process marks its sessions alive. */
  refreshMs: number;
  /** TERMINAL_SESSION_STALE_MS: unmarked this long, a session of this process counts as orphaned. */
  staleMs: number;
  /** TERMINAL_REAP_INTERVAL_MS: every how often this process reaps orphaned sessions. */
  reapIntervalMs: number;
}

export interface ApiDeps {
  db: pg.Pool;
  entity: EntityClient;
  /** Sweeps on demand, their Schedules, and the org cascade (absent: those routes answer 503). */
  sweeps?: SweepControl;
  /** Starts plugin workflows and forwards the agent's plugin reports (absent: installs answer 503). */
  plugins?: PluginWorkflows;
  /** The Temporal mirrors of workspace schedules (absent: those routes answer 503). */
  schedules?: ScheduleMirror;
  backends: Record<BackendKind, WorkspaceBackend>;
  secrets: SecretBox;
  settings: ApiSettings;
  log: Logger;
  /** The A2A proxy's cached workspace views (absent: read from the database per call). */
  proxyViews?: ProxyViews;
  /** New transitions as PostgreSQL announces them (absent: `/events` learns of them by polling). */
  transitionHints?: Pick<ChangeFeed, 'onTransition'>;
  /** The A2A calls still running, which a shutdown waits for (absent: the router keeps its own). */
  inflight?: InFlight;
  /** The bound on backend reads agents' requests cause (absent: made on first use, backendReads). */
  reads?: BackendReads;
  /** Extra readiness checks (e.g. Temporal), name → probe. */
  readiness: Record<string, () => Promise<void>>;
}
