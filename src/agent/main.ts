/**
 * The reference workspace agent. It is started with nothing but the platform URL and a single-use
 * bootstrap token, fetches its bundle, materialises /configs, reports boot phases, serves A2A and
 * proves readiness by registering and heartbeating with the current generation and config hash.
 */
import { hostname } from 'node:os';
import { AgentCard } from '@a2a-js/sdk';
import { agentCard, type Identity } from './a2a.js';
import { agentHooks } from './bundle.js';
import { fetchBundle } from './bootstrap.js';
import {
  loadSavedBundle,
  materializeConfigs,
  removeLegacyState,
  secretsHash,
  sha256Hex,
  writeMcpConfig,
  writeSecrets,
} from './configs.js';
import { readAgentEnv, type AgentEnv } from './env.js';
import { die, errorText, log } from './log.js';
import { PlatformClient } from './platform.js';
import { materializePlugins, scanPlugins } from './plugins.js';
import { Registry } from './registry.js';
import { createA2AServer, listen } from './server.js';
import { loadSpent, spendSaver } from './spend.js';
import { AgentStats } from './stats.js';
import { removeUploadLeftovers, UPLOAD_LEFTOVER_AGE_MS } from './upload-leftovers.js';

async function main(): Promise<void> {
  const startedAt = Date.now();
  // As PID 1 in a container, node gets no default signal handling: without these, `docker stop`
  // would wait its full grace period and then SIGKILL.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      log(`${signal} received, exiting`);
      process.exit(0);
    });
  }

  let env: AgentEnv;
  try {
    env = readAgentEnv(process.env);
  } catch (err) {
    die(errorText(err));
  }
  const client = new PlatformClient(env.platformUrl);

  // Same bootstrap token as the saved bundle = this very resource rebooted (docker restart, EC2
  // stop/start): the single-use token is spent, so refresh with the workspace token instead.
  const tokenSha = sha256Hex(env.bootstrapToken);
  const saved = await loadSavedBundle(env.stateDir, env.configsDir);
  const reboot = saved !== null && saved.bootstrapTokenSha256 === tokenSha;
  log(
    reboot
      ? `reboot of workspace ${saved.workspaceId} generation ${saved.generation}: refreshing bundle from ${env.platformUrl}`
      : `first boot: fetching bundle from ${env.platformUrl}`,
  );
  const bundle = await fetchBundle(client, reboot ? saved.workspaceToken : env.bootstrapToken);
  const registry = new Registry(client, bundle);
  const hooks = agentHooks(bundle.config);
  await registry.bootEvent(
    'boot',
    `workspace ${bundle.workspaceId} generation ${bundle.generation} config ${bundle.configHash}${reboot ? ' (reboot)' : ''}`,
  );

  if (hooks.materializeDelayMs > 0) {
    log(`config.agent.materializeDelayMs: writing ${env.configsDir} in ${hooks.materializeDelayMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, hooks.materializeDelayMs));
  }
  try {
    const files = await materializeConfigs(env.configsDir, env.stateDir, bundle, tokenSha);
    await removeLegacyState(env.configsDir);
    const refused = files.refused.length > 0 ? `; refused unsafe paths: ${files.refused.join(', ')}` : '';
    await registry.bootEvent(
      'config-materialized',
      `config.yaml + ${files.written.length} file(s)${refused}`,
    );
    const secrets = await writeSecrets(env.stateDir, bundle.secrets);
    const badKeys = secrets.refused.length > 0 ? `; refused secret names: ${secrets.refused.join(', ')}` : '';
    // What the agent received, provable without showing it: one hash over the sorted KEY=value lines.
    const seen = `; secrets sha256 ${secretsHash(bundle.secrets)}`;
    const echoed = hooks.echoSecret ? `; echo ${bundle.secrets[hooks.echoSecret] ?? '(unset)'}` : '';
    if (echoed) log(`config.agent.echoSecret${echoed}`);
    const plugins = await materializePlugins(env.configsDir, bundle.plugins);
    const badPlugins = plugins.refused.length > 0 ? `; refused plugins: ${plugins.refused.join(', ')}` : '';
    await registry.bootEvent(
      'plugins-installed',
      `plugins [${plugins.installed.join(', ')}]${badPlugins}; ${secrets.keys.length} secret(s) written${badKeys}${seen}${echoed}`,
    );
  } catch (err) {
    die(`writing ${env.configsDir} failed: ${errorText(err)}`);
  }

  const identity: Identity = {
    workspaceId: bundle.workspaceId,
    name: bundle.name,
    runtime: bundle.runtime,
    generation: bundle.generation,
    configHash: bundle.configHash,
  };
  const saveSpent = spendSaver(env.stateDir, bundle.generation);
  const stats = new AgentStats(await loadSpent(env.stateDir, bundle.generation), (total) => {
    void saveSpent(total);
  });
  const cardUrl = `http://${hostname()}:${env.port}/`;
  // Registration needs only the card, and the platform reads the resource's endpoint for it, not
  // the agent: it goes while the server starts (one round trip off the boot's path). Readiness is
  // still proven only by `platform-health-ok`, sent once both are done. A delayed or withheld
  // registration (test hooks) keeps its place after `agent-started`.
  // The card as it goes on the wire (protocol 1.0 JSON), as the platform stores and shows it.
  const card = AgentCard.toJSON(agentCard(identity, cardUrl));
  const registerEarly = !hooks.neverHealthy && hooks.registerDelayMs <= 0;
  const registering = registerEarly ? registry.register(card) : null;
  // Set once heartbeats run: a reload request (the platform delivered or removed a plugin) beats now.
  let beatNow: () => void = () => undefined;
  const server = createA2AServer({
    identity,
    hooks,
    stats,
    cardUrl,
    credential: bundle.agentCredential,
    onReload: () => beatNow(),
  });
  try {
    await listen(server, env.port);
  } catch (err) {
    die(`A2A server could not listen on port ${env.port}: ${errorText(err)}`);
  }
  // The runtime's way to its peers (list_peers, send_message, chat_history): the platform's MCP
  // endpoint, in the environment of whatever the agent starts and in a client config file.
  const mcpUrl = `${env.platformUrl}/v1/mcp`;
  process.env.WO_MCP_URL = mcpUrl;
  const mcpConfig = await writeMcpConfig(env.stateDir, mcpUrl, bundle.workspaceToken).catch((err: unknown) =>
    die(`writing the MCP client config failed: ${errorText(err)}`),
  );
  await registry.bootEvent(
    'agent-started',
    `A2A server listening on 0.0.0.0:${env.port}; MCP endpoint ${mcpUrl} (${mcpConfig})`,
  );

  if (hooks.neverHealthy) {
    log('config.agent.neverHealthy is set: not registering, not heartbeating');
    return;
  }
  if (registering) {
    await registering;
  } else {
    log(`config.agent.registerDelayMs: registering in ${hooks.registerDelayMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, hooks.registerDelayMs));
    await registry.register(card);
  }
  await registry.bootEvent('platform-health-ok', 'registered; heartbeating');
  beatNow = registry.startHeartbeats(stats, hooks.runtimeState, startedAt, () => scanPlugins(env.configsDir));
  sweepUploadLeftovers([env.configsDir, env.workspaceDir]);
}

/** Now (after the boot, off its path) and every hour: temporary files of uploads a crash cut. */
function sweepUploadLeftovers(roots: string[]): void {
  const sweep = () =>
    removeUploadLeftovers(roots).then(
      (removed) => {
        if (removed.length > 0)
          log(`removed ${removed.length} unfinished upload(s): ${removed.slice(0, 5).join(', ')}`);
      },
      (err: unknown) => log(`sweeping unfinished uploads failed: ${errorText(err)}`),
    );
  void sweep();
  setInterval(() => void sweep(), UPLOAD_LEFTOVER_AGE_MS).unref();
}

main().catch((err: unknown) => die(`unexpected failure: ${errorText(err)}`));
