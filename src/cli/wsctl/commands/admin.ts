/** `wsctl orgs create|ls|rm` and `wsctl sweeps ls|run` (admin token). */
import type { Command } from 'commander';
import { contextOf } from '../context.js';
import type { Io } from '../output.js';

interface Org {
  id: string;
  name: string;
  createdAt?: string;
  apiKey?: string;
}

export function orgCommands(program: Command, io: Io): void {
  const orgs = program.command('orgs').description('organisations (admin token)');
  orgs
    .command('create')
    .argument('<name>')
    .description('create an org; prints its API key once')
    .action(async (name: string, _o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const org = await ctx.client.json<Org>('POST', '/v1/orgs', { body: { name } });
      ctx.out.record(org, ['id', 'name', 'apiKey']);
    });
  orgs
    .command('ls')
    .description('list orgs')
    .action(async (_o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const ans = await ctx.client.json<{ items: Org[] }>('GET', '/v1/orgs');
      ctx.out.table(
        ans.items,
        [
          { head: 'ID', value: (o) => o.id },
          { head: 'NAME', value: (o) => o.name },
          { head: 'CREATED', value: (o) => o.createdAt },
        ],
        ans,
      );
    });
  orgs
    .command('rm')
    .argument('<id>')
    .description('delete an org: its keys stop at once, its workspaces are deleted')
    .action(async (id: string, _o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const res = await ctx.client.send('DELETE', `/v1/orgs/${encodeURIComponent(id)}`);
      await res.body?.cancel();
      ctx.out.done(`org ${id}: deletion accepted`, { id, accepted: 'delete' });
    });
}

export function sweepCommands(program: Command, io: Io): void {
  const sweeps = program.command('sweeps').description('health, orphan and budget sweeps (admin token)');
  sweeps
    .command('ls')
    .description('the sweep schedules with their interval and last result')
    .action(async (_o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const ans = await ctx.client.json<{ items: Record<string, unknown>[] }>('GET', '/v1/admin/sweeps');
      ctx.out.table(
        ans.items,
        [
          { head: 'NAME', value: (s) => s.name },
          { head: 'INTERVAL MS', value: (s) => s.intervalMs },
          { head: 'PAUSED', value: (s) => s.paused },
          { head: 'NEXT RUN', value: (s) => s.nextRunAt ?? '' },
          {
            head: 'LAST RUN',
            value: (s) => {
              const last = s.lastRun as { startedAt?: string; status?: string } | null;
              return last ? `${last.startedAt} ${last.status}` : '';
            },
          },
        ],
        ans,
      );
    });
  sweeps
    .command('run')
    .argument('<name>', 'health, orphans or budget')
    .description('run one sweep now and print its result')
    .action(async (name: string, _o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const result = await ctx.client.json<Record<string, unknown>>(
        'POST',
        `/v1/admin/sweeps/${encodeURIComponent(name)}/run`,
      );
      ctx.out.record(result);
    });
}
