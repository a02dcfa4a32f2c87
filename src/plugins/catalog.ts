/**
 * The plugin catalog: `plugins/<name>/plugin.yaml` plus its files, read once at start. A problem
 * stops the process with the file named, like the template catalog: a plugin that would only fail
 * at a user's install is a latent outage.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { manifestOf, pluginEntryPath, PluginRejected } from './archive.js';
import {
  PLUGIN_MAX_DEPTH,
  PLUGIN_MAX_FILES,
  PLUGIN_MAX_UNPACKED_BYTES,
  PLUGIN_NAME,
  type PluginFile,
  type PluginPackage,
} from './schema.js';

export type PluginCatalog = Record<string, PluginPackage>;

export class PluginCatalogError extends Error {}

/** A stable digest of a file set: what a catalog plugin reports as its sha256. */
export function filesDigest(files: PluginFile[]): string {
  const h = createHash('sha256');
  for (const f of files) h.update(`${f.path}\0${f.contentBase64}\0`);
  return h.digest('hex');
}

function readPluginFiles(dir: string): PluginFile[] {
  const files: PluginFile[] = [];
  let total = 0;
  const walk = (sub: string, depth: number) => {
    for (const entry of readdirSync(join(dir, sub)).sort()) {
      const rel = sub ? `${sub}/${entry}` : entry;
      const full = join(dir, rel);
      const st = lstatSync(full);
      if (st.isDirectory()) {
        if (depth >= PLUGIN_MAX_DEPTH) throw new PluginCatalogError(`${full}: nested too deep`);
        walk(rel, depth + 1);
        continue;
      }
      // A symlink could make the catalog deliver a file from anywhere on the server.
      if (!st.isFile()) throw new PluginCatalogError(`${full}: only regular files may be in a plugin`);
      if (pluginEntryPath(rel) !== rel)
        throw new PluginCatalogError(`${full}: this path cannot be delivered`);
      total += st.size;
      if (files.length + 1 > PLUGIN_MAX_FILES || total > PLUGIN_MAX_UNPACKED_BYTES) {
        throw new PluginCatalogError(
          `${dir}: a plugin carries at most ${PLUGIN_MAX_FILES} files and ${PLUGIN_MAX_UNPACKED_BYTES} bytes`,
        );
      }
      files.push({ path: rel, contentBase64: readFileSync(full).toString('base64') });
    }
  };
  walk('', 0);
  return files;
}

export function loadPluginDir(dir: string, name: string): PluginPackage {
  const files = readPluginFiles(dir);
  try {
    const manifest = manifestOf(files, join(dir, 'plugin.yaml'));
    if (manifest.name !== name) {
      throw new PluginCatalogError(
        `${join(dir, 'plugin.yaml')}: name is "${manifest.name}", the folder is "${name}"`,
      );
    }
    return { ...manifest, files, sha256: filesDigest(files) };
  } catch (err) {
    if (err instanceof PluginRejected) throw new PluginCatalogError(err.message);
    throw err;
  }
}

/** One plugin per sub-folder of `dir`; a missing folder is an empty catalog unless `required`. */
export function loadPluginCatalog(dir: string, opts: { required?: boolean } = {}): PluginCatalog {
  if (!existsSync(dir)) {
    if (opts.required) throw new PluginCatalogError(`PLUGINS_DIR: ${dir} does not exist`);
    return {};
  }
  const catalog: PluginCatalog = {};
  for (const entry of readdirSync(dir).sort()) {
    if (entry.startsWith('.') || !lstatSync(join(dir, entry)).isDirectory()) continue;
    if (!PLUGIN_NAME.test(entry)) {
      throw new PluginCatalogError(`${join(dir, entry)}: plugin folder names are lower-case [a-z0-9-]`);
    }
    catalog[entry] = loadPluginDir(join(dir, entry), entry);
  }
  return catalog;
}
