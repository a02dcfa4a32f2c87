/**
 * `template lint`: a user template's install.sh (VMs) and start.sh (containers) must forward the
 * same environment variables; what counts as "forwarded" is a read of the environment, not a
 * local, a comment, a quoted literal or a here-document with a quoted delimiter.
 */
import { cpSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { templateProgram } from '../../src/cli/template.js';
import { lintTemplateDir } from '../../src/templates/lint.js';
import { forwardedEnv } from '../../src/templates/script-env.js';
import { tempDir } from '../support/temp-dirs.js';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/templates');

/** Runs `template lint …` in-process: its exit code and the lines it printed. */
async function lint(...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const before = process.exitCode;
  process.exitCode = 0;
  try {
    await templateProgram(
      (l) => out.push(l),
      (l) => err.push(l),
    )
      .exitOverride()
      .parseAsync(['lint', ...args], { from: 'user' });
    return { code: Number(process.exitCode ?? 0), out, err };
  } finally {
    process.exitCode = before;
  }
}

describe('forwardedEnv', () => {
  it('reads $NAME, ${NAME}, ${NAME:-x}, ${#NAME}, defaults and `export NAME`', () => {
    const script = [
      'echo "$A ${B} ${C:-fallback} ${#D}"',
      'echo ${E:-$F} ${G:+"$H"}',
      'export I',
      'cmd --key=$J',
    ].join('\n');
    expect(forwardedEnv(script)).toEqual(['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J']);
  });

  it('ignores comments, single quotes, escaped dollars and quoted here-documents', () => {
    const script = [
      '# uses $IN_COMMENT',
      'echo \'$SINGLE\' "\\$ESCAPED" # and $TRAILING',
      "cat <<'EOF'",
      '$QUOTED_HEREDOC',
      'EOF',
      'cat <<"X"',
      '${ALSO_QUOTED}',
      'X',
      'cat <<-EOF',
      '\t$OPEN_HEREDOC \\$NOT_THIS',
      '\tEOF',
      'echo $AFTER',
    ].join('\n');
    expect(forwardedEnv(script)).toEqual(['AFTER', 'OPEN_HEREDOC']);
  });

  it('leaves out what the script sets itself, unless the assignment reads the old value', () => {
    const script = [
      'DIR=/opt/app; cd "$DIR"',
      'PORT="${PORT:-8080}"',
      'export MODE=prod; echo $MODE',
      'local tmp; tmp=$(mktemp); echo $tmp',
      'read -r LINE; echo $LINE',
      'for k in a b; do echo $k; done',
      'PREFIX=1 run --flag $PREFIX_VALUE',
      'if X=1 true; then echo $X; fi',
    ].join('\n');
    expect(forwardedEnv(script)).toEqual(['PORT', 'PREFIX_VALUE']);
  });

  it('follows command substitutions, backticks and arithmetic; skips special and indirect parameters', () => {
    const script = [
      'V=$(printf %s "$IN_SUBST")',
      'W=`echo $IN_BACKTICKS`',
      'N=$(( $COUNT + 1 ))',
      'echo "$(cat "$NESTED")" $1 $@ $? $$ ${!indirect}',
    ].join('\n');
    expect(forwardedEnv(script)).toEqual(['COUNT', 'IN_BACKTICKS', 'IN_SUBST', 'NESTED']);
  });

  it('follows the forwarding loop (`for k in A B; … ${!k}`) and `printenv NAME`', () => {
    const script = [
      'for k in OPENAI_API_KEY ANTHROPIC_API_KEY; do',
      '  if [ -n "${!k:-}" ]; then echo "$k=${!k}" >> .env; fi',
      'done',
      'for f in a.txt b.txt; do cat "$f"; done',
      'token=$(printenv HF_TOKEN)',
    ].join('\n');
    expect(forwardedEnv(script)).toEqual(['ANTHROPIC_API_KEY', 'HF_TOKEN', 'OPENAI_API_KEY']);
  });

  it('keeps substitution words apart from the word around them', () => {
    const script = ['export X=$(cat "$FILE")', 'A=`printenv B`', 'echo "$X $A"'].join('\n');
    expect(forwardedEnv(script)).toEqual(['B', 'FILE']);
  });

  it('never throws on any input and returns sorted, distinct names', () => {
    const shellish = fc.string({
      unit: fc.constantFrom(...'$ {}()`\'"#<-\n\t;|&!=:AB_x1'.split('')),
      maxLength: 200,
    });
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), shellish), (script) => {
        const names = forwardedEnv(script);
        expect([...new Set(names)].sort()).toEqual(names);
        for (const n of names) expect(n).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
      }),
      { numRuns: 2000 },
    );
  });

  it("leaves out the shell's own variables and the ignored ones", () => {
    expect(forwardedEnv('cd $HOME; echo $PATH $PWD $CLOUD_INIT_ONLY $KEY', ['CLOUD_INIT_ONLY'])).toEqual([
      'KEY',
    ]);
  });
});

