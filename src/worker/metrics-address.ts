/**
 * WORKER_METRICS_ADDRESS: `off`, `host:port`, or `host:first-last`. A range lets the workers of one
 * host share a setting (docker-compose.yml's replicas share the host's network): each serves on
 * the first port of the range no other process holds, and Prometheus scrapes the range.
 */

/** A range wider than this is a typo more likely than a fleet of workers on one host. */
const MAX_METRICS_PORTS = 100;

const FORM = /^(?<host>[^\s:[\]]+|\[[0-9a-fA-F:]+\]):(?<first>\d{1,5})(?:-(?<last>\d{1,5}))?$/;

export const METRICS_ADDRESS_RULE = `host:port, host:first-last (at most ${MAX_METRICS_PORTS} ports) or off`;

/**
 * The addresses to try, in order: none for `off`, null for a setting of no valid form (a port 0,
 * whose page nobody could find, or past 65535; a range backwards or wider than MAX_METRICS_PORTS).
 */
export function metricsAddresses(setting: string): string[] | null {
  if (setting === 'off') return [];
  const m = FORM.exec(setting);
  if (!m?.groups) return null;
  const {
    host,
    first: firstText,
    last: lastText,
  } = m.groups as { host: string; first: string; last?: string };
  const first = Number(firstText);
  const last = lastText === undefined ? first : Number(lastText);
  if (first < 1 || last > 65_535 || last < first || last - first >= MAX_METRICS_PORTS) return null;
  return Array.from({ length: last - first + 1 }, (_, i) => `${host}:${first + i}`);
}
