/** `wsctl ws plugins|secrets|schedules`: list, add and remove, as the API allows. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { contextOf, type Ctx } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import { wsPath } from '../http.js';
import type { Io } from '../output.js';
import { readAll } from './parse.js';

type Act = (ctx: Ctx, ...args: string[]) => Promise<void>;

/**
 * A command whose action gets the context and its positional arguments. Commander passes the
 * positionals, then the options object, then the command itself (last).
 */
const run =
  (io: Io, act: Act) =>
  (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    const positional = args.slice(0, -2) as string[];
    return act(contextOf(cmd, io), ...positional);
  };

/** Drops an empty answer (202/204) and says what happened. */
async function action(ctx: Ctx, method: string, path: string, message: string, body?: unknown) {
  const res = await ctx.client.send(method, path, body === undefined ? {} : { body });
  const text = await res.text();
  const value = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  ctx.out.done(message, { ok: true, status: res.status, ...value });
}

interface Plugin {
  name: string;
  version: string;
  status?: string;
  installedAt?: string;
  reason?: string;
  source?: string;
  description?: string;
}

export function pluginCommands(ws: Command, io: Io): void {
  const plugins = ws.command('plugins').description("a workspace's plugins (installed live)");
  plugins
    .command('ls')
    .argument('<id>')
    .description('installed plugins')
    .action(
      run(io, async (ctx, id) => {
        const ans = await ctx.client.json<{ items: Plugin[] }>('GET', wsPath(id!, '/plugins'));
        ctx.out.table(
          ans.items,
          [
            { head: 'NAME', value: (p) => p.name },
            { head: 'VERSION', value: (p) => p.version },
            { head: 'STATUS', value: (p) => p.status },
            { head: 'INSTALLED', value: (p) => p.installedAt ?? '' },
            { head: 'REASON', value: (p) => p.reason ?? '' },
          ],
          ans,
        );
      }),
    );
  plugins
    .command('catalog')
    .description('plugins the server offers (local://<name>)')
    .action(
      run(io, async (ctx) => {
        const ans = await ctx.client.json<{ items: Plugin[] }>('GET', '/v1/plugins');
        ctx.out.table(
          ans.items,
          [
            { head: 'SOURCE', value: (p) => p.source },
            { head: 'VERSION', value: (p) => p.version },
            { head: 'DESCRIPTION', value: (p) => p.description ?? '' },
          ],
          ans,
        );
      }),
    );
  plugins
    .command('install')
    .argument('<id>')
    .argument('<source>', 'local://<name>, or a .tar.gz file')
    .description('install a plugin from the catalog or an archive')
    .action(
      run(io, async (ctx, id, source) => {
        let body: unknown = { source };
        if (!source!.startsWith('local://')) {
          let bytes: Buffer;
          try {
            bytes = readFileSync(source!);
          } catch (err) {
            throw new CliError(EXIT.usage, `cannot read ${source}: ${(err as Error).message}`);
          }
          body = {
            source: { tarGzBase64: bytes.toString('base64') },
            sha256: createHash('sha256').update(bytes).digest('hex'),
          };
        }
        await action(ctx, 'POST', wsPath(id!, '/plugins'), `install of ${source} accepted`, body);
      }),
    );
  plugins
    .command('rm')
    .argument('<id>')
    .argument('<name>')
    .description('remove a plugin')
    .action(
      run(io, (ctx, id, name) =>
        action(
          ctx,
          'DELETE',
          wsPath(id!, `/plugins/${encodeURIComponent(name!)}`),
          `removal of ${name} accepted`,
        ),
      ),
    );
}

