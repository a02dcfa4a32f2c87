/** `wsctl ws create|ls|get|logs|restart|stop|start|rm`. */
import type { Command } from 'commander';
import { contextOf, type Ctx } from '../context.js';
import { wsPath } from '../http.js';
import type { Io } from '../output.js';
import { follow, serverTime, type Transition, type Verdict } from '../progress.js';
import {
  failWithBootLog,
  printBootLog,
  printUrls,
  workspaceUrls,
  type BootLog,
  type Workspace,
} from '../report.js';
import { intArg, jsonObject, keyValue } from './parse.js';

const DEFAULT_TIMEOUT_S = 600;

const untilStatus =
  (want: string) =>
  (t: Transition): Verdict =>
    t.status === want ? 'done' : t.status === 'failed' || t.status === 'deleted' ? 'failed' : null;

/** Waits for the goal, then prints the workspace (and its URLs when it serves). */
async function waitAndReport(
  ctx: Ctx,
  id: string,
  want: string,
  opts: { since: number | null; generationAbove?: number; timeoutS: number },
): Promise<void> {
  const result = await follow(ctx, id, {
    since: opts.since,
    generationAbove: opts.generationAbove,
    goal: untilStatus(want),
    timeoutMs: opts.timeoutS * 1000,
  });
  if (result.verdict === 'failed') {
    await failWithBootLog(ctx, id, result.last.message ?? `ended ${result.last.status}`);
  }
  const w = await ctx.client.json<Workspace>('GET', wsPath(id));
  if (ctx.out.json) {
    ctx.out.printJson({
      ...w,
      ...(want === 'online' ? { urls: workspaceUrls(ctx.client.url, w) } : {}),
      steps: result.steps,
    });
  } else if (want === 'online') printUrls(ctx.out, ctx.client.url, w);
  else ctx.out.line(`workspace ${w.name} (${w.id}) is ${w.status}`);
}

