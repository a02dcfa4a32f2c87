/**
 * The template catalog: `templates/<name>/template.yaml` + files, read at start. A bad template
 * stops the service with the file and field named; TEMPLATES entries join the catalog.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { loadTemplateCatalog, mergeTemplates, TemplateCatalogError } from '../../src/templates/catalog.js';
import { tempDir } from '../support/temp-dirs.js';

const base = {
  ADMIN_TOKEN: 'a'.repeat(32),
  SECRETS_KEY: randomBytes(32).toString('base64'),
  RUNTIME_IMAGE: 'wo-runtime:test',
  DATA_DIR: '/tmp/wo-config-test',
};

/** A catalog folder with one template `t` made of `files` (path → content). */
function catalogWith(files: Record<string, string>): string {
  const root = tempDir('wo-catalog-');
  for (const [rel, content] of Object.entries(files)) {
    const full = path.join(root, 't', rel);
    mkdirSync(path.dirname(full), { recursive: true });
    writeFileSync(full, content);
  }
  return root;
}

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('template catalog', () => {
  it('reads the manifest and every other file, nested paths included', () => {
    const root = catalogWith({
      'template.yaml': [
        'description: demo',
        'runtime: langgraph',
        'config: {model: m, tools: [a]}',
        'limits: {memoryMb: 512, cpus: 0.5, pids: 128}',
        'ec2: {instanceType: t3.medium}',
        'restartPolicy: never',
        'plugins: [local://search, notes]',
      ].join('\n'),
      'prompts/system.md': 'be brief\n',
      'AGENTS.md': '# agents\n',
    });
    const t = loadTemplateCatalog(root).t!;
    expect(t).toMatchObject({
      name: 't',
      description: 'demo',
      runtime: 'langgraph',
      config: { model: 'm', tools: ['a'] },
      limits: { memoryMb: 512, cpus: 0.5, pids: 128 },
      ec2: { instanceType: 't3.medium' },
      restartPolicy: 'never',
      plugins: ['search', 'notes'],
      source: 'catalog',
    });
    expect(t.files.map((f) => [f.path, Buffer.from(f.contentBase64, 'base64').toString()])).toEqual([
      ['AGENTS.md', '# agents\n'],
      ['prompts/system.md', 'be brief\n'],
    ]);
  });

  it.each([
    ['limits:\n  memoryMb: 1\nruntime: x', /t\/template\.yaml: limits\.memoryMb: /],
    ['runtime: x\nlimit: {memoryMb: 512}', /t\/template\.yaml: unknown field limit$/],
    ['runtime: x\nec2: {instancetype: t3.small}', /t\/template\.yaml: unknown field ec2\.instancetype$/],
    ['config: {}', /t\/template\.yaml: runtime: /],
    ['runtime: x\nrestartPolicy: sometimes', /t\/template\.yaml: restartPolicy: /],
    ['runtime: x\nplugins: [a, local://a]', /t\/template\.yaml: plugins: plugins must not repeat a name/],
    ['runtime: x\nplugins: ["Bad Name"]', /t\/template\.yaml: plugins\.0: /],
    ['runtime: [unclosed', /t\/template\.yaml: not valid YAML: /],
    ['runtime: x\nconfig: {ratio: .nan}', /t\/template\.yaml: config: numbers must be finite/],
  ])('a bad manifest names the file and the field: %s', (manifest, message) => {
    const err = errorOf(() => loadTemplateCatalog(catalogWith({ 'template.yaml': manifest })));
    expect(err).toBeInstanceOf(TemplateCatalogError);
    expect(err.message).toMatch(message);
  });

  it('refuses a folder without manifest, a config.yaml, a symlink and a bad folder name', () => {
    expect(errorOf(() => loadTemplateCatalog(catalogWith({ 'x.md': '' }))).message).toMatch(
      /t: no template\.yaml/,
    );
    const withConfig = catalogWith({ 'template.yaml': 'runtime: x', 'config.yaml': 'a: 1' });
    expect(errorOf(() => loadTemplateCatalog(withConfig)).message).toMatch(
      /config\.yaml is written from the template's config/,
    );
    const withLink = catalogWith({ 'template.yaml': 'runtime: x' });
    symlinkSync('/etc/passwd', path.join(withLink, 't', 'passwd'));
    expect(errorOf(() => loadTemplateCatalog(withLink)).message).toMatch(/t\/passwd: only regular files/);
    const badName = catalogWith({ 'template.yaml': 'runtime: x' });
    mkdirSync(path.join(badName, 'Bad_Name'));
    expect(errorOf(() => loadTemplateCatalog(badName)).message).toMatch(/Bad_Name: template folder names/);
  });

  it('refuses a template over the size limit', () => {
    const root = catalogWith({ 'template.yaml': 'runtime: x', 'big.bin': 'x'.repeat(1024 * 1024 + 1) });
    expect(errorOf(() => loadTemplateCatalog(root)).message).toMatch(/at most 200 files and 1048576 bytes/);
  });

  it('skips loose files and dot-folders; a missing folder is empty unless required', () => {
    const root = catalogWith({ 'template.yaml': 'runtime: x' });
    writeFileSync(path.join(root, 'README.md'), '# catalog');
    mkdirSync(path.join(root, '.git'));
    expect(Object.keys(loadTemplateCatalog(root))).toEqual(['t']);
    expect(loadTemplateCatalog('/nonexistent/wo-templates')).toEqual({});
    expect(() => loadTemplateCatalog('/nonexistent/wo-templates', { required: true })).toThrow(
      /TEMPLATES_DIR/,
    );
  });

  it('TEMPLATES entries join the catalog; the same name in both is refused', () => {
    const catalog = loadTemplateCatalog(catalogWith({ 'template.yaml': 'runtime: x' }));
    const merged = mergeTemplates(catalog, { legacy: { config: { a: 1 } } });
    expect(Object.keys(merged).sort()).toEqual(['legacy', 't']);
    expect(merged.legacy).toMatchObject({ name: 'legacy', source: 'env', files: [], plugins: [] });
    expect(() => mergeTemplates(catalog, { t: { config: {} } })).toThrow(
      /TEMPLATES: template "t" is also in the catalog/,
    );
  });
});

describe('configuration: templates', () => {
  it('loads TEMPLATES_DIR merged with TEMPLATES', () => {
    const root = catalogWith({ 'template.yaml': 'runtime: langgraph\nconfig: {k: v}' });
    const c = loadConfig({
      ...base,
      TEMPLATES_DIR: root,
      TEMPLATES: JSON.stringify({ old: { runtime: 'crewai' } }),
    });
    expect(c.templates.t).toMatchObject({ runtime: 'langgraph', config: { k: 'v' } });
    expect(c.templates.old).toMatchObject({ runtime: 'crewai', config: {} });
  });

  it('a bad template stops the start with a ConfigError naming the file and the field', () => {
    const root = catalogWith({ 'template.yaml': 'runtime: x\nlimits: {cpus: 0}' });
    const err = errorOf(() => loadConfig({ ...base, TEMPLATES_DIR: root }));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/invalid configuration:\n {2}\S*t\/template\.yaml: limits\.cpus: /);
  });

  it('the shipped catalog loads by default', () => {
    const c = loadConfig({ ...base, TEMPLATES_DIR: path.resolve(import.meta.dirname, '../../templates') });
    expect(c.templates['research-assistant']).toMatchObject({ source: 'catalog', runtime: 'langgraph' });
    expect(c.templates['research-assistant']!.files.length).toBeGreaterThan(0);
  });
});
