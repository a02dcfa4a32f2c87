/**
 * What a command prints: with `--json`, one JSON document on stdout (scripts parse it); otherwise a
 * table or `key: value` lines for people. Nothing else goes to stdout in JSON mode.
 */
import Table from 'cli-table3';

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  env: NodeJS.ProcessEnv;
}

export interface Column<T> {
  head: string;
  value: (row: T) => unknown;
}

// C0 (but newline and tab), DEL and C1: what a terminal would act on rather than show.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/**
 * Text for a terminal: much of what wsctl prints comes from inside workspaces (boot console, phase
 * messages, failure reasons, agent replies), so a control character is shown as a visible `\xNN`,
 * never sent to the terminal as an escape sequence (screen rewrites, OSC 52 clipboard writes).
 */
export const printable = (s: string): string =>
  s.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

export class Output {
  constructor(
    readonly io: Io,
    readonly json: boolean,
  ) {}

  /** A line: for people made printable; in JSON mode (only JSON reaches stdout) exact. */
  line(s = ''): void {
    this.io.stdout.write((this.json ? s : printable(s)) + '\n');
  }

  /** A note for people (stderr in JSON mode, so stdout stays one document). */
  note(s: string): void {
    (this.json ? this.io.stderr : this.io.stdout).write(printable(s) + '\n');
  }

  printJson(value: unknown): void {
    this.line(JSON.stringify(value, null, 2));
  }

  table<T>(rows: readonly T[], columns: readonly Column<T>[], raw: unknown = rows): void {
    if (this.json) return this.printJson(raw);
    if (rows.length === 0) return this.line('(none)');
    this.line(renderTable(rows, columns));
  }

  /** An object as `key: value` lines (or JSON). */
  record(obj: object, keys?: readonly string[]): void {
    if (this.json) return this.printJson(obj);
    const value = obj as Record<string, unknown>;
    const shown = keys ?? Object.keys(value);
    const width = Math.max(...shown.map((k) => k.length));
    for (const k of shown) {
      if (value[k] === undefined || value[k] === null) continue;
      this.line(`${(k + ':').padEnd(width + 1)} ${cell(value[k])}`);
    }
  }

  /** The answer of an action without a body (202/204). */
  done(message: string, value: Record<string, unknown>): void {
    if (this.json) this.printJson(value);
    else this.line(message);
  }
}

function cell(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  // No colours: output is often piped or captured, and escape codes would garble it.
  const table = new Table({ head: columns.map((c) => c.head), style: { head: [], border: [] } });
  for (const row of rows) table.push(columns.map((c) => cell(c.value(row))));
  return table.toString();
}

/** "1.2s", "350ms", "2m05s". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return `${m}m${String(s).padStart(2, '0')}s`;
}
