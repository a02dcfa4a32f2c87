/**
 * The registry: what the agent inside a workspace calls. Every call is fenced by generation and
 * config hash: a stale boot (old container, old cloud-init config) is refused with 409 and can
 * never move the workspace. Heartbeats go to Postgres; the entity is signalled only on transitions.
 */
import { Router, type RequestHandler, type Response } from 'express';
import { recordSpend } from '../../db/budget.js';
import { BOOT_EVENTS_PER_GENERATION_MAX, recordBootEvent } from '../../db/events.js';
import { bundlePlugins, forwardPluginReport } from '../plugin-reports.js';
import { pruneRetiredSecrets, redactorFor, secretValues } from '../../db/secrets.js';
import { closeBootstrapRedelivery, redeemBootstrapToken } from '../../db/tokens.js';
import * as workspaces from '../../db/workspaces.js';
import { renderConfigYaml } from '../../domain/config-hash.js';
import { issueAgentCredential, presentedAgentCredential } from '../../db/agent-credentials.js';
import { principalOf } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { backendReads } from '../../a2a/backend-reads.js';
import { probe } from '../../a2a/proxy.js';
import { refreshEndpoint } from '../endpoints.js';
import { HttpError, conflict, parse } from '../errors.js';
import { bootEventBody, heartbeatBody, registerBody } from '../schemas.js';

const stale = (what: string) => conflict(what, 'stale_generation');