export function secretCommands(ws: Command, io: Io): void {
  const secrets = ws
    .command('secrets')
    .description("a workspace's secrets (write-only; used at the next start)");
  secrets
    .command('ls')
    .argument('<id>')
    .description('secret keys (never values)')
    .action(
      run(io, async (ctx, id) => {
        const ans = await ctx.client.json<{ items: { key: string; updatedAt: string }[] }>(
          'GET',
          wsPath(id!, '/secrets'),
        );
        ctx.out.table(
          ans.items,
          [
            { head: 'KEY', value: (s) => s.key },
            { head: 'UPDATED', value: (s) => s.updatedAt },
          ],
          ans,
        );
      }),
    );
  secrets
    .command('set')
    .argument('<id>')
    .argument('<key>')
    .argument('[value]', 'the value (stdin when absent: keeps it out of shell history)')
    .description('set a secret')
    .action(
      run(io, async (ctx, id, key, value) => {
        const v = value ?? (await readAll(ctx.io.stdin)).toString('utf8').replace(/\r?\n$/, '');
        await action(ctx, 'PUT', wsPath(id!, `/secrets/${encodeURIComponent(key!)}`), `secret ${key} set`, {
          value: v,
        });
      }),
    );
  secrets
    .command('rm')
    .argument('<id>')
    .argument('<key>')
    .description('delete a secret')
    .action(
      run(io, (ctx, id, key) =>
        action(ctx, 'DELETE', wsPath(id!, `/secrets/${encodeURIComponent(key!)}`), `secret ${key} deleted`),
      ),
    );
}

interface Schedule {
  id: string;
  cron: string;
  timezone: string;
  prompt: string;
  enabled: boolean;
  lastRun?: { at: string; status: string; error?: string };
}

export function scheduleCommands(ws: Command, io: Io): void {
  const schedules = ws.command('schedules').description("a workspace's scheduled prompts");
  schedules
    .command('ls')
    .argument('<id>')
    .description('list schedules')
    .action(
      run(io, async (ctx, id) => {
        const ans = await ctx.client.json<{ items: Schedule[] }>('GET', wsPath(id!, '/schedules'));
        ctx.out.table(
          ans.items,
          [
            { head: 'ID', value: (s) => s.id },
            { head: 'CRON', value: (s) => `${s.cron} ${s.timezone}` },
            { head: 'ENABLED', value: (s) => s.enabled },
            { head: 'LAST RUN', value: (s) => (s.lastRun ? `${s.lastRun.at} ${s.lastRun.status}` : '') },
            { head: 'PROMPT', value: (s) => s.prompt },
          ],
          ans,
        );
      }),
    );
  schedules
    .command('add')
    .argument('<id>')
    .requiredOption('--cron <spec>', 'cron spec (or @every <duration>)')
    .requiredOption('--prompt <text>', 'what to send the agent')
    .option('--timezone <tz>', 'IANA timezone (default UTC)')
    .option('--disabled', 'create it disabled')
    .description('add a schedule')
    .action(async (id: string, o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const created = await ctx.client.json<Schedule>('POST', wsPath(id, '/schedules'), {
        body: {
          cron: o.cron,
          prompt: o.prompt,
          ...(o.timezone ? { timezone: o.timezone } : {}),
          ...(o.disabled ? { enabled: false } : {}),
        },
      });
      if (ctx.out.json) ctx.out.printJson(created);
      else ctx.out.line(`schedule ${created.id} added`);
    });
  schedules
    .command('rm')
    .argument('<id>')
    .argument('<scheduleId>')
    .description('delete a schedule')
    .action(
      run(io, (ctx, id, sid) =>
        action(
          ctx,
          'DELETE',
          wsPath(id!, `/schedules/${encodeURIComponent(sid!)}`),
          `schedule ${sid} deleted`,
        ),
      ),
    );
  schedules
    .command('run')
    .argument('<id>')
    .argument('<scheduleId>')
    .description('run a schedule now')
    .action(
      run(io, (ctx, id, sid) =>
        action(
          ctx,
          'POST',
          wsPath(id!, `/schedules/${encodeURIComponent(sid!)}/run`),
          `schedule ${sid} started`,
        ),
      ),
    );
}
