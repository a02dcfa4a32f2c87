import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, isAbsolute, sep } from 'node:path';
import type { Bundle, SavedBundle } from './bundle.js';

/**
 * Where agents before the state dir kept their bundle, inside the configs dir (and so inside the
 * files API's reach). Read once for a reboot of such a generation, then removed; template files
 * may not write here.
 */
export const LEGACY_STATE_DIR = '.wo';

export const sha256Hex = (s: string): string => createHash('sha256').update(s).digest('hex');

/**
 * A template path is relative, has no `..` segment, no NUL, and does not target the agent's own
 * state dir. Returns the normalised relative path, or null when refused.
 */
export function safeRelativePath(p: string): string | null {
  if (p === '' || p.includes('\0') || p.includes('\\') || isAbsolute(p)) return null;
  const segments = p.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.length === 0 || segments.includes('..')) return null;
  if (segments[0] === LEGACY_STATE_DIR) return null;
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
  stateDir: string,
  bundle: Bundle,
  bootstrapTokenSha256: string,
): Promise<MaterializeResult> {
  await ensureStateDir(stateDir);
  await mkdir(configsDir, { recursive: true });
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
  await writeAtomic(join(stateDir, 'bundle.json'), JSON.stringify(saved, null, 2), 0o600);
  return result;
}

const SECRET_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** dotenv-style value: bare when harmless, else double-quoted with the usual escapes. */
function envValue(v: string): string {
  if (/^[A-Za-z0-9_./:@%+,=-]*$/.test(v)) return v;
  const escaped = v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
  return `"${escaped}"`;
}

/** Writes `secrets.env` (0600) in the state dir. Returns the keys written and refused (bad names). */
export async function writeSecrets(
  stateDir: string,
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
  await ensureStateDir(stateDir);
  await writeAtomic(join(stateDir, 'secrets.env'), lines.map((l) => `${l}\n`).join(''), 0o600);
  return { keys, refused };
}

/**
 * How the runtime reaches its peers: the platform's MCP endpoint, in the `mcpServers` form MCP
 * clients read (Streamable HTTP, the workspace token as bearer). In the state dir, 0600: it holds
 * the token, so it never goes where the files API serves.
 */
export async function writeMcpConfig(stateDir: string, url: string, workspaceToken: string): Promise<string> {
  const config = {
    mcpServers: {
      'workspace-orchestrator': { type: 'http', url, headers: { Authorization: `Bearer ${workspaceToken}` } },
    },
  };
  await ensureStateDir(stateDir);
  const path = join(stateDir, 'mcp.json');
  await writeAtomic(path, `${JSON.stringify(config, null, 2)}\n`, 0o600);
  return path;
}

/** The state dir, root-only whatever an image or an earlier boot left it as. */
async function ensureStateDir(stateDir: string): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await chmod(stateDir, 0o700);
}

async function readSaved(file: string): Promise<SavedBundle | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
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

/**
 * The bundle saved by an earlier boot, or null when absent or unreadable (then: first boot). Falls
 * back to the configs dir's legacy `.wo/bundle.json`, where an older agent of this resource kept it.
 */
export async function loadSavedBundle(stateDir: string, configsDir: string): Promise<SavedBundle | null> {
  return (
    (await readSaved(join(stateDir, 'bundle.json'))) ??
    (await readSaved(join(configsDir, LEGACY_STATE_DIR, 'bundle.json')))
  );
}

/**
 * Removes the legacy state dir from the configs volume (once the bundle is saved in the state dir):
 * it would otherwise keep a token and secrets where the files API and later generations see them.
 * A symlink planted there is removed itself, never followed.
 */
export async function removeLegacyState(configsDir: string): Promise<void> {
  await rm(join(configsDir, LEGACY_STATE_DIR), { recursive: true, force: true });
}

/** sha256 (hex) of the secrets as sorted `KEY=value` lines: what the agent reports having received. */
export function secretsHash(secrets: Record<string, string>): string {
  const lines = Object.keys(secrets)
    .sort()
    .map((k) => `${k}=${secrets[k]}\n`);
  return sha256Hex(lines.join(''));
}
