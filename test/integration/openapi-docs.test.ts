/**
 * /docs in a real browser (Debian chromium, headless): Swagger UI loads from the service itself
 * (no CDN: any request elsewhere fails the test), reads /openapi.json and lists every operation,
 * with its Content-Security-Policy refusing nothing it needs.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES } from '../../src/api/openapi/routes.js';
import { launchChromium } from '../support/chromium.js';
import { useStack } from '../support/stack.js';

describe('Swagger UI at /docs', () => {
  const t = useStack({ worker: false });
  let browser: Browser;

  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('renders every operation of /openapi.json from assets the service serves', async () => {
    const page = await browser.newPage();
    const elsewhere: string[] = [];
    const failed: string[] = [];
    page.on('request', (req) => {
      if (!req.url().startsWith(t.stack.url) && !req.url().startsWith('data:')) elsewhere.push(req.url());
    });
    page.on('requestfailed', (req) => failed.push(req.url()));
    // The page runs under its Content-Security-Policy: nothing it needs may be refused by it.
    const refused: string[] = [];
    page.on('console', (msg) => {
      if (/Content Security Policy/i.test(msg.text())) refused.push(msg.text());
    });
    page.on('response', (res) => {
      if (res.status() >= 400) failed.push(`${res.status()} ${res.url()}`);
    });
    await page.goto(`${t.stack.url}/docs`);
    // Swagger UI renders one .opblock per operation once it has read the document.
    await page.locator('.opblock').first().waitFor({ timeout: 30_000 });
    expect(await page.locator('.opblock').count()).toBe(ROUTES.length);
    await expect
      .poll(() => page.locator('.opblock-summary-path').allTextContents(), { timeout: 10_000 })
      .toContain('/v1/workspaces/{id}/files/content');
    expect(elsewhere).toEqual([]);
    expect(failed).toEqual([]);
    expect(refused).toEqual([]);
  });
});
