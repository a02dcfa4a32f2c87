/** What a plugin's `plugin.yaml` may say, and the limits every plugin (catalog or upload) keeps. */
import { z } from 'zod';

export const PLUGIN_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
export const PLUGIN_MANIFEST = 'plugin.yaml';

/** The gzip archive as uploaded (before base64). */
export const PLUGIN_MAX_ARCHIVE_BYTES = 2 * 1024 * 1024;
/** Every byte of the unpacked tar, headers included: the cap applied while decompressing. */
export const PLUGIN_MAX_UNPACKED_BYTES = 8 * 1024 * 1024;
export const PLUGIN_MAX_FILES = 200;
/** Folder levels a plugin may bring inside its folder (uninstall removes any depth). */
export const PLUGIN_MAX_DEPTH = 6;

export const pluginManifestSchema = z
  .object({
    name: z.string().regex(PLUGIN_NAME, 'plugin names are lower-case [a-z0-9-]'),
    // `version: 1` in YAML is a number; it is still a version.
    version: z.union([z.string(), z.number()]).transform(String).pipe(z.string().min(1).max(64)),
    description: z.string().min(1).max(500).optional(),
  })
  .strict();
export type PluginManifest = z.infer<typeof pluginManifestSchema>;

/** One file of a plugin, relative to its folder (`/configs/plugins/<name>/<path>`). */
export interface PluginFile {
  path: string;
  contentBase64: string;
}

/** A validated plugin: its manifest, its files (plugin.yaml included) and the archive's sha256. */
export interface PluginPackage extends PluginManifest {
  files: PluginFile[];
  sha256: string;
}
