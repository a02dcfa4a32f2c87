/** Activities against a fake backend and a recording DB, in Temporal's mock activity environment. */
import { randomBytes } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { createActivities } from '../../src/activities/index.js';
import { BackendError, type StartSpec, type WorkspaceBackend } from '../../src/backends/backend.js';
import { UnconfiguredBackend } from '../../src/backends/unconfigured.js';
import type { Queryable, Transactable } from '../../src/db/queryable.js';
import { SecretBox } from '../../src/security/secrets.js';
import { noTransactions } from '../support/db-rows.js';

function recordingDb(): Transactable & { statements: string[] } {
  const statements: string[] = [];
  return {
    ...noTransactions,
    statements,
    query: (async (text: string) => {
      statements.push(text);
      return { rows: [], rowCount: 1 };
    }) as unknown as Queryable['query'],
  };
}

function fakeBackend(start: (spec: StartSpec) => Promise<unknown>): WorkspaceBackend {
  const unconfigured = new UnconfiguredBackend('docker');
  return Object.assign(unconfigured, { start }) as WorkspaceBackend;
}

function activitiesWith(backend: WorkspaceBackend, db = recordingDb()) {
  return createActivities({
    db,
    backends: { docker: backend, ec2: new UnconfiguredBackend('ec2') },
    platformUrls: { docker: 'http://platform', ec2: 'http://platform' },
    bootstrapTokenTtlMs: 1000,
    secrets: new SecretBox(randomBytes(32).toString('base64')),
  });
}

const target = { workspaceId: 'ws1', orgId: 'o1', backend: 'docker' as const, generation: 1, runtime: 'r' };

describe('startResource', () => {
  it('mints a bootstrap token only when the backend creates a resource', async () => {
    const db = recordingDb();
    let minted = 0;
    const acts = activitiesWith(
      fakeBackend(async (spec) => {
        if (spec.generation === 1) {
          await spec.mintBootstrapToken();
          minted++;
        }
        return { instanceId: 'c1', endpoint: 'http://127.0.0.1:1', status: 'running' };
      }),
      db,
    );
    await new MockActivityEnvironment().run(acts.startResource, target);
    await new MockActivityEnvironment().run(acts.startResource, { ...target, generation: 2 });
    expect(minted).toBe(1);
    expect(db.statements.filter((s) => s.includes('INSERT INTO bootstrap_tokens'))).toHaveLength(1);
    expect(db.statements.filter((s) => s.includes('UPDATE workspaces SET instance_id'))).toHaveLength(2);
  });

  it('turns permanent backend errors into non-retryable failures', async () => {
    const acts = activitiesWith(
      fakeBackend(async () => {
        throw new BackendError('permanent', 'image wo-runtime:x not found');
      }),
    );
    const err = await new MockActivityEnvironment().run(acts.startResource, target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).message).toMatch(/not found/);
  });

  it('leaves transient errors retryable', async () => {
    const acts = activitiesWith(
      fakeBackend(async () => {
        throw new BackendError('transient', 'daemon hiccup');
      }),
    );
    const err = await new MockActivityEnvironment().run(acts.startResource, target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
  });

  it('a zero-value backend answers a typed, non-retryable error', async () => {
    const acts = activitiesWith(new UnconfiguredBackend('docker'));
    const err = await new MockActivityEnvironment().run(acts.stopResource, target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('BackendError.not_configured');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
  });
});
