/**
 * `wsctl ws a2a send|card`: a JSON-RPC message through the platform's A2A proxy. Whether the answer
 * streams is read from its content type (not assumed from the method): a stream is printed as it
 * arrives, one line per event.
 */
import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { contextOf } from '../context.js';
import { CliError, EXIT, oneLine } from '../errors.js';
import { wsPath } from '../http.js';
import type { Io } from '../output.js';
import { readSse } from '../sse.js';
import { readAll } from './parse.js';

interface RpcAnswer {
  jsonrpc?: string;
  id?: unknown;
  result?: unknown;
  error?: { code?: number; message?: string };
}

/** The text parts of a message, task, status update or artifact update, whichever the agent sent. */
export function textOf(result: unknown): string {
  if (typeof result !== 'object' || result === null) return typeof result === 'string' ? result : '';
  const r = result as Record<string, unknown>;
  const parts = (p: unknown): string =>
    Array.isArray(p)
      ? p
          .map((x) =>
            typeof x === 'object' && x && typeof (x as { text?: unknown }).text === 'string'
              ? (x as { text: string }).text
              : '',
          )
          .join('')
      : '';
  if (Array.isArray(r.parts)) return parts(r.parts);
  if (typeof r.text === 'string') return r.text;
  const status = r.status as { message?: { parts?: unknown } } | undefined;
  if (status?.message?.parts) return parts(status.message.parts);
  const artifact = r.artifact as { parts?: unknown } | undefined;
  if (artifact?.parts) return parts(artifact.parts);
  if (Array.isArray(r.artifacts))
    return r.artifacts.map((a) => parts((a as { parts?: unknown }).parts)).join('');
  return '';
}

const rpcError = (a: RpcAnswer): CliError =>
  new CliError(EXIT.generic, oneLine(`agent error ${a.error?.code ?? ''}: ${a.error?.message ?? 'unknown'}`));

export function a2aCommands(ws: Command, io: Io): void {
  const a2a = ws.command('a2a').description("talk to a workspace's agent through the platform");

  a2a
    .command('send')
    .description(
      'send a text message (stdin when no text is given); prints the answer, streaming when it streams',
    )
    .argument('<id>')
    .argument('[text...]', 'the message')
    .option('--stream', 'ask for a streamed answer (message/stream)')
    .option('--method <method>', 'JSON-RPC method (default message/send, or message/stream with --stream)')
    .action(async (id: string, words: string[], o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const text = words.length ? words.join(' ') : (await readAll(io.stdin)).toString('utf8').trimEnd();
      const method = o.method ?? (o.stream ? 'message/stream' : 'message/send');
      const body = {
        jsonrpc: '2.0',
        id: 1,
        method,
        params: {
          message: {
            kind: 'message',
            role: 'user',
            messageId: randomUUID(),
            parts: [{ kind: 'text', text }],
          },
        },
      };
      const res = await ctx.client.send('POST', wsPath(id, '/a2a'), {
        body,
        accept: 'application/json, text/event-stream',
      });
      const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (type === 'text/event-stream') {
        let failed: CliError | null = null;
        for await (const ev of readSse(res.body!)) {
          let a: RpcAnswer;
          try {
            a = JSON.parse(ev.data) as RpcAnswer;
          } catch {
            continue;
          }
          if (ctx.out.json) ctx.out.line(JSON.stringify(a));
          else if (a.error) failed = rpcError(a);
          else {
            const t = textOf(a.result);
            if (t) ctx.out.line(t);
          }
        }
        if (failed) throw failed;
        return;
      }
      const a = (await res.json()) as RpcAnswer;
      if (ctx.out.json) return ctx.out.printJson(a);
      if (a.error) throw rpcError(a);
      ctx.out.line(textOf(a.result));
    });

  a2a
    .command('card')
    .description("the agent's card")
    .argument('<id>')
    .action(async (id: string, _o, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      ctx.out.printJson(await ctx.client.json('GET', wsPath(id, '/agent-card')));
    });
}
