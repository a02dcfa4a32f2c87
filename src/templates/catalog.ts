/**
 * The template catalog: `templates/<name>/template.yaml` plus the files that land in `/configs`,
 * read once at start and merged with the `TEMPLATES` setting. Every problem stops the process with
 * the file and field named: a template that would only fail at a user's create is a latent outage.
 */
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { safeRelativePath } from '../agent/configs.js';
import { TEMPLATE_NAME, templateFileSchema, type TemplateSpec } from './schema.js';

/** One file of a template, delivered in the bootstrap bundle and written under `/configs`. */
export interface TemplateFile {
  path: string;
  contentBase64: string;
}

export interface Template extends TemplateSpec {
  name: string;
  description?: string;
  /** Default plugins (catalog names); stored now, installed by the plugin workflow. */
  plugins: string[];
  files: TemplateFile[];
  /** Where it was defined: a catalog folder, or the `TEMPLATES` setting. */
  source: 'catalog' | 'env';
}

export type TemplateCatalog = Record<string, Template>;

/** The bundle is one JSON answer: a template's files stay small. */
export const TEMPLATE_MAX_FILES = 200;
export const TEMPLATE_MAX_BYTES = 1024 * 1024;

export const TEMPLATE_MANIFEST = 'template.yaml';

export class TemplateCatalogError extends Error {}

/** A path as the operator knows it: relative to the working directory when inside it. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

/** Parses and validates one `template.yaml`; the error names the file and the field. */
export function parseTemplateManifest(file: string, text: string) {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new TemplateCatalogError(
      `${shown(file)}: not valid YAML: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  const parsed = templateFileSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.length ? issue.path.join('.') : '(document)';
    // An unknown key's issue names the object it is in; the keys come separately.
    const keys =
      issue.code === 'unrecognized_keys'
        ? issue.keys.map((k) => [...issue.path, k].join('.')).join(', ')
        : undefined;
    throw new TemplateCatalogError(
      keys ? `${shown(file)}: unknown field ${keys}` : `${shown(file)}: ${field}: ${issue.message}`,
    );
  }
  return parsed.data;
}

/** Every file under a template folder except its manifest, as bundle entries. */
function readTemplateFiles(dir: string): TemplateFile[] {
  const files: TemplateFile[] = [];
  let total = 0;
  const walk = (sub: string) => {
    for (const entry of readdirSync(join(dir, sub)).sort()) {
      const rel = sub ? `${sub}/${entry}` : entry;
      if (rel === TEMPLATE_MANIFEST) continue;
      const full = join(dir, rel);
      const st = lstatSync(full);
      if (st.isDirectory()) {
        walk(rel);
        continue;
      }
      // A symlink could make the catalog deliver a file from anywhere on the server.
      if (!st.isFile())
        throw new TemplateCatalogError(`${shown(full)}: only regular files may be in a template`);
      if (rel === 'config.yaml') {
        throw new TemplateCatalogError(
          `${shown(full)}: config.yaml is written from the template's config; put it under \`config:\` in ${TEMPLATE_MANIFEST}`,
        );
      }
      if (safeRelativePath(rel) !== rel) {
        throw new TemplateCatalogError(`${shown(full)}: this path cannot be written under /configs`);
      }
      total += st.size;
      if (files.length + 1 > TEMPLATE_MAX_FILES || total > TEMPLATE_MAX_BYTES) {
        throw new TemplateCatalogError(
          `${shown(dir)}: a template carries at most ${TEMPLATE_MAX_FILES} files and ${TEMPLATE_MAX_BYTES} bytes`,
        );
      }
      files.push({ path: rel, contentBase64: readFileSync(full).toString('base64') });
    }
  };
  walk('');
  return files;
}

/** Reads one template folder (`<dir>/template.yaml` + files). */
export function loadTemplateDir(dir: string, name: string): Template {
  const manifest = join(dir, TEMPLATE_MANIFEST);
  if (!existsSync(manifest)) throw new TemplateCatalogError(`${shown(dir)}: no ${TEMPLATE_MANIFEST}`);
  const spec = parseTemplateManifest(manifest, readFileSync(manifest, 'utf8'));
  return { ...spec, name, files: readTemplateFiles(dir), source: 'catalog' };
}

/**
 * The catalog in `dir`: one template per sub-folder (dot-folders and loose files such as a README
 * are skipped). A missing folder is an empty catalog unless `required` (an explicit TEMPLATES_DIR).
 */
export function loadTemplateCatalog(dir: string, opts: { required?: boolean } = {}): TemplateCatalog {
  if (!existsSync(dir)) {
    if (opts.required) throw new TemplateCatalogError(`TEMPLATES_DIR: ${shown(dir)} does not exist`);
    return {};
  }
  const catalog: TemplateCatalog = {};
  for (const entry of readdirSync(dir).sort()) {
    if (entry.startsWith('.') || !lstatSync(join(dir, entry)).isDirectory()) continue;
    if (!TEMPLATE_NAME.test(entry)) {
      throw new TemplateCatalogError(
        `${shown(join(dir, entry))}: template folder names are lower-case [a-z0-9-]`,
      );
    }
    catalog[entry] = loadTemplateDir(join(dir, entry), entry);
  }
  return catalog;
}

/**
 * The catalog plus the `TEMPLATES` setting's entries. A name in both is refused: which one a create
 * gets would otherwise depend on a merge rule nobody reads.
 */
export function mergeTemplates(
  catalog: TemplateCatalog,
  fromEnv: Record<string, TemplateSpec>,
): TemplateCatalog {
  const merged: TemplateCatalog = { ...catalog };
  for (const [name, spec] of Object.entries(fromEnv)) {
    if (merged[name]) {
      throw new TemplateCatalogError(
        `TEMPLATES: template "${name}" is also in the catalog (templates/${name}/); rename or remove one`,
      );
    }
    merged[name] = { ...spec, name, plugins: [], files: [], source: 'env' };
  }
  return merged;
}
