/**
 * Where `wsctl` finds its endpoint and token: flags first, then the environment (`WO_URL`,
 * `WO_TOKEN`), then the file `wsctl login` writes (`$XDG_CONFIG_HOME/wsctl/config.json`, else
 * `~/.config/wsctl/config.json`, mode 0600). Each value is resolved on its own, so `--token` with a
 * logged-in URL works.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { CliError, EXIT } from './errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

const fileSchema = z.object({ url: z.string().optional(), token: z.string().optional() });
export type ConfigFile = z.infer<typeof fileSchema>;

export type Source = 'flag' | 'env' | 'config' | 'default';

export interface Connection {
  url: string;
  token: string | null;
  sources: { url: Source; token: Source | null };
}

export function configPath(env: NodeJS.ProcessEnv, explicit?: string): string {
  if (explicit) return explicit;
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || os.homedir(), '.config');
  return path.join(base, 'wsctl', 'config.json');
}

/** The config file's contents; an absent file is empty, a broken one is an error naming it. */
export function readConfigFile(file: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(EXIT.generic, `cannot read ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliError(EXIT.usage, `${file}: not valid JSON; run wsctl login again`);
  }
  const result = fileSchema.safeParse(parsed);
  if (!result.success) throw new CliError(EXIT.usage, `${file}: unexpected contents; run wsctl login again`);
  return result.data;
}

/** Writes the file readable by its owner only: it holds a token. */
export function writeConfigFile(file: string, config: ConfigFile): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // A new file (created 0600) renamed over the old one: writing into an existing, looser file
  // would leave the token readable until a chmod, and a crash midway would leave half a file.
  const tmp = `${file}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  try {
    chmodSync(tmp, 0o600); // the umask could have narrowed it further, never widened: make it exact
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

const trimSlash = (u: string): string => u.replace(/\/+$/, '');

export function validUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new CliError(EXIT.usage, `invalid URL "${raw}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new CliError(EXIT.usage, `invalid URL "${raw}": must be http or https`);
  }
  return trimSlash(u.toString());
}

/** Flags > env > config file > default, per value. */
export function resolveConnection(
  flags: { url?: string; token?: string },
  env: NodeJS.ProcessEnv,
  file: ConfigFile,
): Connection {
  const pick = (flag?: string, fromEnv?: string, fromFile?: string): [string, Source] | null => {
    if (flag) return [flag, 'flag'];
    if (fromEnv) return [fromEnv, 'env'];
    if (fromFile) return [fromFile, 'config'];
    return null;
  };
  const url = pick(flags.url, env.WO_URL, file.url) ?? [DEFAULT_URL, 'default' as const];
  const token = pick(flags.token, env.WO_TOKEN, file.token);
  return {
    url: validUrl(url[0]),
    token: token?.[0] ?? null,
    sources: { url: url[1], token: token?.[1] ?? null },
  };
}
