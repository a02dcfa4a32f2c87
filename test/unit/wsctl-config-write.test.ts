/**
 * `wsctl login` over an existing, looser config file: the token must never sit in a file others can
 * read, not even between the write and a later chmod. Every write wsctl makes is observed (the
 * mode of the written file right after the write).
 */
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { writeConfigFile } from '../../src/cli/wsctl/config.js';
import type * as Fs from 'node:fs';
import { tempDir } from '../support/temp-dirs.js';

const written = vi.hoisted(() => [] as Array<{ file: string; mode: number; content: string }>);

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof Fs>();
  const observed = (...args: Parameters<typeof fs.writeFileSync>) => {
    fs.writeFileSync(...args);
    const file = String(args[0]);
    written.push({ file, mode: fs.statSync(file).mode & 0o777, content: fs.readFileSync(file, 'utf8') });
  };
  return { ...fs, default: { ...fs, writeFileSync: observed }, writeFileSync: observed };
});

describe('writeConfigFile', () => {
  it('never writes the token into a file readable by others, even one that was 0644', async () => {
    const dir = tempDir('wsctl-write-');
    const file = path.join(dir, 'config.json');
    writeFileSync(file, '{}\n');
    chmodSync(file, 0o644);
    written.length = 0;

    writeConfigFile(file, { url: 'http://a:1', token: 'wo_org_s3cr3t' });

    const withToken = written.filter((w) => w.content.includes('wo_org_s3cr3t'));
    expect(withToken.length).toBeGreaterThan(0);
    for (const w of withToken) expect(w.mode).toBe(0o600);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ url: 'http://a:1', token: 'wo_org_s3cr3t' });
  });
});
