/**
 * The web console (`/ui`) in headless Chromium (Debian's, driven by playwright-core) against the
 * real stack on the docker backend: login with an org key (a bad one refused), a workspace created
 * through the API appearing and turning `online` live (through its `/events` stream, no reload),
 * the xterm.js terminal running `echo hi`, and the files browser listing, downloading, uploading
 * and deleting. Screenshots go to .data/screenshots/.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import { CONSOLE_CSP } from '../../src/api/routes/console.js';
import { CLOSE_AUTH, TERMINAL_SUBPROTOCOL } from '../../src/api/terminal.js';
import { launchChromium } from '../support/chromium.js';
import { REPO_ROOT, useStack, waitForStatus } from '../support/stack.js';

const it = test.sequential;
const SHOTS = path.join(REPO_ROOT, '.data/screenshots');
/** How long a workspace may take to boot on a loaded machine. */
const BOOT_MS = 120_000;

describe('web console', () => {
  const t = useStack();
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let workspaceId = '';
  const requestedUrls: string[] = [];
  const problems: string[] = [];

  /** Consoles read from the backend (docker logs): the page's boot timelines need none. */
  let consoleReads = 0;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    const docker = t.stack.service.backends.docker;
    const bootLog = docker.bootLog.bind(docker);
    docker.bootLog = (...args) => {
      consoleReads++;
      return bootLog(...args);
    };
    // launch() gives every run a fresh temporary profile (user data dir), removed on close.
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
    page = await context.newPage();
    page.on('request', (r) => requestedUrls.push(r.url()));
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (m) => {
      // CSP violations and script errors are reported on the console.
      if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(m.text());
    });
  });

  afterAll(async () => {
    await browser?.close();
  });

  const shot = (name: string) =>
    page.screenshot({ path: path.join(SHOTS, `console-${name}.png`), fullPage: true });
  const row = (id: string) => `#workspaces tr[data-id="${id}"]`;

  it('serves the pages and xterm.js from this origin under the Content-Security-Policy', async () => {
    const res = await fetch(`${t.stack.url}/ui/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await res.text()).toContain('/ui/app.js');
    // api.md names `/ui`: the same page without the trailing slash.
    const bare = await fetch(`${t.stack.url}/ui`, { redirect: 'manual' });
    expect(bare.status).toBe(200);
    expect(bare.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(await bare.text()).toContain('/ui/app.js');
    const xterm = await fetch(`${t.stack.url}/ui/vendor/xterm/lib/xterm.mjs`);
    expect(xterm.status).toBe(200);
    expect(xterm.headers.get('content-type')).toMatch(/javascript/);
    // Only the packages' built files are served.
    expect((await fetch(`${t.stack.url}/ui/vendor/xterm/package.json`)).status).toBe(404);
    // The settings document is behind the API's auth.
    expect((await fetch(`${t.stack.url}/ui/config.json`)).status).toBe(401);
    const cfg = await t.stack.api.call('GET', '/ui/config.json', { token: t.key });
    expect(cfg.status).toBe(200);
    expect(cfg.body).toEqual({
      temporalUiUrl: t.stack.config.TEMPORAL_UI_URL,
      temporalNamespace: t.stack.config.TEMPORAL_NAMESPACE,
      workflowIdTemplate: 'workspace:{id}',
    });
  });

  it('refuses a bad key with an error, then logs in with the org key', async () => {
    await page.goto(`${t.stack.url}/ui/`);
    // Logged out: the login form only, no navigation.
    await page.waitForSelector('#login');
    expect(await page.isVisible('#nav')).toBe(false);
    await page.fill('#key', `wo_org_${'x'.repeat(32)}`);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#login-status .notice.error:has-text("not accepted")', { timeout: 10_000 });
    expect(await page.evaluate('sessionStorage.getItem("wo.key")')).toBeNull();
    await shot('login-refused');

    await page.fill('#key', t.key);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#workspaces', { timeout: 10_000 });
    expect(await page.evaluate('sessionStorage.getItem("wo.key")')).toBe(t.key);
    expect(await page.isVisible('#nav')).toBe(true);
  });

  it('lists a workspace created through the API, and it turns online live without a reload', async () => {
    // A mark on the page's window: gone if the page were reloaded.
    await page.evaluate('window.consoleMark = "same page"');
    const created = await t.stack.api.callRetrying503('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'console-live', backend: 'docker' },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    workspaceId = created.body.id as string;

    await page.waitForSelector(row(workspaceId), { timeout: 30_000 });
    await page.waitForSelector(`${row(workspaceId)}[data-status="online"][data-stream="open"]`, {
      timeout: BOOT_MS,
    });
    await page.waitForSelector(`${row(workspaceId)} .timeline .seg`, { timeout: 15_000 });
    expect(await page.evaluate('window.consoleMark')).toBe('same page');
    const cells = await page.$$eval(`${row(workspaceId)} td`, (tds) => tds.map((td) => td.textContent ?? ''));
    expect(cells[0]).toContain('console-live');
    expect(cells[2]).toBe('docker');
    expect(cells[3]).toBe('1');
    expect(cells[5]).toBe('0');
    const link = await page.getAttribute(`${row(workspaceId)} a.temporal`, 'href');
    expect(link).toBe(
      `${t.stack.config.TEMPORAL_UI_URL}/namespaces/${t.stack.config.TEMPORAL_NAMESPACE}` +
        `/workflows/${encodeURIComponent(`workspace:${workspaceId}`)}`,
    );
    // The heartbeat column fills in from the list's re-reads.
    await page
      .locator(`${row(workspaceId)} td:nth-child(5)`)
      .filter({ hasText: /ago$/ })
      .waitFor({ timeout: 30_000 });
    await shot('workspaces-online');

    // A restart through the API: the open page follows it through the stream to online again, at
    // generation 2 (the row's status comes only from its stream while that is open).
    const restarted = await t.stack.api.callRetrying503('POST', `/v1/workspaces/${workspaceId}/restart`, {
      token: t.key,
    });
    expect(restarted.status, JSON.stringify(restarted.body)).toBe(202);
    await page.waitForSelector(`${row(workspaceId)}:not([data-status="online"])`, { timeout: 30_000 });
    await shot('workspaces-restarting');
    await page
      .locator(`${row(workspaceId)}[data-status="online"][data-stream="open"] td:nth-child(4)`)
      .filter({ hasText: /^2$/ })
      .waitFor({ timeout: BOOT_MS });
    expect(await page.evaluate('window.consoleMark')).toBe('same page');
    // The timeline follows the new generation's boot.
    await page.waitForSelector(`${row(workspaceId)} .timeline[aria-label$="platform-health-ok"]`, {
      timeout: 15_000,
    });
    await shot('workspaces-restarted');
  });

  it("reads each row's boot phases without its console: the backend is never asked for one", async () => {
    // Every timeline the page drew above (at creation, on each transition, while booting).
    expect(requestedUrls.filter((u) => u.includes('/boot-log?')).length).toBeGreaterThan(0);
    expect(requestedUrls.filter((u) => u.includes('/boot-log?') && !u.includes('console=false'))).toEqual([]);
    expect(consoleReads).toBe(0);
    const url = `/v1/workspaces/${workspaceId}/boot-log`;
    const phases = await t.stack.api.call('GET', `${url}?console=false`, { token: t.key });
    expect(phases.status).toBe(200);
    expect((phases.body.events as unknown[]).length).toBeGreaterThan(0);
    expect(phases.body.console).toBe('');
    expect(consoleReads).toBe(0);
    // Asked for (the default), the console is read.
    const whole = await t.stack.api.call('GET', url, { token: t.key });
    expect(whole.status).toBe(200);
    expect(consoleReads).toBe(1);
    const bad = await t.stack.api.call('GET', `${url}?console=no`, { token: t.key });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('console');
  });

  it('runs `echo hi` in the xterm.js terminal', async () => {
    await page.click(`${row(workspaceId)} a.terminal`);
    await page.waitForSelector('#terminal-status [data-state="open"]', { timeout: 30_000 });
    await page.click('#terminal');
    await page.keyboard.type('echo hi');
    await page.keyboard.press('Enter');
    // A line that is exactly `hi`: the output, not the echoed command line.
    await page
      .locator('#terminal .xterm-rows > div')
      .filter({ hasText: /^\s*hi\s*$/ })
      .first()
      .waitFor({ timeout: 30_000 });
    await shot('terminal');
  });

  it('takes the key as a subprotocol on the terminal WebSocket and never echoes it', async () => {
    const url = `${t.stack.url.replace(/^http/, 'ws')}/v1/workspaces/${workspaceId}/terminal`;
    const open = (key: string, closeWhenOpen: boolean) =>
      new Promise<{ protocol: string; code: number }>((resolve, reject) => {
        const ws = new WebSocket(url, [TERMINAL_SUBPROTOCOL, `wo.bearer.${key}`]);
        // The socket is accepted first; a refused key is then closed by the server with its code.
        if (closeWhenOpen) ws.once('open', () => ws.close(1000));
        ws.once('close', (code) => resolve({ protocol: ws.protocol, code }));
        ws.once('error', reject);
      });
    expect(await open(t.key, true)).toEqual({ protocol: TERMINAL_SUBPROTOCOL, code: 1000 });
    expect(await open(`wo_org_${'y'.repeat(32)}`, false)).toEqual({
      protocol: TERMINAL_SUBPROTOCOL,
      code: CLOSE_AUTH,
    });
  });

  it('browses files: lists one put through the API, downloads, uploads and deletes', async () => {
    const put = await fetch(
      `${t.stack.url}/v1/workspaces/${workspaceId}/files/content?root=/workspace&path=console/hello.txt`,
      { method: 'PUT', headers: { authorization: `Bearer ${t.key}` }, body: 'hello from the API' },
    );
    expect(put.status).toBe(204);

    await page.goto(`${t.stack.url}/ui/#/files/${workspaceId}`);
    await page.click('#files tr[data-path="console"] a', { timeout: 30_000 });
    const file = '#files tr[data-path="console/hello.txt"]';
    await page.waitForSelector(file, { timeout: 30_000 });
    expect(await page.textContent('.crumbs')).toBe('/workspace / console');
    expect(await page.textContent(`${file} td:nth-child(2)`)).toBe('18 B');
    await shot('files');

    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 30_000 }),
      page.click(`${file} button:has-text("Download")`),
    ]);
    expect(download.suggestedFilename()).toBe('hello.txt');
    const stream = await download.createReadStream();
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('hello from the API');

    await page.setInputFiles('#upload', {
      name: 'from-browser.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('uploaded in Chromium'),
    });
    await page.waitForSelector('#files tr[data-path="console/from-browser.txt"]', { timeout: 30_000 });
    const read = await t.stack.api.call(
      'GET',
      `/v1/workspaces/${workspaceId}/files/content?root=/workspace&path=console/from-browser.txt`,
      { token: t.key },
    );
    expect(read.status).toBe(200);
    expect(read.body).toBe('uploaded in Chromium');

    page.once('dialog', (d) => void d.accept());
    await page.click(`${file} button:has-text("Delete")`);
    await page.waitForSelector(file, { state: 'detached', timeout: 30_000 });
    const gone = await t.stack.api.call(
      'GET',
      `/v1/workspaces/${workspaceId}/files/content?root=/workspace&path=console/hello.txt`,
      { token: t.key },
    );
    expect(gone.status).toBe(404);
    await shot('files-after');
  });

  it('logs out: the key is forgotten and the login form is back', async () => {
    await page.click('#logout');
    await page.waitForSelector('#login', { timeout: 10_000 });
    expect(await page.evaluate('sessionStorage.getItem("wo.key")')).toBeNull();
    expect(await page.isVisible('#nav')).toBe(false);
  });

  it('never put the key in a URL, and the pages raised no errors or CSP violations', async () => {
    expect(requestedUrls.length).toBeGreaterThan(5);
    expect(requestedUrls.filter((u) => u.includes(t.key))).toEqual([]);
    expect(problems).toEqual([]);
    const del = await t.stack.api.callRetrying503('DELETE', `/v1/workspaces/${workspaceId}`, {
      token: t.key,
    });
    expect(del.status).toBe(202);
    await waitForStatus(t.stack, t.key, workspaceId, 'deleted');
  });
});
