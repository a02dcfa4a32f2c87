/**
 * The API's entity client without a Temporal to talk to: every call ends in a 503 with Retry-After
 * (never a hang), and Update failures map to HTTP answers by their type, never their message.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { ApplicationFailure, Client, WorkflowUpdateFailedError, type Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EntityClient, toHttpError } from '../../src/api/entity.js';
import { HttpError } from '../../src/api/errors.js';
import { connectTemporal } from '../../src/api/temporal-connection.js';
import { FailureType, restartUpdate } from '../../src/workflows/messages.js';

describe('EntityClient when Temporal does not answer', () => {
  // A port that accepts TCP and never speaks gRPC: calls can only end by their deadline.
  let silent: Server;
  let entity: EntityClient;
  let connection: Connection;
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    silent = createServer((socket) => {
      sockets.add(socket);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    connection = await connectTemporal(`127.0.0.1:${port}`, { lazy: true });
    entity = new EntityClient(new Client({ connection }), 'nowhere', { callTimeoutMs: 1000 });
  });
  afterAll(async () => {
    await connection.close();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  const answer = async (p: Promise<unknown>): Promise<HttpError> => {
    try {
      await p;
    } catch (err) {
      if (err instanceof HttpError) return err;
      throw err;
    }
    throw new Error('the call succeeded');
  };

  it('a lifecycle Update answers 503 temporal_unavailable with Retry-After', async () => {
    const err = await answer(entity.update('w1', restartUpdate));
    expect(err.status).toBe(503);
    expect(err.code).toBe('temporal_unavailable');
    expect(err.extra.retryAfterSeconds).toBeGreaterThan(0);
  });

  it('a configure answers the same way', async () => {
    const err = await answer(entity.configure('w1', { config: { a: 1 } }));
    expect(err.status).toBe(503);
  });

  it('a signal answers 503 (the agent retries it), readiness probes fail, exists() says unknown', async () => {
    expect((await answer(entity.signalHealth('w1', { generation: 1, runtimeState: 'ok' }))).status).toBe(503);
    await expect(entity.ping()).rejects.toThrow();
    await expect(entity.requireWorker()).rejects.toThrow();
    expect(await entity.exists('w1')).toBeNull();
  });

  it('a worker running in this process answers requireWorker without asking the server', async () => {
    let running = true;
    const local = new EntityClient(new Client({ connection }), 'nowhere', {
      callTimeoutMs: 1000,
      localWorkerRunning: () => running,
    });
    await expect(local.requireWorker()).resolves.toBeUndefined();
    // Stopped: the server is asked again (and here cannot answer).
    running = false;
    await expect(local.requireWorker()).rejects.toThrow();
  });
});

describe('toHttpError', () => {
  const failed = (type: string, message: string, details: unknown[] = []) =>
    new WorkflowUpdateFailedError(
      'Workflow Update failed',
      ApplicationFailure.create({ type, message, details }),
    );

  it('maps by failure type: InvalidInput → 400 with its field, Deleted/Conflict → 409, Unavailable → 503', () => {
    const invalid = toHttpError(failed(FailureType.InvalidInput, 'config: refused', [{ field: 'config' }]));
    expect([invalid.status, invalid.extra.field]).toEqual([400, 'config']);
    expect(toHttpError(failed(FailureType.Deleted, 'workspace is deleted')).status).toBe(409);
    expect(toHttpError(failed(FailureType.Conflict, 'no')).status).toBe(409);
    const unavailable = toHttpError(failed(FailureType.Unavailable, 'db down'));
    expect([unavailable.status, unavailable.extra.retryAfterSeconds]).toEqual([503, 5]);
  });

  it('ignores the message text: a "conflict:" message of type InvalidInput is still a 400', () => {
    expect(toHttpError(failed(FailureType.InvalidInput, 'conflict: looks like one')).status).toBe(400);
  });

  it('anything that is not an Update failure is Temporal being unavailable', () => {
    expect(toHttpError(new Error('14 UNAVAILABLE')).status).toBe(503);
  });
});

describe('EntityClient eager start', () => {
  /** A client that records the options of each workflow start (and runs calls at once). */
  function recordingClient(): { client: Client; starts: Array<Record<string, unknown>> } {
    const starts: Array<Record<string, unknown>> = [];
    const client = {
      withDeadline: <R>(_deadline: number, fn: () => Promise<R>) => fn(),
      workflow: {
        start: async (_type: string, options: Record<string, unknown>) => {
          starts.push(options);
          return {};
        },
      },
    } as unknown as Client;
    return { client, starts };
  }
  const input = { workspaceId: 'w1', orgId: 'o1', backend: 'docker' as const, bootDeadlineMs: 60_000 };

  it('asks for it only when told to (a client on the worker’s connection in one process)', async () => {
    const eager = recordingClient();
    await new EntityClient(eager.client, 'q', { eagerStart: true }).start(input);
    expect(eager.starts[0]).toMatchObject({
      requestEagerStart: true,
      taskQueue: 'q',
      workflowId: 'workspace:w1',
    });

    const plain = recordingClient();
    await new EntityClient(plain.client, 'q').start(input);
    expect(plain.starts[0]).toMatchObject({ taskQueue: 'q', workflowId: 'workspace:w1' });
    expect(plain.starts[0]).not.toHaveProperty('requestEagerStart');
  });
});
