/**
 * `template lint <dir...>` (or `template lint <install.sh> <start.sh>`): fails with one line per
 * problem when a template's manifest is invalid or its two boot scripts forward different
 * environment variables. `npm run template -- lint templates/<name>`.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { lintScriptPair, lintTemplateDir } from '../templates/lint.js';

const isFile = (p: string) => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};

export function templateProgram(out: (line: string) => void, err: (line: string) => void): Command {
  const program = new Command('template').description('work with workspace templates');
  program
    .command('lint')
    .description(
      'check template folders: template.yaml is valid, and install.sh (VMs) and start.sh (containers) forward the same environment variables',
    )
    .argument('<paths...>', 'template folders, or exactly two scripts: <install.sh> <start.sh>')
    .option('--ignore <names>', 'comma list of variables left out of the comparison', '')
    .option('--json', 'print {ok, problems} as JSON')
    .action((paths: string[], opts: { ignore: string }, cmd: Command) => {
      // `--json` may also be the caller's global option (wsctl template lint --json).
      const json = cmd.optsWithGlobals<{ json?: boolean }>().json === true;
      const ignore = opts.ignore
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const problems =
        paths.length === 2 && paths.every(isFile)
          ? [lintScriptPair(paths[0]!, paths[1]!, { ignore })].filter((p): p is string => p !== null)
          : paths.flatMap((dir) => lintTemplateDir(dir, { ignore }));
      if (problems.length) process.exitCode = 1;
      if (json) return out(JSON.stringify({ ok: problems.length === 0, paths, problems }));
      for (const p of problems) err(p);
      if (!problems.length) out(`ok: ${paths.join(', ')}`);
    });
  return program;
}

// Run only as a program, not when a test imports templateProgram.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  templateProgram(
    (l) => console.log(l),
    (l) => console.error(l),
  ).parse();
}