export function workspaceCommands(ws: Command, io: Io): void {
  ws.command('create')
    .description('create a workspace and follow it to online (phases with timings, then its URLs)')
    .argument('<name>', 'workspace name')
    .option('-b, --backend <backend>', 'docker or ec2', 'docker')
    .option('--template <name>', 'template from the catalog')
    .option('--runtime <runtime>', 'runtime (default: the template’s or the server’s)')
    .option('--config <json>', 'config object, inline JSON or @file', jsonObject('--config'))
    .option('--secret <KEY=VALUE>', 'a secret (repeatable)', keyValue)
    .option('--budget <cents>', 'budget limit in cents', intArg('--budget'))
    .option('--org <id>', 'org to create in (required with the admin token)')
    .option('--parent <id>', 'parent workspace')
    .option('--restart-policy <policy>', 'always or never')
    .option('--no-wait', 'return once accepted, without following progress')
    .option('--timeout <seconds>', 'how long to follow progress', intArg('--timeout', 1), DEFAULT_TIMEOUT_S)
    .action(async (name: string, o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const body = {
        name,
        backend: o.backend,
        ...(o.template ? { template: o.template } : {}),
        ...(o.runtime ? { runtime: o.runtime } : {}),
        ...(o.config ? { config: o.config } : {}),
        ...(o.secret ? { secrets: o.secret } : {}),
        ...(o.budget !== undefined ? { budgetLimitCents: o.budget } : {}),
        ...(o.org ? { orgId: o.org } : {}),
        ...(o.parent ? { parentId: o.parent } : {}),
        ...(o.restartPolicy ? { restartPolicy: o.restartPolicy } : {}),
      };
      const res = await ctx.client.send('POST', '/v1/workspaces', { body });
      const created = (await res.json()) as { id: string; status: string; workflowId: string };
      if (!o.wait) return ctx.out.record(created);
      if (!ctx.out.json) ctx.out.line(`creating workspace ${name} (${created.id}) on ${o.backend}`);
      await waitAndReport(ctx, created.id, 'online', { since: null, timeoutS: o.timeout });
    });

  ws.command('ls')
    .description('list workspaces')
    .option('--status <status>', 'only this status')
    .option('--backend <backend>', 'only this backend')
    .option('--limit <n>', 'page size', intArg('--limit', 1))
    .option('--cursor <cursor>', 'page cursor from a previous --json answer')
    .option('--all', 'follow every page')
    .action(async (o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const items: Workspace[] = [];
      let cursor: string | undefined = o.cursor;
      let next: string | null;
      do {
        const page = await ctx.client.json<{ items: Workspace[]; nextCursor: string | null }>(
          'GET',
          '/v1/workspaces',
          { query: { status: o.status, backend: o.backend, limit: o.limit, cursor } },
        );
        items.push(...page.items);
        next = page.nextCursor;
        cursor = next ?? undefined;
      } while (o.all && next);
      ctx.out.table(
        items,
        [
          { head: 'ID', value: (w) => w.id },
          { head: 'NAME', value: (w) => w.name },
          { head: 'BACKEND', value: (w) => w.backend },
          { head: 'STATUS', value: (w) => (w.phase ? `${w.status} (${w.phase})` : w.status) },
          { head: 'GEN', value: (w) => w.generation },
          { head: 'RESTARTS', value: (w) => w.restartCount },
          { head: 'LAST HEARTBEAT', value: (w) => w.lastHeartbeatAt ?? '' },
        ],
        { items, nextCursor: next },
      );
      if (!ctx.out.json && next) ctx.out.line(`more: --cursor ${next} (or --all)`);
    });

  ws.command('get')
    .description('show one workspace')
    .argument('<id>')
    .action(async (id: string, _o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const w = await ctx.client.json<Workspace>('GET', wsPath(id));
      ctx.out.record(ctx.out.json ? w : { ...w, ...prefixed(workspaceUrls(ctx.client.url, w)) });
    });

  ws.command('logs')
    .description('show the boot log: phase events with timings, then the console')
    .argument('<id>')
    .option('--generation <n>', 'a past generation', intArg('--generation'))
    .action(async (id: string, o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const log = await ctx.client.json<BootLog>('GET', wsPath(id, '/boot-log'), {
        query: { generation: o.generation },
      });
      if (ctx.out.json) ctx.out.printJson(log);
      else printBootLog(ctx.out, log);
    });

  const lifecycle: { name: 'restart' | 'stop' | 'start' | 'rm'; want: string; describe: string }[] = [
    { name: 'restart', want: 'online', describe: 'restart into a new generation' },
    { name: 'start', want: 'online', describe: 'start a stopped, offline or failed workspace' },
    { name: 'stop', want: 'stopped', describe: 'stop the workspace (its data is kept)' },
    { name: 'rm', want: 'deleted', describe: 'delete the workspace and its resources' },
  ];
  for (const l of lifecycle) {
    ws.command(l.name)
      .description(`${l.describe}; waits until ${l.want} unless --no-wait`)
      .argument('<id>')
      .option('--no-wait', 'return once accepted')
      .option('--timeout <seconds>', 'how long to wait', intArg('--timeout', 1), DEFAULT_TIMEOUT_S)
      .action(async (id: string, o, cmd: Command) => {
        const ctx = contextOf(cmd, io);
        const before = l.name === 'restart' ? await ctx.client.json<Workspace>('GET', wsPath(id)) : null;
        const res =
          l.name === 'rm'
            ? await ctx.client.send('DELETE', wsPath(id))
            : await ctx.client.send('POST', wsPath(id, `/${l.name}`));
        await res.body?.cancel();
        if (!o.wait) return ctx.out.done(`${l.name}: accepted for ${id}`, { id, accepted: l.name });
        await waitAndReport(ctx, id, l.want, {
          since: serverTime(res),
          generationAbove: before?.generation,
          timeoutS: o.timeout,
        });
      });
  }
}

const prefixed = (urls: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(urls).map(([k, v]) => [`url.${k}`, v]));
