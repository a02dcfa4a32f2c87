/**
 * The files use case when its backend call fails as the backend (unreachable, cut short): the row
 * is read again, and a workspace that left online meanwhile (or moved to another generation, or is
 * gone) answers the 409 `not_online` of a workspace that is not online; one still online at its
 * generation keeps the 503 with Retry-After (a real outage), as does an unreadable row.
 */
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/app/errors.js';
import { deleteFile, listFiles, type FileDeps } from '../../src/app/files.js';
import { BackendError, type WorkspaceBackend } from '../../src/backends/backend.js';
import type { Queryable } from '../../src/db/queryable.js';
import type { WorkspaceRow } from '../../src/db/workspaces.js';

const row = { id: 'w1', backend: 'docker', generation: 3, status: 'online' } as WorkspaceRow;

/** Deps whose backend fails every call with `failure` and whose database answers `now`. */
function deps(failure: BackendError, now: Partial<Record<string, unknown>> | null | Error): FileDeps {
  const failing = async () => {
    throw failure;
  };
  const backend = { listFiles: failing, deleteFile: failing } as unknown as WorkspaceBackend;
  const db: Queryable = {
    query: (async () => {
      if (now instanceof Error) throw now;
      return { rows: now === null ? [] : [{ id: 'w1', status: 'online', generation: 3, ...now }] };
    }) as unknown as Queryable['query'],
  };
  return { backends: { docker: backend, ec2: backend }, db };
}

async function refusalOf(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(
    () => {
      throw new Error('succeeded');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

const transient = new BackendError('transient', 'exec exited 137');
const list = (d: FileDeps) => listFiles(d, row, { root: '/workspace', path: '', depth: 1 }, 100);

describe('files: a backend failure while the workspace changes', () => {
  it('left online meanwhile: 409 not_online naming its status, as for one not online at the start', async () => {
    for (const status of ['restarting', 'stopping', 'deleting', 'stopped', 'failed']) {
      const err = await refusalOf(list(deps(transient, { status })));
      expect(err).toMatchObject({ kind: 'conflict', code: 'not_online' });
      expect(err.message).toBe(`workspace w1 is ${status}, not online`);
    }
    const err = await refusalOf(
      deleteFile(deps(new BackendError('permanent', 'x'), { status: 'deleting' }), row, {
        root: '/workspace',
        path: 'a',
      }),
    );
    expect(err).toMatchObject({ kind: 'conflict', code: 'not_online' });
  });

  it('its row gone, or a new generation online: 409 not_online', async () => {
    expect(await refusalOf(list(deps(transient, null)))).toMatchObject({ code: 'not_online' });
    const moved = await refusalOf(list(deps(transient, { generation: 4 })));
    expect(moved).toMatchObject({ kind: 'conflict', code: 'not_online' });
    expect(moved.message).toMatch(/generation 3 to 4/);
  });

  it('still online (or degraded) at its generation, or the row unreadable: 503 backend_unavailable + Retry-After', async () => {
    for (const now of [{}, { status: 'degraded' }, new Error('database down')]) {
      const err = await refusalOf(list(deps(transient, now)));
      expect(err).toMatchObject({
        kind: 'unavailable',
        code: 'backend_unavailable',
        extra: { retryAfterSeconds: 1 },
      });
    }
  });

  it("an answer about the file or the path is the caller's, whatever the row says", async () => {
    const d = deps(new BackendError('not_found', 'gone'), { status: 'restarting' });
    expect(await refusalOf(list(d))).toMatchObject({ kind: 'not_found' });
  });
});
