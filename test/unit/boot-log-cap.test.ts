/** The console copy kept for a failed generation is capped, whatever the backend hands over. */
import { randomBytes } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createActivities } from '../../src/activities/index.js';
import { CONSOLE_MAX_BYTES, type WorkspaceBackend } from '../../src/backends/backend.js';
import { UnconfiguredBackend } from '../../src/backends/unconfigured.js';
import type { Queryable, Transactable } from '../../src/db/queryable.js';
import { SecretBox } from '../../src/security/secrets.js';
import { noTransactions } from '../support/db-rows.js';

describe('captureBootLog', () => {
  it('stores at most CONSOLE_MAX_BYTES: the newest output', async () => {
    const saved: unknown[][] = [];
    const db: Transactable = {
      ...noTransactions,
      query: (async (text: string, params?: unknown[]) => {
        if (text.includes('INSERT INTO console_logs')) saved.push(params ?? []);
        return { rows: [], rowCount: 1 };
      }) as unknown as Queryable['query'],
    };
    // A backend that ignores the cap it is given: the activity still bounds what it stores.
    const huge = `${'old line\n'.repeat(200_000)}the last line\n`;
    const backend = Object.assign(new UnconfiguredBackend('docker'), {
      bootLog: async () => huge,
    }) as WorkspaceBackend;
    const acts = createActivities({
      db,
      backends: { docker: backend, ec2: new UnconfiguredBackend('ec2') },
      platformUrls: { docker: 'http://platform', ec2: 'http://platform' },
      bootstrapTokenTtlMs: 1000,
      secrets: new SecretBox(randomBytes(32).toString('base64')),
    });
    await new MockActivityEnvironment().run(acts.captureBootLog, {
      workspaceId: 'ws1',
      orgId: 'o1',
      backend: 'docker' as const,
      generation: 1,
      runtime: 'r',
    });
    expect(saved).toHaveLength(1);
    const text = saved[0]![2] as string;
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(CONSOLE_MAX_BYTES);
    expect(text.endsWith('the last line\n')).toBe(true);
    expect(Buffer.byteLength(huge)).toBeGreaterThan(CONSOLE_MAX_BYTES);
  });
});
