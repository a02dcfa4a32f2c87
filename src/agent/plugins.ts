/**
 * Plugins in the reference agent: the bundle's plugins are written to `<configs>/plugins/<name>/`
 * at boot (the folder is rebuilt from the bundle, so a plugin removed while stopped is gone), and
 * the folder is read again for every heartbeat, so a plugin the platform delivers or removes live
 * is reported without a restart. A reload request beats at once instead of at the next interval.
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { safeRelativePath } from './configs.js';

/** The file the platform writes last into a delivered plugin (src/plugins/delivery.ts). */
export const INSTALL_ID_FILE = '.wo-install-id';
const NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

export interface ReportedPlugin {
  name: string;
  installId?: string;
}

interface BundlePlugin {
  name: string;
  installId: string;
  files: Array<{ path: string; contentBase64: string }>;
}

function asBundlePlugin(raw: unknown): BundlePlugin | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const p = raw as Record<string, unknown>;
  if (typeof p.name !== 'string' || !NAME.test(p.name) || !Array.isArray(p.files)) return null;
  const files: BundlePlugin['files'] = [];
  for (const f of p.files as unknown[]) {
    const e = f as Record<string, unknown> | null;
    if (typeof e?.path !== 'string' || typeof e.contentBase64 !== 'string') return null;
    files.push({ path: e.path, contentBase64: e.contentBase64 });
  }
  return { name: p.name, installId: typeof p.installId === 'string' ? p.installId : '', files };
}

/** Rebuilds `<configs>/plugins` from the bundle; answers the names written and refused. */
export async function materializePlugins(
  configsDir: string,
  plugins: unknown[],
): Promise<{ installed: string[]; refused: string[] }> {
  const root = join(configsDir, 'plugins');
  // rm does not follow a symlink planted at the folder: it removes the link itself.
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  const installed: string[] = [];
  const refused: string[] = [];
  for (const raw of plugins) {
    const p = asBundlePlugin(raw);
    if (!p) {
      refused.push(String((raw as { name?: unknown } | null)?.name ?? '?'));
      continue;
    }
    const dir = join(root, p.name);
    const paths = p.files.map((f) => safeRelativePath(f.path));
    if (paths.some((x) => x === null)) {
      refused.push(p.name);
      continue;
    }
    for (let i = 0; i < p.files.length; i++) {
      const target = join(dir, paths[i]!);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, Buffer.from(p.files[i]!.contentBase64, 'base64'));
    }
    await writeFile(join(dir, INSTALL_ID_FILE), p.installId);
    installed.push(p.name);
  }
  return { installed, refused };
}

/** The plugin folders present now, with the install id each carries (when complete). */
export async function scanPlugins(configsDir: string): Promise<ReportedPlugin[]> {
  const root = join(configsDir, 'plugins');
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: ReportedPlugin[] = [];
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (!e.isDirectory() || !NAME.test(e.name)) continue;
    let installId: string | undefined;
    try {
      installId = (await readFile(join(root, e.name, INSTALL_ID_FILE), 'utf8')).trim().slice(0, 64);
    } catch {
      installId = undefined;
    }
    out.push(installId ? { name: e.name, installId } : { name: e.name });
    if (out.length >= 200) break;
  }
  return out;
}
