/**
 * Which environment variables a boot script forwards: the names it reads from its environment
 * (`$NAME`, `${NAME:-x}`, `export NAME`), minus the ones it sets itself and the shell's own. Used by
 * `template lint` to hold a template's `install.sh` (VMs) and `start.sh` (containers) to the same
 * set, which is what the seed's check-template-parity.sh meant to enforce.
 *
 * A small POSIX-shell scanner, not a shell: it knows quoting (nothing expands in '...'), comments,
 * here-documents (a quoted delimiter expands nothing), command substitution and parameter
 * expansion, which is what decides whether a `$NAME` is a read, plus the two indirect forms boot
 * scripts use: `printenv NAME` and `${!k}` over a `for k in NAME…` list. `eval` is not followed.
 */

/** Set by the shell or the system, never "forwarded" by a template. */
export const SHELL_VARIABLES: ReadonlySet<string> = new Set([
  'BASH',
  'BASH_REMATCH',
  'BASH_SOURCE',
  'BASH_VERSION',
  'EUID',
  'FUNCNAME',
  'GROUPS',
  'HOME',
  'HOSTNAME',
  'IFS',
  'LANG',
  'LC_ALL',
  'LINENO',
  'LOGNAME',
  'OLDPWD',
  'OPTARG',
  'OPTIND',
  'OSTYPE',
  'PATH',
  'PIPESTATUS',
  'PPID',
  'PS1',
  'PS2',
  'PS4',
  'PWD',
  'RANDOM',
  'REPLY',
  'SECONDS',
  'SHELL',
  'SHLVL',
  'TERM',
  'TMPDIR',
  'UID',
  'USER',
]);

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;
const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)\+?=/;
const EXPANSIONS_IN_TEXT = /(?<!\\)\$\{?[#]?([A-Za-z_][A-Za-z0-9_]*)/g;
/** After these, the next word is a command again (`if FOO=1 cmd`, `then export X`). */
const LEADING_KEYWORDS = new Set(['!', '{', 'if', 'then', 'else', 'elif', 'do', 'while', 'until', 'time']);
const DECLARATIONS = new Set(['export', 'local', 'readonly', 'declare', 'typeset']);

interface Word {
  /** The word's source text, quotes included (an assignment is only one when unquoted). */
  raw: string;
  start: number;
  /** Names this word expands. */
  refs: string[];
  /** Simple command this word belongs to (words of a substitution get their own). */
  segment: number;
}

interface Frame {
  mode: 'bare' | 'dq';
  /** What ends this frame: `)` of `$(`, a backtick, or the closing `"` (dq). */
  closer: ')' | '`' | '"' | null;
  depth: number;
  word: Word | null;
  segment: number;
}

interface PendingHeredoc {
  delimiter: string;
  stripTabs: boolean;
  expands: boolean;
}

class Scanner {
  private i = 0;
  private segments = 0;
  readonly words: Word[] = [];
  /** Names expanded outside any word: here-document bodies. */
  readonly looseRefs: string[] = [];
  /** Variables expanded indirectly (`${!name}`). */
  readonly indirect = new Set<string>();
  private frames: Frame[] = [{ mode: 'bare', closer: null, depth: 0, word: null, segment: 0 }];
  private heredocs: PendingHeredoc[] = [];

  constructor(private readonly src: string) {}

  private get frame(): Frame {
    return this.frames[this.frames.length - 1]!;
  }

  private wordHere(): Word {
    const f = this.frame;
    if (!f.word) {
      f.word = { raw: '', start: this.i, refs: [], segment: f.segment };
    }
    return f.word;
  }

  private endWord(end = this.i): void {
    const f = this.frame;
    if (f.mode !== 'bare' || !f.word) return;
    f.word.raw = this.src.slice(f.word.start, end);
    this.words.push(f.word);
    f.word = null;
  }

  private newSegment(): void {
    this.frame.segment = ++this.segments;
  }

  /** Enters `$(`/backtick: its own words and segments; the outer word resumes after it. */
  private pushSubstitution(closer: ')' | '`'): void {
    this.wordHere();
    this.frames.push({ mode: 'bare', closer, depth: 0, word: null, segment: ++this.segments });
  }

  private pop(): void {
    this.endWord();
    this.frames.pop();
  }

  scan(): this {
    const s = this.src;
    while (this.i < s.length) {
      const c = s[this.i]!;
      if (this.frame.mode === 'dq') this.scanQuoted(c);
      else this.scanBare(c);
    }
    while (this.frames.length > 1) this.frames.pop();
    this.endWord();
    return this;
  }

  private scanQuoted(c: string): void {
    if (c === '"') {
      this.frames.pop();
      this.i++;
    } else if (c === '\\') {
      this.i += 2;
    } else if (c === '$') {
      this.dollar();
    } else if (c === '`') {
      this.i++;
      this.pushSubstitution('`');
    } else {
      this.i++;
    }
  }

  private scanBare(c: string): void {
    const s = this.src;
    const f = this.frame;
    if (c === '\n') {
      this.endWord();
      this.i++;
      this.newSegment();
      if (this.heredocs.length) this.readHeredocBodies();
    } else if (c === ' ' || c === '\t' || c === '\r') {
      this.endWord();
      this.i++;
    } else if (c === '#' && !f.word) {
      while (this.i < s.length && s[this.i] !== '\n') this.i++;
    } else if (c === '\\') {
      if (s[this.i + 1] === '\n') {
        this.endWord();
        this.i += 2;
      } else {
        this.wordHere();
        this.i += 2;
      }
    } else if (c === "'") {
      this.wordHere();
      const close = s.indexOf("'", this.i + 1);
      this.i = close < 0 ? s.length : close + 1;
    } else if (c === '"') {
      const word = this.wordHere();
      this.frames.push({ mode: 'dq', closer: '"', depth: 0, word, segment: f.segment });
      this.i++;
    } else if (c === '$') {
      this.dollar();
    } else if (c === '`') {
      // The closing character is no part of the substitution's last word.
      if (f.closer === '`') this.pop();
      else this.pushSubstitution('`');
      this.i++;
    } else if (c === ')' && f.closer === ')' && f.depth === 0) {
      this.pop();
      this.i++;
    } else if (c === '<' && s[this.i + 1] === '<' && s[this.i + 2] !== '<') {
      this.endWord();
      this.i += 2;
      this.heredocStart();
    } else if (';&|()'.includes(c)) {
      this.endWord();
      if (c === '(') f.depth++;
      if (c === ')') f.depth--;
      this.i++;
      this.newSegment();
    } else if (c === '<' || c === '>') {
      this.endWord();
      this.i++;
    } else {
      this.wordHere();
      this.i++;
    }
  }

  /** `$NAME`, `${...}`, `$(...)`, `$((...))` or a special parameter, at `$`. */
  private dollar(): void {
    const s = this.src;
    const next = s[this.i + 1] ?? '';
    const word = this.frame.mode === 'bare' ? this.wordHere() : this.frame.word;
    const ref = (name: string) => (word ? word.refs.push(name) : this.looseRefs.push(name));
    if (next === '{') {
      const end = matching(s, this.i + 1, '{', '}');
      const inner = s.slice(this.i + 2, end);
      // `${!x}` is indirect: the names it reads are x's values (a `for x in A B` list, below).
      const m = /^#?([A-Za-z_][A-Za-z0-9_]*)/.exec(inner);
      const indirect = /^!([A-Za-z_][A-Za-z0-9_]*)/.exec(inner);
      if (m) ref(m[1]!);
      else if (indirect) this.indirect.add(indirect[1]!);
      // Defaults and alternatives expand too: `${A:-$B}`.
      for (const x of inner.slice(m ? m[0].length : 0).matchAll(EXPANSIONS_IN_TEXT)) ref(x[1]!);
      this.i = end + 1;
    } else if (next === '(' && s[this.i + 2] === '(') {
      const end = matching(s, this.i + 1, '(', ')');
      for (const x of s.slice(this.i + 3, end).matchAll(EXPANSIONS_IN_TEXT)) ref(x[1]!);
      this.i = end + 1;
    } else if (next === '(') {
      this.i += 2;
      this.pushSubstitution(')');
    } else if (NAME_START.test(next)) {
      let j = this.i + 2;
      while (j < s.length && NAME_CHAR.test(s[j]!)) j++;
      ref(s.slice(this.i + 1, j));
      this.i = j;
    } else {
      // `$$`, `$?`, `$1`, `$@`…: the shell's, never the environment's; a lone `$` is literal.
      this.i += /[0-9@*#?$!-]/.test(next) ? 2 : 1;
    }
  }

  private heredocStart(): void {
    const s = this.src;
    let stripTabs = false;
    if (s[this.i] === '-') {
      stripTabs = true;
      this.i++;
    }
    while (s[this.i] === ' ' || s[this.i] === '\t') this.i++;
    const m = /^(?:'([^']*)'|"([^"]*)"|\\?([A-Za-z0-9_.-]+))/.exec(s.slice(this.i));
    if (!m) return;
    this.i += m[0].length;
    const quoted = m[1] !== undefined || m[2] !== undefined || m[0].startsWith('\\');
    this.heredocs.push({ delimiter: m[1] ?? m[2] ?? m[3]!, stripTabs, expands: !quoted });
  }

  /** Consumes the bodies of the here-documents opened on the line just ended. */
  private readHeredocBodies(): void {
    const s = this.src;
    for (const h of this.heredocs) {
      while (this.i < s.length) {
        const eol = s.indexOf('\n', this.i);
        const lineEnd = eol < 0 ? s.length : eol;
        const line = s.slice(this.i, lineEnd);
        this.i = eol < 0 ? s.length : eol + 1;
        if ((h.stripTabs ? line.replace(/^\t+/, '') : line) === h.delimiter) break;
        if (h.expands) for (const x of line.matchAll(EXPANSIONS_IN_TEXT)) this.looseRefs.push(x[1]!);
      }
    }
    this.heredocs = [];
  }
}

/** Index of the bracket closing the one at `open` (nesting counted), or the end of the text. */
function matching(s: string, open: number, left: string, right: string): number {
  let depth = 0;
  for (let j = open; j < s.length; j++) {
    if (s[j] === '\\') {
      j++;
    } else if (s[j] === left) {
      depth++;
    } else if (s[j] === right && --depth === 0) {
      return j;
    }
  }
  return s.length;
}

/**
 * The environment variables `script` forwards, sorted: every name it expands or exports without a
 * value, except those it assigns itself (unless the assignment reads the old value, as in
 * `X=${X:-default}`), `read`s or loops over, and the shell's own (`SHELL_VARIABLES`, `ignore`).
 */
export function forwardedEnv(script: string, ignore: Iterable<string> = []): string[] {
  const scanner = new Scanner(script).scan();
  const reads = new Set<string>(scanner.looseRefs);
  const locals = new Set<string>();
  const bySegment = new Map<number, Word[]>();
  for (const w of scanner.words) {
    for (const r of w.refs) reads.add(r);
    bySegment.set(w.segment, [...(bySegment.get(w.segment) ?? []), w]);
  }
  const assign = (w: Word, name: string) => {
    if (!w.refs.includes(name)) locals.add(name);
  };
  for (const words of bySegment.values()) {
    words.sort((a, b) => a.start - b.start);
    let k = 0;
    // Leading keywords and `NAME=value` prefixes come before the command word.
    for (; k < words.length; k++) {
      const w = words[k]!;
      const m = ASSIGNMENT.exec(w.raw);
      if (m) assign(w, m[1]!);
      else if (!LEADING_KEYWORDS.has(w.raw)) break;
    }
    const command = words[k]?.raw;
    const args = words.slice(k + 1);
    if (command && DECLARATIONS.has(command)) {
      for (const w of args) {
        if (w.raw.startsWith('-')) continue;
        const m = ASSIGNMENT.exec(w.raw);
        if (m) assign(w, m[1]!);
        else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(w.raw)) {
          // `export NAME` hands on the environment's value; `local NAME` declares a local.
          if (command === 'export') reads.add(w.raw);
          else locals.add(w.raw);
        }
      }
    } else if (command === 'read') {
      for (const w of args) if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(w.raw)) locals.add(w.raw);
    } else if (command === 'printenv') {
      for (const w of args) if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(w.raw)) reads.add(w.raw);
    } else if (command === 'for' && args[0] && /^[A-Za-z_][A-Za-z0-9_]*$/.test(args[0].raw)) {
      locals.add(args[0].raw);
      // The seed's forwarding loop: `for k in OPENAI_API_KEY …; do echo "$k=${!k}"; done`.
      if (scanner.indirect.has(args[0].raw) && args[1]?.raw === 'in') {
        for (const w of args.slice(2)) if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(w.raw)) reads.add(w.raw);
      }
    }
  }
  const ignored = new Set([...SHELL_VARIABLES, ...ignore]);
  return [...reads].filter((n) => !locals.has(n) && !ignored.has(n)).sort();
}

export interface ParityResult {
  ok: boolean;
  onlyInFirst: string[];
  onlyInSecond: string[];
}

/** Compares the variables two scripts forward. */
export function compareForwarded(first: string[], second: string[]): ParityResult {
  const a = new Set(first);
  const b = new Set(second);
  const onlyInFirst = first.filter((n) => !b.has(n));
  const onlyInSecond = second.filter((n) => !a.has(n));
  return { ok: onlyInFirst.length === 0 && onlyInSecond.length === 0, onlyInFirst, onlyInSecond };
}
