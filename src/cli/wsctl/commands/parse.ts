/** Argument parsers shared by the commands: each failure is a usage error (exit 2) naming the flag. */
import { readFileSync } from 'node:fs';
import { CliError, EXIT } from '../errors.js';

export function intArg(name: string, min = 0) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!/^-?\d+$/.test(raw) || n < min)
      throw new CliError(EXIT.usage, `${name}: expected an integer ≥ ${min}`);
    return n;
  };
}

/** `KEY=VALUE`, collected into an object (repeatable flag). */
export function keyValue(raw: string, acc: Record<string, string> = {}): Record<string, string> {
  const eq = raw.indexOf('=');
  if (eq <= 0) throw new CliError(EXIT.usage, `expected KEY=VALUE, got "${raw}"`);
  return { ...acc, [raw.slice(0, eq)]: raw.slice(eq + 1) };
}

/** A JSON object given inline or as `@file`. */
export function jsonObject(name: string) {
  return (raw: string): Record<string, unknown> => {
    let text = raw;
    if (raw.startsWith('@')) {
      try {
        text = readFileSync(raw.slice(1), 'utf8');
      } catch (err) {
        throw new CliError(EXIT.usage, `${name}: cannot read ${raw.slice(1)}: ${(err as Error).message}`);
      }
    }
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new CliError(EXIT.usage, `${name}: not valid JSON`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      throw new CliError(EXIT.usage, `${name}: must be a JSON object`);
    }
    return v as Record<string, unknown>;
  };
}

/** All of stdin (for `files put` and secret values when no argument is given). */
export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}
