/**
 * Validation of an uploaded plugin (`.tar.gz`), whole, before anything reaches a workspace. The
 * gzip layer is inflated under a byte cap (a gzip bomb stops at the cap, never fills memory), and
 * every tar entry must be a regular file or folder whose path stays inside the plugin folder: no
 * `..`, no absolute path, no link or device that the agent or a later write could follow out.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { NAME_MAX_BYTES, isUploadTemp } from '../backends/paths.js';
import { INSTALL_ID_FILE } from './delivery.js';
import { parse as parseYaml } from 'yaml';
import {
  PLUGIN_MANIFEST,
  PLUGIN_MAX_ARCHIVE_BYTES,
  PLUGIN_MAX_DEPTH,
  PLUGIN_MAX_FILES,
  PLUGIN_MAX_UNPACKED_BYTES,
  pluginManifestSchema,
  type PluginFile,
  type PluginManifest,
  type PluginPackage,
} from './schema.js';

/** A refusal with the request field it is about (the API answers 400 with it). */
export class PluginRejected extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'PluginRejected';
  }
}

const ARCHIVE_FIELD = 'source.tarGzBase64';

/**
 * A path inside the plugin folder, normalised (`./a//b` → `a/b`), or a refusal. Lexical only, and
 * enough: links are refused as entries, so nothing on disk can redirect a checked path.
 */
export function pluginEntryPath(name: string): string | null {
  if (name.includes('\0') || name.includes('\\')) return null;
  if (name.startsWith('/')) return null;
  // Windows drive letters mean nothing in a tar, but refusing them costs nothing.
  if (/^[A-Za-z]:/.test(name)) return null;
  const segments = name.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.some((s) => s === '..')) return null;
  return segments.join('/');
}

/** Inflates within the cap; the cap is checked by zlib as it writes, not after. */
function gunzipCapped(archive: Buffer): Buffer {
  try {
    return gunzipSync(archive, { maxOutputLength: PLUGIN_MAX_UNPACKED_BYTES });
  } catch (err) {
    if (err instanceof RangeError || (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new PluginRejected(
        ARCHIVE_FIELD,
        `${ARCHIVE_FIELD}: the archive unpacks to more than ${PLUGIN_MAX_UNPACKED_BYTES} bytes`,
      );
    }
    throw new PluginRejected(ARCHIVE_FIELD, `${ARCHIVE_FIELD}: not a gzip archive`);
  }
}

async function readEntries(tarBytes: Buffer): Promise<PluginFile[]> {
  const files = new Map<string, Buffer>();
  const extract = tar.extract();
  const done = (async () => {
    for await (const entry of extract) {
      const { header } = entry;
      const shown = JSON.stringify(header.name);
      const rel = pluginEntryPath(header.name);
      if (rel === null) {
        entry.resume();
        throw new PluginRejected(ARCHIVE_FIELD, `${ARCHIVE_FIELD}: entry ${shown} escapes the plugin folder`);
      }
      if (header.type !== 'file' && header.type !== 'directory') {
        entry.resume();
        throw new PluginRejected(
          ARCHIVE_FIELD,
          `${ARCHIVE_FIELD}: entry ${shown} is a ${header.type ?? 'special entry'}; only files and folders are allowed`,
        );
      }
      const depth = rel === '' ? 0 : rel.split('/').length;
      if (depth > PLUGIN_MAX_DEPTH + (header.type === 'file' ? 1 : 0)) {
        entry.resume();
        throw new PluginRejected(
          ARCHIVE_FIELD,
          `${ARCHIVE_FIELD}: entry ${shown} is nested more than ${PLUGIN_MAX_DEPTH} folders deep`,
        );
      }
      // What the file system or the delivery would refuse only once the plugin lands, at every
      // later boot too (a stopped workspace's pending plugin kept it from starting): refused now.
      const segments = rel === '' ? [] : rel.split('/');
      if (rel === INSTALL_ID_FILE || rel.endsWith(`/${INSTALL_ID_FILE}`) || segments.some(isUploadTemp)) {
        entry.resume();
        throw new PluginRejected(ARCHIVE_FIELD, `${ARCHIVE_FIELD}: entry ${shown} is a reserved name`);
      }
      if (segments.some((seg) => Buffer.byteLength(seg) > NAME_MAX_BYTES)) {
        entry.resume();
        throw new PluginRejected(
          ARCHIVE_FIELD,
          `${ARCHIVE_FIELD}: entry ${JSON.stringify(header.name.slice(0, 40))}… has a name over ${NAME_MAX_BYTES} bytes`,
        );
      }
      if (header.type === 'directory' || rel === '') {
        entry.resume();
        if (header.type === 'file') {
          throw new PluginRejected(ARCHIVE_FIELD, `${ARCHIVE_FIELD}: entry ${shown} names the plugin folder`);
        }
        continue;
      }
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      if (files.has(rel)) {
        throw new PluginRejected(ARCHIVE_FIELD, `${ARCHIVE_FIELD}: entry ${shown} appears twice`);
      }
      files.set(rel, Buffer.concat(chunks));
      if (files.size > PLUGIN_MAX_FILES) {
        throw new PluginRejected(ARCHIVE_FIELD, `${ARCHIVE_FIELD}: more than ${PLUGIN_MAX_FILES} files`);
      }
    }
  })();
  Readable.from([tarBytes]).pipe(extract);
  try {
    await done;
  } catch (err) {
    extract.destroy();
    if (err instanceof PluginRejected) throw err;
    throw new PluginRejected(ARCHIVE_FIELD, `${ARCHIVE_FIELD}: not a valid tar archive`);
  }
  // A file and a folder of the same name cannot both land.
  for (const path of files.keys()) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (files.has(parent)) {
        throw new PluginRejected(
          ARCHIVE_FIELD,
          `${ARCHIVE_FIELD}: ${JSON.stringify(parent)} is both a file and a folder`,
        );
      }
    }
  }
  return [...files.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([path, content]) => ({ path, contentBase64: content.toString('base64') }));
}

