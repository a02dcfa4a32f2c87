/**
 * One boot log on both backends (GET /v1/workspaces/:id/boot-log): the same JSON shape, checked
 * with one schema; boot-phase events with timestamps and per-phase durations; the backend's
 * console (docker logs / GetConsoleOutput through ec2-sim) with the workspace's secrets redacted
 * and capped to BOOT_LOG_CONSOLE_MAX_BYTES; and a boot that misses its deadline keeps its events
 * and console after compensation removed its resource, for that generation, even once the
 * workspace has moved on to a new generation or been deleted.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import { BOOT_PHASES } from '../../src/api/schemas.js';
import { waitFor } from '../setup/wait-for.js';
import { waitForStatus } from '../support/stack.js';
import {
  leftovers,
  CONCURRENT_BLOCK,
  PARITY_BACKENDS,
  useParityStack,
  type ParityFixture,
} from './backends.js';
import { hostContainer, sh } from './workspace-shell.js';

// The docker and ec2 blocks run at the same time (CONCURRENT_BLOCK); the tests of one block share
// its stack and run one after another.
const it = test.sequential;

const CONSOLE_CAP = 16 * 1024;

/** The answer, as the contract plus its additions (docs/api-additions.md) define it: nothing else. */
const BootLog = z.strictObject({
  backend: z.enum(['docker', 'ec2']),
  events: z.array(
    z.strictObject({
      ts: z.iso.datetime(),
      phase: z.string().min(1),
      generation: z.number().int().positive(),
      message: z.string().optional(),
      durationMs: z.number().int().nonnegative().nullable(),
    }),
  ),
  console: z.string(),
  consoleGeneration: z.number().int().positive(),
  consoleTruncated: z.boolean(),
});
type BootLog = z.infer<typeof BootLog>;

const TOP_KEYS = ['backend', 'events', 'console', 'consoleGeneration', 'consoleTruncated'];
const EVENT_KEYS = ['ts', 'phase', 'generation', 'message', 'durationMs'];

async function bootLog(t: ParityFixture, key: string, id: string, query = ''): Promise<BootLog> {
  const res = await t.stack.api.call('GET', `/v1/workspaces/${id}/boot-log${query}`, { token: key });
  expect(res.status).toBe(200);
  // Same field order on both backends too (JSON key order is what a diff of two answers shows).
  expect(Object.keys(res.body)).toEqual(TOP_KEYS);
  for (const e of res.body.events) {
    expect(Object.keys(e)).toEqual(EVENT_KEYS.filter((k) => k in e));
  }
  const log = BootLog.parse(res.body);
  expect(log.backend).toBe(t.backend);
  // Events oldest first; each one's duration is the time until the next event of its generation.
  log.events.forEach((e, i) => {
    const next = log.events.slice(i + 1).find((n) => n.generation === e.generation);
    expect(e.durationMs).toBe(next ? Math.max(0, Date.parse(next.ts) - Date.parse(e.ts)) : null);
  });
  return log;
}

const phasesOf = (log: BootLog, generation?: number) =>
  log.events.filter((e) => generation === undefined || e.generation === generation).map((e) => e.phase);

/** Prints to the console from inside the generation's resource, a secret from its secrets.env included. */
async function printToConsole(t: ParityFixture, id: string, generation: number, script: string) {
  const host = await hostContainer(t.backend, t.stack.docker, id, generation);
  const out = await sh(host, `set -e; . /var/lib/wo/secrets.env; ( ${script} ) > /proc/1/fd/1`);
  expect(out.code, out.out).toBe(0);
}

