/** The agent's whole configuration from the environment: the platform URL and a one-time token. */
export interface AgentEnv {
  platformUrl: string;
  bootstrapToken: string;
  /** Port of the A2A server inside the workspace. */
  port: number;
  /** Where config.yaml and template files live (a volume, served by the files API). */
  configsDir: string;
  /** The workspace's working tree (a volume, served by the files API). */
  workspaceDir: string;
  /**
   * Agent-private state: the saved bundle (workspace token) and secrets.env. Outside every root the
   * files API serves, root-only (0700), and on the resource's own disk, so it survives a reboot of
   * the same generation but is never shared with the next one.
   */
  stateDir: string;
}

/** Throws an Error whose message names the offending variable (never its value). */
export function readAgentEnv(env: NodeJS.ProcessEnv): AgentEnv {
  const platformUrl = env.WO_PLATFORM_URL?.trim();
  if (!platformUrl) throw new Error('WO_PLATFORM_URL is not set');
  try {
    new URL(platformUrl);
  } catch {
    throw new Error('WO_PLATFORM_URL is not a valid URL');
  }
  const bootstrapToken = env.WO_BOOTSTRAP_TOKEN?.trim();
  if (!bootstrapToken) throw new Error('WO_BOOTSTRAP_TOKEN is not set');

  const portText = env.WO_AGENT_PORT?.trim() || '8080';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`WO_AGENT_PORT is not a valid port: ${portText}`);
  }
  return {
    platformUrl: platformUrl.replace(/\/+$/, ''),
    bootstrapToken,
    port,
    configsDir: env.WO_CONFIGS_DIR?.trim() || '/configs',
    workspaceDir: env.WO_WORKSPACE_DIR?.trim() || '/workspace',
    stateDir: env.WO_STATE_DIR?.trim() || '/var/lib/wo',
  };
}
