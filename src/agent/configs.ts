import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, realpath, rename, writeFile } from 'node:fs/promises';
import { dirname, join, relative, isAbsolute, sep } from 'node:path';
import type { Bundle, SavedBundle } from './bundle.js';

/** Agent-private state inside the configs dir; template files may not write here. */
export const STATE_DIR = '.wo';

export const sha256Hex = (s: string): string => createHash('sha256').update(s).digest('hex');

/**
 * A template path is relative, has no `..` segment, no NUL, and does not target the agent's own
 * state dir. Returns the normalised relative path, or null when refused.
 */
export function safeRelativePath(p: string): string | null {
  if (p === '' || p.includes('\0') || p.includes('\\') || isAbsolute(p)) return null;
  const segments = p.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.length === 0 || segments.includes('..')) return null;
  if (segments[0] === STATE_DIR) return null;
  return segments.join('/');
}

/**
 * Write-then-rename so a crash mid-write never leaves a truncated bundle or config behind; the
 * temp file is created with the final mode, so secrets are never readable even briefly.
 */
async function writeAtomic(path: string, data: string | Buffer, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

/** True when `child` resolves inside `root` (guards against a symlink planted in the volume). */
async function staysInside(root: string, child: string): Promise<boolean> {
  const rel = relative(await realpath(root), await realpath(child));
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

export interface MaterializeResult {
  written: string[];
  refused: string[];
}

/**
 * Writes template files, config.yaml and the saved bundle. Files go first so config.yaml (the
 * contract: equals configYaml) wins over a template file of the same name.
 */
export async function materializeConfigs(
  configsDir: string,
  bundle: Bundle,
  bootstrapTokenSha256: string,
): Promise<MaterializeResult> {
  await mkdir(join(configsDir, STATE_DIR), { recursive: true, mode: 0o700 });
  const result: MaterializeResult = { written: [], refused: [] };

  for (const file of bundle.files) {
    const rel = safeRelativePath(file.path);
    if (rel === null || rel === 'config.yaml') {
      result.refused.push(file.path);
      continue;
    }
    const target = join(configsDir, rel);
    await mkdir(dirname(target), { recursive: true });
    if (!(await staysInside(configsDir, dirname(target)))) {
      result.refused.push(file.path);
      continue;
    }
    await writeAtomic(target, Buffer.from(file.contentBase64, 'base64'), 0o644);
    result.written.push(rel);
  }

  await writeAtomic(join(configsDir, 'config.yaml'), bundle.configYaml, 0o644);
  const saved: SavedBundle = { ...bundle, bootstrapTokenSha256 };
  await writeAtomic(join(configsDir, STATE_DIR, 'bundle.json'), JSON.stringify(saved, null, 2), 0o600);
  return result;
}

const SECRET_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** dotenv-style value: bare when harmless, else double-quoted with the usual escapes. */
function envValue(v: string): string {
  if (/^[A-Za-z0-9_./:@%+,=-]*$/.test(v)) return v;
  const escaped = v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
  return `"${escaped}"`;
}

/** Writes `.wo/secrets.env` (0600). Returns the keys written and the keys refused (bad names). */
export async function writeSecrets(
  configsDir: string,
  secrets: Record<string, string>,
): Promise<{ keys: string[]; refused: string[] }> {
  const keys: string[] = [];
  const refused: string[] = [];
  const lines: string[] = [];
  for (const [key, value] of Object.entries(secrets)) {
    if (!SECRET_KEY.test(key)) {
      refused.push(key);
      continue;
    }
    keys.push(key);
    lines.push(`${key}=${envValue(value)}`);
  }
  await mkdir(join(configsDir, STATE_DIR), { recursive: true, mode: 0o700 });
  await writeAtomic(join(configsDir, STATE_DIR, 'secrets.env'), lines.map((l) => `${l}\n`).join(''), 0o600);
  return { keys, refused };
}

/** The bundle saved by an earlier boot, or null when absent or unreadable (then: first boot). */
export async function loadSavedBundle(configsDir: string): Promise<SavedBundle | null> {
  let text: string;
  try {
    text = await readFile(join(configsDir, STATE_DIR, 'bundle.json'), 'utf8');
  } catch {
    return null;
  }
  try {
    const raw = JSON.parse(text) as Partial<SavedBundle>;
    if (typeof raw.bootstrapTokenSha256 !== 'string' || typeof raw.workspaceToken !== 'string') return null;
    return raw as SavedBundle;
  } catch {
    return null;
  }
}