export function registryRouter(deps: ApiDeps): Router {
  const { db } = deps;
  const r = Router();
  // Shared with the A2A routes: the reads an agent's requests cause are bounded per workspace.
  const reads = backendReads(deps);

  /**
   * The caller as a workspace. A valid token of another kind: authenticated, not allowed (api.md:
   * 403; 401 is for no token).
   */
  const workspacePrincipal = (res: Response) => {
    const p = principalOf(res);
    if (p.kind !== 'workspace') throw new HttpError(403, 'forbidden', 'workspace token required');
    return p;
  };

  /** Before the body is read: a manager's key learns nothing of what an agent's body must hold. */
  const workspaceOnly: RequestHandler = (_req, res, next) => {
    workspacePrincipal(res);
    next();
  };

  /** The workspace principal's current workspace, checked against what the body claims. */
  async function current(res: Response, claimed: { workspaceId: string; generation: number }) {
    const p = workspacePrincipal(res);
    if (p.workspaceId !== claimed.workspaceId) {
      throw new HttpError(403, 'forbidden', 'token is for another workspace');
    }
    const w = await workspaces.getWorkspace(db, p.workspaceId);
    if (!w || w.status === 'deleted') throw conflict('workspace is deleted', 'deleted');
    if (p.generation !== w.generation || claimed.generation !== w.generation) {
      throw stale(`generation ${claimed.generation} is not the current generation`);
    }
    return w;
  }

  r.get('/bootstrap', async (_req, res) => {
    const p = principalOf(res);
    let workspaceId: string;
    let generation: number;
    let workspaceToken: string;
    if (p.kind === 'bootstrap') {
      // Spent for good only once the agent registers (or the short re-fetch window ends): a lost
      // answer is fetched again and yields the same workspace token.
      const redeemed = await redeemBootstrapToken(db, deps.secrets, p.token);
      if (!redeemed) throw new HttpError(401, 'invalid_token', 'bootstrap token is unknown, used or expired');
      ({ workspaceId, generation, workspaceToken } = redeemed);
    } else if (p.kind === 'workspace') {
      // A reboot of the same generation refreshes its bundle with its workspace token.
      ({ workspaceId, generation } = p);
      workspaceToken = bearerOf(res);
    } else {
      throw new HttpError(403, 'forbidden', 'bootstrap or workspace token required');
    }
    const w = await workspaces.getWorkspace(db, workspaceId);
    if (!w || w.status === 'deleted') throw conflict('workspace is deleted', 'deleted');
    if (w.generation !== generation || !w.bootRuntime || !w.bootConfigHash) {
      throw stale(`generation ${generation} is not the current generation`);
    }
    const config = w.bootConfig ?? {};
    // Independent reads (and the credential's insert): at once, the agent's boot waits on them.
    const [plugins, secrets, agentCredential] = await Promise.all([
      bundlePlugins(db, w.id),
      secretValues(db, deps.secrets, w.id),
      issueAgentCredential(db, deps.secrets, w.id, generation),
    ]);
    res.json({
      workspaceId: w.id,
      orgId: w.orgId,
      name: w.name,
      runtime: w.bootRuntime,
      generation,
      configHash: w.bootConfigHash,
      config,
      configYaml: renderConfigYaml(w.bootRuntime, config),
      files: templateFiles(deps, w.id, w.template),
      plugins,
      secrets,
      workspaceToken,
      agentCredential,
      heartbeatIntervalMs: deps.settings.heartbeatIntervalMs,
    });
  });

  r.post('/register', workspaceOnly, async (req, res) => {
    const body = parse(registerBody, req.body);
    const w = await current(res, body);
    if (body.configHash !== w.bootConfigHash) {
      throw conflict(`config hash ${body.configHash} is not this generation's config`, 'config_mismatch');
    }
    const registered = await workspaces.recordRegistration(
      db,
      w.id,
      body.generation,
      body.configHash,
      body.agentCard,
    );
    if (!registered) throw stale('generation changed during registration');
    // A (re)started resource may answer elsewhere now (docker restart: new host port). The
    // generation's first registration always re-reads; the agent can register again in a loop, so
    // any later one at most once per interval (backend-reads.ts).
    // The endpoint's re-read is independent of the bundle's bookkeeping: both at once, the agent's
    // `platform-health-ok` waits on this answer.
    await Promise.all([
      reads.due(w, 'register', registered.first) ? refreshEndpoint(deps, w) : null,
      (async () => {
        await closeBootstrapRedelivery(db, w.id, body.generation);
        // Its bundle is proven delivered: retired values no agent of the org may hold now can go.
        // Best effort: a value kept longer is only redacted longer.
        await pruneRetiredSecrets(db, { orgId: w.orgId }).catch((err: unknown) => {
          deps.log.warn({ workspaceId: w.id, err }, 'retired secrets not pruned');
        });
      })(),
    ]);
    res.json({ ok: true, generation: w.generation, configHash: w.bootConfigHash });
  });

  r.post('/boot-events', workspaceOnly, async (req, res) => {
    const body = parse(bootEventBody, req.body);
    const w = await current(res, body);
    // Ready only with a registration for this generation and its config hash.
    const healthOk = body.phase === 'platform-health-ok';
    if (
      healthOk &&
      (w.registeredGeneration !== body.generation || w.registeredConfigHash !== w.bootConfigHash)
    ) {
      throw conflict('platform-health-ok before registration for this generation', 'not_registered');
    }
    const clean = await redactorFor(db, deps.secrets, w.id);
    const stored = await recordBootEvent(db, w.id, {
      generation: body.generation,
      phase: body.phase,
      message: body.message ? clean(body.message) : null,
      ts: body.ts ? new Date(body.ts) : new Date(),
    });
    // Past the generation's cap nothing more is stored; readiness is still proven (not stored).
    if (!stored && !healthOk) {
      throw conflict(
        `generation ${body.generation} already holds ${BOOT_EVENTS_PER_GENERATION_MAX} boot events`,
        'too_many_boot_events',
      );
    }
    if (healthOk) {
      await deps.entity.signalReady(w.id, {
        generation: body.generation,
        configHash: w.registeredConfigHash!,
      });
    }
    res.json({ ok: true });
  });

  r.post('/heartbeat', workspaceOnly, async (req, res) => {
    const body = parse(heartbeatBody, req.body);
    const w = await current(res, body);
    if (body.configHash !== w.bootConfigHash) {
      throw conflict(`config hash ${body.configHash} is not this generation's config`, 'config_mismatch');
    }
    const { previous } = await workspaces.recordHeartbeat(db, w.id, body.runtimeState);
    // Per generation, only ever raised: a replayed or late heartbeat cannot lower the spend.
    if (body.spentCents !== undefined) await recordSpend(db, w.id, w.generation, body.spentCents);
    if (body.plugins) await forwardPluginReport(deps, w.id, w.generation, body.plugins);
    if ((previous ?? 'ok') !== body.runtimeState) {
      await deps.entity.signalHealth(w.id, { generation: w.generation, runtimeState: body.runtimeState });
    }
    const endpoint = reads.due(w, 'heartbeat') ? await refreshEndpoint(deps, w) : w.endpoint;
    // A heartbeat proves the agent runs, not that the platform reaches it: probe before lifting a
    // verdict a failed forward left (degraded/offline with a healthy runtime; nothing else lifts it).
    // The probe counts only this generation's agent proving itself at the address, never whatever
    // else answers there now.
    const unreachableVerdict =
      (w.status === 'degraded' || w.status === 'offline') && body.runtimeState === 'ok';
    const reachable = async (at: string) =>
      probe(
        at,
        {
          workspaceId: w.id,
          generation: w.generation,
          credential: await presentedAgentCredential(db, deps.secrets, w.id, w.generation),
        },
        3_000,
      );
    if (unreachableVerdict && endpoint && (await reachable(endpoint))) {
      await deps.entity.signalLiveness(w.id, {
        generation: w.generation,
        reachable: true,
        resourceStatus: 'running',
      });
    }
    res.json({ ok: true });
  });

  return r;
}

/** The template's files, from the catalog this process loaded: the one way they reach /configs. */
function templateFiles(deps: ApiDeps, workspaceId: string, name: string | null) {
  if (!name) return [];
  if (!Object.hasOwn(deps.settings.templates, name)) {
    deps.log.warn(
      { workspaceId, template: name },
      'template no longer in the catalog: booting without its files',
    );
    return [];
  }
  return deps.settings.templates[name]!.files ?? [];
}

function bearerOf(res: Response): string {
  return String(res.locals.rawToken);
}
