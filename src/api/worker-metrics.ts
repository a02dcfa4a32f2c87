/**
 * The workers' own series (the SDK's temporal_*), served by each worker's Temporal runtime on a
 * port of its own, appended to the API's /metrics so that one scrape has them (api.md). Only
 * `temporal_` families are taken: a page is another process's, and nothing of it may shadow or
 * break the API's own series. With several workers (WORKER_METRICS_URL lists them) their pages are
 * merged: each family's HELP and TYPE once, then every worker's samples, told apart by a
 * `wo_worker` label (the page's host:port), since the same series from two workers would
 * otherwise be one series twice, which Prometheus rejects.
 */
import type { Logger } from 'pino';

/** A scrape's wait for a worker's metrics page: past it, /metrics answers without that page. */
export const WORKER_METRICS_TIMEOUT_MS = 1_000;

const WORKER_LABEL = 'wo_worker';

const TEMPORAL_LINE = /^(# (HELP|TYPE) )?temporal_[a-zA-Z0-9_:]*[ {]/;
const COMMENT = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) /;
const SAMPLE_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

interface Family {
  help?: string;
  type?: string;
  samples: string[];
}

/** A sample line with `label="value"` added first among its labels. */
function withLabel(line: string, label: string, value: string): string {
  const name = SAMPLE_NAME.exec(line)?.[0] ?? '';
  const rest = line.slice(name.length);
  const pair = `${label}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  if (rest.startsWith('{}')) return `${name}{${pair}}${rest.slice(2)}`;
  if (rest.startsWith('{')) return `${name}{${pair},${rest.slice(1)}`;
  return `${name}{${pair}}${rest}`;
}

/**
 * The temporal_* families of `pages`, in the order first met; `labelled`: each sample labelled by
 * its page's `source` (whenever several workers are configured, even if one page answered, so a
 * series keeps its labels from one scrape to the next).
 */
export function mergeWorkerPages(pages: { source: string; text: string }[], labelled: boolean): string {
  const families = new Map<string, Family>();
  for (const { source, text } of pages) {
    let current: Family | undefined;
    let currentName = '';
    for (const line of text.split('\n')) {
      if (!TEMPORAL_LINE.test(line)) {
        // Another family (not taken) ends the current one.
        if (line.trim() !== '') current = undefined;
        continue;
      }
      const comment = COMMENT.exec(line);
      const name = comment ? comment[2]! : (SAMPLE_NAME.exec(line)?.[0] ?? '');
      // A sample belongs to the family its page declared last when it carries that name (a
      // histogram's _bucket, _sum and _count follow their TYPE line); else it is a family of its own.
      if (comment || !current || !name.startsWith(currentName)) {
        currentName = name;
        current = families.get(name);
        if (!current) families.set(name, (current = { samples: [] }));
      }
      if (comment?.[1] === 'HELP') current.help ??= line;
      else if (comment?.[1] === 'TYPE') current.type ??= line;
      else current.samples.push(labelled ? withLabel(line, WORKER_LABEL, source) : line);
    }
  }
  const out: string[] = [];
  for (const f of families.values()) {
    if (f.help) out.push(f.help);
    if (f.type) out.push(f.type);
    out.push(...f.samples);
  }
  return out.length > 0 ? `${out.join('\n')}\n` : '';
}

/**
 * Every page of `urls`, fetched at once, each within WORKER_METRICS_TIMEOUT_MS; a page that fails
 * is left out and logged (a worker down, or not yet serving), the others still count.
 */
export async function fetchWorkerMetrics(urls: readonly string[], log: Logger): Promise<string> {
  if (urls.length === 0) return '';
  const pages = await Promise.all(
    urls.map(async (url) => {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(WORKER_METRICS_TIMEOUT_MS) });
        if (!res.ok) throw new Error(`worker metrics answered ${res.status}`);
        return { source: new URL(url).host, text: await res.text() };
      } catch (err) {
        log.warn({ err, url }, 'worker metrics unavailable');
        return null;
      }
    }),
  );
  return mergeWorkerPages(
    pages.filter((p) => p !== null),
    urls.length > 1,
  );
}