/** Parses a plugin.yaml; `field` is what the 400 names. */
export function parsePluginManifest(text: string, field: string): PluginManifest {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new PluginRejected(
      field,
      `${field}: ${PLUGIN_MANIFEST} is not valid YAML: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  const parsed = pluginManifestSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where =
      issue.code === 'unrecognized_keys'
        ? `unknown field ${issue.keys.join(', ')}`
        : `${issue.path.length ? issue.path.join('.') : '(document)'}: ${issue.message}`;
    throw new PluginRejected(field, `${field}: ${PLUGIN_MANIFEST}: ${where}`);
  }
  return parsed.data;
}

/** The manifest of a set of files (plugin.yaml at the top), validated. */
export function manifestOf(files: PluginFile[], field: string): PluginManifest {
  const manifest = files.find((f) => f.path === PLUGIN_MANIFEST);
  if (!manifest) throw new PluginRejected(field, `${field}: no ${PLUGIN_MANIFEST} at the top of the plugin`);
  return parsePluginManifest(Buffer.from(manifest.contentBase64, 'base64').toString('utf8'), field);
}

/**
 * Validates an uploaded plugin whole: size, optional sha256, gzip (capped), every tar entry, the
 * manifest. Nothing is written anywhere; a refusal names the field.
 */
export async function validatePluginArchive(tarGzBase64: string, sha256?: string): Promise<PluginPackage> {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(tarGzBase64)) {
    throw new PluginRejected(ARCHIVE_FIELD, `${ARCHIVE_FIELD}: not base64`);
  }
  // The decoded size, known before decoding: no large buffer for an oversized upload.
  if (Math.floor((tarGzBase64.length * 3) / 4) > PLUGIN_MAX_ARCHIVE_BYTES + 2) {
    throw new PluginRejected(
      ARCHIVE_FIELD,
      `${ARCHIVE_FIELD}: the archive is over ${PLUGIN_MAX_ARCHIVE_BYTES} bytes`,
    );
  }
  const archive = Buffer.from(tarGzBase64, 'base64');
  if (archive.length > PLUGIN_MAX_ARCHIVE_BYTES) {
    throw new PluginRejected(
      ARCHIVE_FIELD,
      `${ARCHIVE_FIELD}: the archive is over ${PLUGIN_MAX_ARCHIVE_BYTES} bytes`,
    );
  }
  const digest = createHash('sha256').update(archive).digest('hex');
  if (sha256 !== undefined && sha256.toLowerCase() !== digest) {
    throw new PluginRejected('sha256', `sha256: the archive's sha256 is ${digest}, not ${sha256}`);
  }
  const files = await readEntries(gunzipCapped(archive));
  const manifest = manifestOf(files, ARCHIVE_FIELD);
  return { ...manifest, files, sha256: digest };
}