describe('template lint', () => {
  it('passes a template whose two scripts forward the same variables', async () => {
    const res = await lint(path.join(FIXTURES, 'parity-ok'));
    expect(res.err).toEqual([]);
    expect(res.code).toBe(0);
    expect(res.out).toEqual([`ok: ${path.join(FIXTURES, 'parity-ok')}`]);
  });

  it('fails with one line naming the variables when they differ', async () => {
    const res = await lint(path.join(FIXTURES, 'parity-drift'));
    expect(res.code).toBe(1);
    expect(res.err).toHaveLength(1);
    expect(res.err[0]).toMatch(/install\.sh and .*start\.sh forward different environment variables/);
    expect(res.err[0]).toMatch(
      /only \S*install\.sh forwards GROQ_API_KEY; only \S*start\.sh forwards GEMINI_API_KEY$/,
    );
  });

  it('compares two scripts named directly, and --ignore leaves a variable out', async () => {
    const install = path.join(FIXTURES, 'parity-drift', 'install.sh');
    const start = path.join(FIXTURES, 'parity-ok', 'start.sh');
    const drift = await lint(install, start);
    expect(drift.code).toBe(1);
    expect(drift.err).toEqual([
      `${install} and ${start} forward different environment variables: only ${install} forwards GROQ_API_KEY`,
    ]);
    const ignored = await lint('--ignore', 'GROQ_API_KEY', install, start);
    expect(ignored.code).toBe(0);
  });

  it('reports an invalid template.yaml with the file and field, beside script drift', () => {
    const dir = tempDir('wo-lint-');
    cpSync(path.join(FIXTURES, 'parity-drift'), dir, { recursive: true });
    writeFileSync(path.join(dir, 'template.yaml'), 'runtime: claude-code\nlimits:\n  memoryMb: 1\n');
    const problems = lintTemplateDir(dir);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/template\.yaml: limits\.memoryMb: /);
    expect(problems[1]).toMatch(/GROQ_API_KEY/);
  });

  it('refuses a folder that is not a template, and passes one with a single script', async () => {
    const empty = tempDir('wo-lint-');
    expect((await lint(empty)).code).toBe(1);
    writeFileSync(path.join(empty, 'start.sh'), 'exec agent --key "$OPENAI_API_KEY"\n');
    expect(lintTemplateDir(empty)).toEqual([]);
  });

  it('passes every template shipped in the catalog', () => {
    const catalog = path.resolve(import.meta.dirname, '../../templates');
    const dirs = readdirSync(catalog, { withFileTypes: true }).filter((e) => e.isDirectory());
    expect(dirs.length).toBeGreaterThan(0);
    for (const d of dirs) expect(lintTemplateDir(path.join(catalog, d.name)), d.name).toEqual([]);
  });
});
