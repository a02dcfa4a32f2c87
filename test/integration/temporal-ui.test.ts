/**
 * The Temporal UI reads like a story (docs/operations.md): a docker workspace provisioned through
 * the API is opened in the Temporal Web UI in headless Chromium, whose page shows the entity's
 * static summary (name, org, backend), its current details (status, generation, phase) and the
 * activities' summaries naming the container. The run's shared dev server is headless, so this
 * file starts its own with the UI on a free loopback port, and a stack against it. A screenshot is
 * saved under .data/screenshots/ for a human to look at.
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTemporal, type RunningTemporal } from '../setup/services.js';
import { waitFor } from '../setup/wait-for.js';
import { launchChromium } from '../support/chromium.js';
import {
  REPO_ROOT,
  createOrg,
  deleteLeftoverWorkspaces,
  startStack,
  waitForStatus,
  type Stack,
} from '../support/stack.js';

const SCREENSHOTS = path.join(REPO_ROOT, '.data', 'screenshots');

describe('Temporal UI', () => {
  let temporal: RunningTemporal | undefined;
  let stack: Stack | undefined;
  let browser: Browser | undefined;
  let key = '';

  beforeAll(async () => {
    temporal = await startTemporal({ ui: true });
    stack = await startStack({ env: { TEMPORAL_ADDRESS: temporal.address } });
    key = (await createOrg(stack, 'storybook')).apiKey;
    // Playwright gives each launch a fresh temporary profile.
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    // A failed test leaves its workspace: deleted through the stack like every suite's leftovers.
    if (stack) await deleteLeftoverWorkspaces(stack);
    await stack?.close();
    await temporal?.stop();
  });

  /**
   * The page's visible text, its frames' included: the UI renders summaries and details (markdown)
   * in sandboxed iframes.
   */
  const visibleText = async (page: Page): Promise<string> => {
    const parts = await Promise.all(
      page.frames().map((f) =>
        f
          .locator('body')
          .innerText({ timeout: 2000 })
          .catch(() => ''),
      ),
    );
    return parts.join('\n');
  };

  /**
   * Opens `url` and waits until its text holds every one of `texts`; answers that text. A page the
   * UI could not load is opened again: Chromium aborts requests in flight with ERR_NETWORK_CHANGED
   * whenever the host's interfaces change (every container another test starts adds one), and a
   * lost script chunk leaves the UI on its error page, or on a blank one (a full suite's run
   * showed a page with no text at all for a whole minute): a page still short of the texts
   * RELOAD_AFTER_MS after it was opened is opened again too.
   */
  const RELOAD_AFTER_MS = 15_000;
  const pageProblems = new WeakMap<Page, string[]>();
  const open = async (page: Page, url: string, texts: string[], what: string): Promise<string> => {
    let loadedAt: number | null = null;
    return waitFor(
      async () => {
        if (loadedAt === null) {
          await page.goto(url, { waitUntil: 'domcontentloaded' });
          loadedAt = Date.now();
        }
        const text = await visibleText(page);
        if (text.includes("There's an error")) {
          loadedAt = null;
          throw new Error(`the UI failed to load: ${text.slice(0, 300)}`);
        }
        const missing = texts.filter((t) => !text.includes(t));
        if (missing.length > 0) {
          if (Date.now() - loadedAt > RELOAD_AFTER_MS) loadedAt = null;
          const problems = pageProblems.get(page)?.slice(-5) ?? [];
          throw new Error(
            `missing ${JSON.stringify(missing)}; page: ${text.slice(-1500)}; ` +
              `page errors: ${JSON.stringify(problems)}`,
          );
        }
        return text;
      },
      { timeoutMs: 60_000, intervalMs: 500, describe: what },
    );
  };

  const screenshot = async (page: Page, name: string): Promise<void> => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    const file = path.join(SCREENSHOTS, name);
    await page.screenshot({ path: file, fullPage: true });
    expect(statSync(file).size).toBeGreaterThan(10_000);
  };

  it("a workspace's history shows its summary, current details and what each activity did", async () => {
    const s = stack!;
    const created = await s.api.call('POST', '/v1/workspaces', {
      token: key,
      body: { name: 'storyteller', backend: 'docker' },
    });
    expect(created.status).toBe(202);
    const { id, workflowId } = created.body as { id: string; workflowId: string };
    await waitForStatus(s, key, id, 'online');
    const { runId } = await s.service.temporal.workflow.getHandle(workflowId).describe();
    const base = `${temporal!.uiUrl}/namespaces/default/workflows/${encodeURIComponent(workflowId)}/${runId}`;
    const container = `ws-${id}-g1`;

    const page = await browser!.newPage({ viewport: { width: 1600, height: 1400 } });
    // What the page itself reported, for the message of a wait that times out.
    const problems: string[] = [];
    pageProblems.set(page, problems);
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    page.on('requestfailed', (r) => problems.push(`${r.failure()?.errorText ?? 'failed'}: ${r.url()}`));
    page.on('crash', () => problems.push('the page crashed'));
    try {
      // User Metadata: the static summary and details, and the entity's current details.
      const metadata = await open(
        page,
        `${base}/user-metadata`,
        [
          'workspace storyteller · org storybook · docker',
          `GET /v1/workspaces/${id}`,
          'platform-health-ok',
          'generation 1',
          container,
        ],
        `the Temporal UI's user metadata of ${workflowId} to show its summary and details`,
      );
      expect(metadata).toContain('online');
      await screenshot(page, `temporal-ui-${id}-metadata.png`);

      // Event History: each activity's summary names what it did to which container, and the boot
      // deadline's timer says whose deadline it was (the stack's BOOT_DEADLINE_MS is 60 s).
      await open(
        page,
        `${base}/history`,
        [
          'workspace storyteller · org storybook · docker',
          `create + start container ${container}`,
          `boot deadline of ${container}: 60 s`,
        ],
        `the Temporal UI's history of ${workflowId} to show the activities' summaries`,
      );
      await screenshot(page, `temporal-ui-${id}-history.png`);
    } finally {
      await page.close();
    }

    const del = await s.api.call('DELETE', `/v1/workspaces/${id}`, { token: key });
    expect(del.status).toBe(202);
    await waitForStatus(s, key, id, 'deleted');
  });
});
