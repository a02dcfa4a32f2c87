/** Reading a Prometheus text exposition in tests. */

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** The samples of one series name. */
export function samples(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[k!] = v!;
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

/** The samples of one series name whose labels include `want`. */
export const findSamples = (text: string, name: string, want: Record<string, string>): Sample[] =>
  samples(text, name).filter((s) => Object.entries(want).every(([k, v]) => s.labels[k] === v));

/** The value of the one sample matching `want`, 0 when there is none. */
export const sampleValue = (text: string, name: string, want: Record<string, string>): number =>
  findSamples(text, name, want)[0]?.value ?? 0;