describe.each(PARITY_BACKENDS)('%s: boot log', CONCURRENT_BLOCK, (backend) => {
  const t = useParityStack(backend, { env: { BOOT_LOG_CONSOLE_MAX_BYTES: String(CONSOLE_CAP) } });

  it('one shape: phase events with durations per generation, console redacted and capped', async () => {
    const created = await t.stack.api.call('POST', '/v1/workspaces', {
      token: t.key,
      body: { name: 'boot-logged', backend },
    });
    expect(created.status).toBe(202);
    const id: string = created.body.id;
    await waitForStatus(t.stack, t.key, id, 'online');

    // A secret reaches the workspace at its next start.
    const secret = `s3cr3t-${randomBytes(12).toString('hex')}`;
    const put = await t.stack.api.call('PUT', `/v1/workspaces/${id}/secrets/BOOTLOG_SECRET`, {
      token: t.key,
      body: { value: secret },
    });
    expect(put.status).toBe(204);
    expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/restart`, { token: t.key })).status).toBe(
      202,
    );
    await waitForStatus(t.stack, t.key, id, (w) => w.status === 'online' && w.generation === 2);

    await printToConsole(t, id, 2, 'echo "the secret is $BOOTLOG_SECRET"');
    const log = await waitFor(
      async () => {
        const l = await bootLog(t, t.key, id);
        return l.console.includes('the secret is') ? l : null;
      },
      { timeoutMs: 30_000, describe: 'the printed secret on the console' },
    );
    expect(log.console).toContain('the secret is [REDACTED]');
    expect(JSON.stringify(log)).not.toContain(secret);
    expect(log.consoleGeneration).toBe(2);
    expect(log.consoleTruncated).toBe(false);
    expect(phasesOf(log)).toEqual([...BOOT_PHASES, ...BOOT_PHASES]);
    expect(phasesOf(log, 2)).toEqual([...BOOT_PHASES]);
    expect(log.events.filter((e) => e.durationMs === null)).toHaveLength(2);

    // One generation on request: its events only.
    const first = await bootLog(t, t.key, id, '?generation=1');
    expect(phasesOf(first)).toEqual([...BOOT_PHASES]);
    expect(first.events.every((e) => e.generation === 1)).toBe(true);
    expect(first.consoleGeneration).toBe(1);
    const bad = await t.stack.api.call('GET', `/v1/workspaces/${id}/boot-log?generation=zero`, {
      token: t.key,
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('generation');

    // More output than the cap: the newest bytes are served, and the answer says older ones were dropped.
    await printToConsole(
      t,
      id,
      2,
      `head -c ${CONSOLE_CAP + 4096} /dev/zero | tr '\\0' x; echo; echo "last: $BOOTLOG_SECRET"`,
    );
    const capped = await waitFor(
      async () => {
        const l = await bootLog(t, t.key, id);
        return l.console.includes('last: ') ? l : null;
      },
      { timeoutMs: 30_000, describe: 'the last line on the console' },
    );
    expect(Buffer.byteLength(capped.console)).toBeLessThanOrEqual(CONSOLE_CAP);
    expect(capped.consoleTruncated).toBe(true);
    expect(capped.console).toMatch(/last: \[REDACTED\]\n$/);
    expect(capped.console).not.toContain('the secret is');
    expect(JSON.stringify(capped)).not.toContain(secret);

    expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
    await waitForStatus(t.stack, t.key, id, 'deleted');
  });
});

describe.each(PARITY_BACKENDS)(
  '%s: boot log of a boot that missed its deadline',
  CONCURRENT_BLOCK,
  (backend) => {
    // Long enough for the agent to reach agent-started and for the test to print to its console
    // first (3 s on either backend in a whole-suite run, beside this file's three other boots),
    // short enough not to idle the suite: the test waits for it to pass.
    const deadlineMs = 15_000;
    const t = useParityStack(backend, { env: { BOOT_DEADLINE_MS: String(deadlineMs) } });

    it('failed, resource removed, its events and redacted console still served for that generation', async () => {
      const secret = `s3cr3t-${randomBytes(12).toString('hex')}`;
      const created = await t.stack.api.call('POST', '/v1/workspaces', {
        token: t.key,
        body: {
          name: 'never-ready',
          backend,
          config: { agent: { neverHealthy: true } },
          secrets: { BOOTLOG_SECRET: secret },
        },
      });
      expect(created.status).toBe(202);
      const id: string = created.body.id;
      // The agent is up (it never proves health): print to the console before the deadline strikes.
      await waitFor(async () => phasesOf(await bootLog(t, t.key, id)).includes('agent-started'), {
        timeoutMs: deadlineMs,
        describe: 'agent-started before the deadline',
      });
      await printToConsole(t, id, 1, 'echo "doomed boot sees $BOOTLOG_SECRET"');

      const failed = await waitForStatus(t.stack, t.key, id, 'failed', deadlineMs + 60_000);
      expect(failed.error).toMatch(/boot deadline/);
      expect(await leftovers(backend, t.stack.docker, id, { keepVolumes: true })).toEqual([]);

      const kept = await bootLog(t, t.key, id);
      expect(phasesOf(kept)).toEqual(['boot', 'config-materialized', 'plugins-installed', 'agent-started']);
      expect(kept.events.at(-1)!.durationMs).toBeNull();
      expect(kept.consoleGeneration).toBe(1);
      expect(kept.console).toContain('doomed boot sees [REDACTED]');
      expect(JSON.stringify(kept)).not.toContain(secret);

      // The workspace moves on to generation 2; generation 1's log is still there on request.
      expect((await t.stack.api.call('POST', `/v1/workspaces/${id}/start`, { token: t.key })).status).toBe(
        202,
      );
      await waitForStatus(t.stack, t.key, id, (w) => w.generation === 2);
      expect((await bootLog(t, t.key, id)).consoleGeneration).toBe(2);
      const again = await bootLog(t, t.key, id, '?generation=1');
      expect(again.events).toEqual(kept.events);
      expect(again.console).toBe(kept.console);

      // And after delete.
      expect((await t.stack.api.call('DELETE', `/v1/workspaces/${id}`, { token: t.key })).status).toBe(202);
      await waitForStatus(t.stack, t.key, id, 'deleted');
      const afterDelete = await bootLog(t, t.key, id, '?generation=1');
      expect(afterDelete.console).toBe(kept.console);
      expect(phasesOf(afterDelete)).toEqual(phasesOf(kept));
      expect(await leftovers(backend, t.stack.docker, id)).toEqual([]);
    });
  },
);
