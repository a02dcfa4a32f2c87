/** `wsctl ws files ls|get|put|rm`: the workspace's `/workspace` (default) or `/configs` tree. */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { contextOf } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import { wsPath } from '../http.js';
import type { Io } from '../output.js';
import { intArg, readAll } from './parse.js';

const ROOT_HELP = '/workspace or /configs';

function rootArg(raw: string): string {
  if (raw !== '/workspace' && raw !== '/configs')
    throw new CliError(EXIT.usage, `--root: must be ${ROOT_HELP}`);
  return raw;
}

interface FileItem {
  path: string;
  type: 'file' | 'dir';
  size: number;
  mtime: string;
}

export function fileCommands(ws: Command, io: Io): void {
  const files = ws.command('files').description('files of an online workspace');
  const root = (c: Command) => c.option('--root <root>', ROOT_HELP, rootArg, '/workspace');

  root(files.command('ls').description('list a folder'))
    .argument('<id>')
    .argument('[path]', 'folder relative to the root', '')
    .option('--depth <n>', '1 to 5', intArg('--depth', 1), 1)
    .action(async (id: string, path: string, o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const ans = await ctx.client.json<{ items: FileItem[] }>('GET', wsPath(id, '/files'), {
        query: { root: o.root, path, depth: o.depth },
      });
      ctx.out.table(
        ans.items,
        [
          { head: 'TYPE', value: (f) => f.type },
          { head: 'SIZE', value: (f) => (f.type === 'file' ? f.size : '') },
          { head: 'MODIFIED', value: (f) => f.mtime },
          { head: 'PATH', value: (f) => f.path },
        ],
        ans,
      );
    });

  root(files.command('get').description('print a file (or save it with -o)'))
    .argument('<id>')
    .argument('<path>')
    .option('-o, --output <file>', 'write to this local file instead of stdout')
    .action(async (id: string, path: string, o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const res = await ctx.client.send('GET', wsPath(id, '/files/content'), {
        query: { root: o.root, path },
      });
      const bytes = Buffer.from(await res.arrayBuffer());
      if (o.output) {
        writeFileSync(o.output, bytes);
        ctx.out.done(`saved ${bytes.length} bytes to ${o.output}`, {
          path,
          bytes: bytes.length,
          output: o.output,
        });
      } else if (ctx.out.json) {
        ctx.out.printJson({ path, bytes: bytes.length, contentBase64: bytes.toString('base64') });
      } else {
        await new Promise<void>((resolve, reject) =>
          io.stdout.write(bytes, (e) => (e ? reject(e) : resolve())),
        );
      }
    });

  root(files.command('put').description('write a file from a local file, or from stdin'))
    .argument('<id>')
    .argument('<path>')
    .argument('[local]', 'local file ("-" or absent: stdin)')
    .action(async (id: string, path: string, local: string | undefined, o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      let bytes: Buffer;
      if (local && local !== '-') {
        try {
          bytes = readFileSync(local);
        } catch (err) {
          throw new CliError(EXIT.usage, `cannot read ${local}: ${(err as Error).message}`);
        }
      } else bytes = await readAll(io.stdin);
      const res = await ctx.client.send('PUT', wsPath(id, '/files/content'), {
        query: { root: o.root, path },
        raw: bytes,
      });
      await res.body?.cancel();
      ctx.out.done(`wrote ${bytes.length} bytes to ${o.root}/${path}`, {
        root: o.root,
        path,
        bytes: bytes.length,
      });
    });

  root(files.command('rm').description('delete a file'))
    .argument('<id>')
    .argument('<path>')
    .action(async (id: string, path: string, o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const res = await ctx.client.send('DELETE', wsPath(id, '/files/content'), {
        query: { root: o.root, path },
      });
      await res.body?.cancel();
      ctx.out.done(`deleted ${o.root}/${path}`, { root: o.root, path, deleted: true });
    });
}
