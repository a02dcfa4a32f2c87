/**
 * Live progress of a workspace from its `/events` stream: each transition (status · phase) is a
 * step, timed from its event to the next. Ends when `goal` says the workspace got where it was
 * going (or failed on the way), or at the deadline. A stream that ends early (the API restarted)
 * is reopened; the history it replays is skipped by the `since` and generation filters.
 */
import ora, { type Ora } from 'ora';
import { CliError, EXIT } from './errors.js';
import type { Ctx } from './context.js';
import { wsPath } from './http.js';
import { formatDuration, printable } from './output.js';
import { readSse } from './sse.js';

export interface Transition {
  status: string;
  phase: string | null;
  ts: string;
  generation: number;
  message?: string;
}

export type Verdict = 'done' | 'failed' | null;

export interface FollowOptions {
  /** Events older than this (server time) are history from before the request: skipped. */
  since: number | null;
  /**
   * Success only counts at a generation above this (a restart's new generation); a failure counts
   * at any generation (a restart may fail before it makes a new one).
   */
  generationAbove?: number;
  goal: (t: Transition) => Verdict;
  timeoutMs: number;
  /** How often the workspace itself is read meanwhile (default POLL_MS). */
  pollMs?: number;
}

export interface Step {
  label: string;
  startedAt: number;
  durationMs: number | null;
}

/** How often the workspace itself is read while following its stream. */
const POLL_MS = 5000;

const labelOf = (t: Transition): string => printable(t.phase ? `${t.status} · ${t.phase}` : t.status);

/** Follows until the goal's verdict; returns the deciding transition and the timed steps. */
export async function follow(
  ctx: Ctx,
  id: string,
  opts: FollowOptions,
): Promise<{ last: Transition; verdict: 'done' | 'failed'; steps: Step[] }> {
  const { out, io } = ctx;
  const live = !out.json && io.stdout.isTTY === true;
  const spinner: Ora | null = live ? ora({ stream: io.stdout, discardStdin: false }) : null;
  const steps: Step[] = [];
  const seen = new Set<string>();
  let tick: NodeJS.Timeout | null = null;
  const abort = new AbortController();
  const deadline = setTimeout(() => abort.abort(), opts.timeoutMs);

  const finishStep = (at: number, failed = false) => {
    const step = steps[steps.length - 1];
    if (!step || step.durationMs !== null) return;
    step.durationMs = Math.max(0, at - step.startedAt);
    if (out.json) return;
    const text = `${step.label} (${formatDuration(step.durationMs)})`;
    if (spinner) spinner[failed ? 'fail' : 'succeed'](text);
    else out.line(`${failed ? '✖' : '✔'} ${text}`);
  };
  const startStep = (t: Transition) => {
    steps.push({ label: labelOf(t), startedAt: Date.parse(t.ts), durationMs: null });
    if (!spinner) return;
    const step = steps[steps.length - 1]!;
    spinner.start(step.label);
    if (tick) clearInterval(tick);
    tick = setInterval(() => {
      spinner.text = `${step.label} ${formatDuration(Date.now() - step.startedAt)}`;
    }, 250);
  };
  // WSCTL_DEBUG=1 shows the raw stream on stderr (what the server sent, and when it was reopened).
  const debug = io.env.WSCTL_DEBUG ? (s: string) => io.stderr.write(`wsctl debug: ${s}\n`) : () => {};
  const recent = (t: Transition): boolean => opts.since === null || Date.parse(t.ts) >= opts.since;
  const verdictOf = (t: Transition): Verdict => {
    if (!recent(t)) return null;
    const v = opts.goal(t);
    if (v === 'done' && opts.generationAbove !== undefined && t.generation <= opts.generationAbove)
      return null;
    return v;
  };

  type Result = { last: Transition; verdict: 'done' | 'failed'; steps: Step[] };
  let found: Result | null = null;
  /** One transition, from the stream or a poll: the result when it decides the wait. */
  const decide = (t: Transition): Result | null => {
    if (!recent(t)) return null;
    const verdict = verdictOf(t);
    const at = Date.parse(t.ts);
    if (verdict === 'failed') {
      finishStep(at);
      startStep(t);
      finishStep(at, true);
      return { last: t, verdict, steps };
    }
    finishStep(at);
    if (verdict === 'done') {
      if (!out.json) {
        if (spinner) spinner.succeed(labelOf(t));
        else out.line(`✔ ${labelOf(t)}`);
      }
      return { last: t, verdict, steps };
    }
    startStep(t);
    return null;
  };
  const current = async (): Promise<Transition> => {
    const w = await ctx.client.json<Transition & { updatedAt: string }>('GET', wsPath(id));
    return { status: w.status, phase: w.phase ?? null, generation: w.generation, ts: w.updatedAt };
  };
  // The stream is the source of progress; a slow poll of the workspace itself makes sure a
  // transition the stream did not deliver cannot leave the wait hanging.
  const poller = setInterval(() => {
    current()
      .then((t) => {
        if (found || !verdictOf(t)) return;
        debug(`poll saw ${t.status} (generation ${t.generation}) before the stream did`);
        found = decide(t);
        abort.abort();
      })
      .catch(() => undefined);
  }, opts.pollMs ?? POLL_MS);

  try {
    while (!found && !abort.signal.aborted) {
      let res: Response;
      try {
        res = await ctx.client.send('GET', wsPath(id, '/events'), {
          accept: 'text/event-stream',
          signal: abort.signal,
        });
      } catch (err) {
        if (abort.signal.aborted) break;
        throw err;
      }
      debug(`events stream open (${res.status})`);
      try {
        for await (const ev of readSse(res.body!)) {
          debug(`event ${ev.id ?? '-'} ${ev.data}`);
          if (ev.id !== null) {
            if (seen.has(ev.id)) continue;
            seen.add(ev.id);
          }
          let t: Transition;
          try {
            t = JSON.parse(ev.data) as Transition;
          } catch {
            continue;
          }
          const result = decide(t);
          if (result) return result;
        }
      } catch (err) {
        if (!abort.signal.aborted) throw err;
      }
      if (found || abort.signal.aborted) break;
      debug('events stream ended');
      // The stream ended without the goal (the API went away, or the workspace was deleted): the
      // workspace's own state decides whether to keep waiting.
      const t = await current();
      const result = decide(t);
      if (result) return result;
      if (t.status === 'deleted') throw new CliError(EXIT.generic, `workspace ${id} was deleted`);
    }
    if (found) return found;
    spinner?.fail('timed out');
    throw new CliError(
      EXIT.generic,
      `timed out after ${formatDuration(opts.timeoutMs)} waiting for workspace ${id}`,
    );
  } finally {
    clearInterval(poller);
    clearTimeout(deadline);
    if (tick) clearInterval(tick);
    if (spinner?.isSpinning) spinner.stop();
    abort.abort();
  }
}

/** Server time of an answer (its Date header), less a second of rounding; null when absent. */
export function serverTime(res: Response): number | null {
  const d = Date.parse(res.headers.get('date') ?? '');
  return Number.isNaN(d) ? null : d - 1000;
}
