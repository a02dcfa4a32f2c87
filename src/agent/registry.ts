import type { Bundle } from './bundle.js';
import { die, errorText, log } from './log.js';
import { isTransientStatus, platformError, type PlatformClient } from './platform.js';
import type { ReportedPlugin } from './plugins.js';
import type { AgentStats } from './stats.js';

export type BootPhase =
  'boot' | 'config-materialized' | 'plugins-installed' | 'agent-started' | 'platform-health-ok';

/** How long one boot event is retried (per round) before the agent logs it. */
const BOOT_EVENT_DEADLINE_MS = 15_000;

/** The calls the agent makes with its workspace token once it has a bundle. */
export class Registry {
  constructor(
    private readonly client: PlatformClient,
    private readonly bundle: Bundle,
  ) {}

  private get token(): string {
    return this.bundle.workspaceToken;
  }

  /** Progress events not yet answered: posted one after another, in the order they happened. */
  private posting: Promise<void> = Promise.resolve();

  /**
   * Reports one boot event. Progress events are queued and posted one after another in the
   * background, so the platform sees phases in order while the boot goes on instead of waiting a
   * round trip per phase; one that keeps failing is logged and skipped (~15 s each at most). The
   * final `platform-health-ok` is what flips the workspace online: it waits for the queue (so it is
   * the last phase the platform sees), is retried until the platform answers, and a 409 (stale
   * generation/config) there ends the agent like a 409 on register.
   */
  async bootEvent(phase: BootPhase, message?: string): Promise<void> {
    log(`phase ${phase}${message ? `: ${message}` : ''}`);
    const body = {
      workspaceId: this.bundle.workspaceId,
      generation: this.bundle.generation,
      phase,
      ...(message === undefined ? {} : { message }),
      ts: new Date().toISOString(),
    };
    if (phase !== 'platform-health-ok') {
      this.posting = this.posting
        .then(() => this.postBootEvent(body, false))
        .catch((err: unknown) => log(`boot event ${phase} not posted: ${errorText(err)}`));
      return;
    }
    await this.posting;
    await this.postBootEvent(body, true);
  }

  private async postBootEvent(body: { phase: BootPhase }, required: boolean): Promise<void> {
    const { phase } = body;
    for (;;) {
      const { res, error } = await this.client.callWithRetry(
        'POST',
        '/v1/registry/boot-events',
        this.token,
        body,
        BOOT_EVENT_DEADLINE_MS,
      );
      if (res && res.status >= 200 && res.status < 300) return;
      const why = res ? `${res.status} ${platformError(res).code}` : error;
      if (required && res?.status === 409)
        die(`boot event ${phase} refused (${why}): ${platformError(res).message}`);
      const transient = !res || isTransientStatus(res.status);
      if (!required || !transient) {
        log(`boot event ${phase} not accepted (${why}); continuing`);
        return;
      }
      log(`boot event ${phase} not accepted (${why}); retrying`);
    }
  }

  /**
   * Registers the agent card. Transient failures are retried without limit (the workflow's boot
   * deadline decides when to give up); a refusal (409 stale generation/config, 401/403) is final.
   */
  async register(agentCard: unknown): Promise<void> {
    const body = {
      workspaceId: this.bundle.workspaceId,
      generation: this.bundle.generation,
      configHash: this.bundle.configHash,
      agentCard,
    };
    for (;;) {
      const { res, error } = await this.client.callWithRetry(
        'POST',
        '/v1/registry/register',
        this.token,
        body,
        30_000,
      );
      if (res && res.status >= 200 && res.status < 300) {
        log(`registered generation ${this.bundle.generation} (config ${this.bundle.configHash})`);
        return;
      }
      if (res && res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
        const e = platformError(res);
        die(`register refused (${res.status} ${e.code}): ${e.message}`);
      }
      log(`register failed (${res ? `${res.status} ${platformError(res).code}` : error}); retrying`);
    }
  }

  /**
   * Heartbeats every interval until the process ends. 409 means this generation or config is stale
   * (a newer one exists): the agent must not linger as a zombie, so it exits. Anything else is logged.
   */
  startHeartbeats(
    stats: AgentStats,
    runtimeState: string,
    startedAt: number,
    plugins: () => Promise<ReportedPlugin[]> = async () => [],
  ): () => void {
    const beat = async () => {
      const body = {
        workspaceId: this.bundle.workspaceId,
        generation: this.bundle.generation,
        configHash: this.bundle.configHash,
        activeTasks: stats.activeTasks,
        errorRate: stats.takeErrorRate(),
        uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
        spentCents: stats.spentCents,
        runtimeState,
        plugins: await plugins().catch(() => []),
      };
      try {
        const res = await this.client.call('POST', '/v1/registry/heartbeat', this.token, body);
        if (res.status === 409) {
          const e = platformError(res);
          die(`heartbeat refused (409 ${e.code}): ${e.message}`);
        }
        if (res.status < 200 || res.status >= 300)
          log(`heartbeat answered ${res.status} ${platformError(res).code}`);
      } catch (err) {
        log(`heartbeat failed: ${errorText(err)}`);
      }
    };
    // A chain of timeouts, not setInterval: a slow platform never gets overlapping beats. `now()`
    // cuts the current wait short (at most one beat at a time still).
    let timer: NodeJS.Timeout | undefined;
    let beating = false;
    let again = false;
    const run = () => {
      if (beating) {
        again = true;
        return;
      }
      beating = true;
      clearTimeout(timer);
      void beat().finally(() => {
        beating = false;
        if (again) {
          again = false;
          run();
          return;
        }
        timer = setTimeout(run, this.bundle.heartbeatIntervalMs);
      });
    };
    run();
    return run;
  }
}
