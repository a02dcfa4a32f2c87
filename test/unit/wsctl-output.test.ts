/**
 * What wsctl prints for people comes partly from inside workspaces (boot console, phase messages,
 * failure reasons, agent replies): a hostile agent must not drive the operator's terminal with
 * escape sequences (rewrite the screen, set the clipboard via OSC 52, retitle the window). Control
 * characters are shown as visible escapes; newlines and tabs stay; `--json` stays exact JSON.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Output, type Io } from '../../src/cli/wsctl/output.js';
import { printBootLog } from '../../src/cli/wsctl/report.js';

function capture(json: boolean): { out: Output; text: () => string } {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => chunks.push(c));
  const io = { stdout, stderr: new PassThrough(), stdin: new PassThrough(), env: {} } as unknown as Io;
  return { out: new Output(io, json), text: () => Buffer.concat(chunks).toString('utf8') };
}

const HOSTILE = 'ok\x1b]52;c;ZXZpbA==\x07 \x1b[2J\x1b[Hcleared\rover\x9b31m\ttab\x00';

describe('wsctl output for people', () => {
  it('prints a hostile boot log with its control characters made visible', () => {
    const { out, text } = capture(false);
    printBootLog(out, {
      backend: 'docker',
      events: [{ ts: '2026-11-29T00:00:00Z', phase: 'boot\x1b[8m', generation: 1, message: HOSTILE }],
      console: `line one\n${HOSTILE}\n`,
    });
    const printed = text();
    // eslint-disable-next-line no-control-regex -- the point: none of these reach the terminal
    expect(printed).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
    expect(printed).toContain('ok\\x1b]52;c;ZXZpbA==\\x07 \\x1b[2J\\x1b[Hcleared\\x0dover\\x9b31m\ttab\\x00');
    expect(printed).toContain('boot\\x1b[8m');
    expect(printed.split('\n')).toContain('line one');
  });

  it('leaves --json output exact', () => {
    const { out, text } = capture(true);
    out.printJson({ console: HOSTILE });
    expect(JSON.parse(text())).toEqual({ console: HOSTILE });
  });
});
