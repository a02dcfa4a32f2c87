/**
 * `template lint`: checks a template folder before it goes into the catalog. Its `template.yaml`
 * must parse (the check the service makes at start), and a template that still carries the seed's
 * two boot scripts (`install.sh` for VMs, `start.sh` for containers) must forward the same
 * environment variables from both, or one backend silently boots without a key.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { loadTemplateDir, TEMPLATE_MANIFEST, TemplateCatalogError } from './catalog.js';
import { compareForwarded, forwardedEnv } from './script-env.js';

export const VM_SCRIPT = 'install.sh';
export const CONTAINER_SCRIPT = 'start.sh';

export interface LintOptions {
  /** Variables left out of the comparison (beyond the shell's own). */
  ignore?: string[];
}

/**
 * One line naming the variables when two scripts forward different sets, else null. The line is
 * what CI shows: it must say which names to add where.
 */
export function lintScriptPair(
  vmScript: string,
  containerScript: string,
  opts: LintOptions = {},
): string | null {
  const vm = forwardedEnv(readFileSync(vmScript, 'utf8'), opts.ignore);
  const container = forwardedEnv(readFileSync(containerScript, 'utf8'), opts.ignore);
  const result = compareForwarded(vm, container);
  if (result.ok) return null;
  const parts = [
    result.onlyInFirst.length ? `only ${vmScript} forwards ${result.onlyInFirst.join(', ')}` : '',
    result.onlyInSecond.length ? `only ${containerScript} forwards ${result.onlyInSecond.join(', ')}` : '',
  ].filter(Boolean);
  return `${vmScript} and ${containerScript} forward different environment variables: ${parts.join('; ')}`;
}

/** The problems of one template folder, one line each (empty: it passes). */
export function lintTemplateDir(dir: string, opts: LintOptions = {}): string[] {
  const problems: string[] = [];
  const has = (f: string) => existsSync(join(dir, f));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [`${dir}: not a directory`];
  if (!has(TEMPLATE_MANIFEST) && !has(VM_SCRIPT) && !has(CONTAINER_SCRIPT)) {
    return [`${dir}: no ${TEMPLATE_MANIFEST}, ${VM_SCRIPT} or ${CONTAINER_SCRIPT}: not a template`];
  }
  if (has(TEMPLATE_MANIFEST)) {
    try {
      loadTemplateDir(dir, basename(dir));
    } catch (err) {
      if (!(err instanceof TemplateCatalogError)) throw err;
      problems.push(err.message);
    }
  }
  if (has(VM_SCRIPT) && has(CONTAINER_SCRIPT)) {
    const drift = lintScriptPair(join(dir, VM_SCRIPT), join(dir, CONTAINER_SCRIPT), opts);
    if (drift) problems.push(drift);
  }
  return problems;
}
