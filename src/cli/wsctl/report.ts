/** What `wsctl` shows at the end of a wait: the workspace's URLs, or why it failed and its boot log. */
import type { Ctx } from './context.js';
import { CliError, EXIT, oneLine } from './errors.js';
import { wsPath } from './http.js';
import { formatDuration, type Output } from './output.js';

export interface Workspace {
  id: string;
  name: string;
  status: string;
  phase?: string;
  generation: number;
  backend: string;
  runtime: string;
  endpoint?: string;
  error?: string;
  [key: string]: unknown;
}

export interface BootLog {
  backend: string;
  events: { ts: string; phase: string; generation?: number; message?: string; durationMs?: number | null }[];
  console: string;
}

/** The addresses a workspace is reached at through the platform (and the agent's own endpoint). */
export function workspaceUrls(base: string, w: Workspace): Record<string, string> {
  const api = `${base}${wsPath(w.id)}`;
  const urls: Record<string, string> = {
    api,
    a2a: `${api}/a2a`,
    agentCard: `${api}/agent-card`,
    events: `${api}/events`,
    terminal: `${api.replace(/^http/, 'ws')}/terminal`,
  };
  if (w.endpoint) urls.endpoint = w.endpoint;
  return urls;
}

export function printUrls(out: Output, base: string, w: Workspace): void {
  const urls = workspaceUrls(base, w);
  out.line(`workspace ${w.name} (${w.id}) is ${w.status} at generation ${w.generation}`);
  for (const [k, v] of Object.entries(urls)) out.line(`  ${(k + ':').padEnd(11)} ${v}`);
}

export function printBootLog(out: Output, log: BootLog): void {
  for (const e of log.events) {
    const took = typeof e.durationMs === 'number' ? ` (${formatDuration(e.durationMs)})` : '';
    out.line(`${e.ts}  g${e.generation ?? '?'}  ${e.phase}${took}${e.message ? `  ${e.message}` : ''}`);
  }
  if (log.console) {
    out.line('--- console ---');
    out.line(log.console.replace(/\n$/, ''));
  }
}

/**
 * A wait that ended in failure: the reason and the boot log (on stdout for people, in the JSON
 * object for scripts), then the one-line error that sets the exit code.
 */
export async function failWithBootLog(ctx: Ctx, id: string, fallbackReason: string): Promise<never> {
  const w = await ctx.client.json<Workspace>('GET', wsPath(id));
  const log = await ctx.client.json<BootLog>('GET', wsPath(id, '/boot-log')).catch(() => null);
  const reason = w.error ?? fallbackReason;
  if (ctx.out.json) ctx.out.printJson({ ...w, bootLog: log });
  else {
    ctx.out.line(`workspace ${w.name} (${id}) ${w.status}: ${reason}`);
    if (log) printBootLog(ctx.out, log);
  }
  throw new CliError(EXIT.generic, oneLine(`workspace ${id} ${w.status}: ${reason}`));
}
