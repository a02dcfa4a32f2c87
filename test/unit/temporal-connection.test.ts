/**
 * The API's Temporal connection closes safely while a call is between the SDK's retries (what a
 * shutdown during a Temporal outage meets): the call fails with CANCELLED instead of its next
 * attempt throwing "Channel has been shut down" from a timer. The SDK's plain connection, in the
 * same moment, crashes its process: the control that shows the race is real.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../setup/services.js';
import { TS_NODE_ARGS } from '../support/ts-node-args.js';

function closeBetweenRetries(kind: 'plain' | 'guarded') {
  const script = `
    import { once } from 'node:events';
    import { createServer } from 'node:net';
    import { InterceptingCall, ListenerBuilder } from '@grpc/grpc-js';
    import { Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
    import { connectTemporal } from './src/api/temporal-connection.ts';

    // A port nothing listens on: every attempt fails UNAVAILABLE, and the SDK retries on a timer.
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const address = '127.0.0.1:' + probe.address().port;
    await new Promise((resolve) => probe.close(resolve));

    // Under the retry interceptor: sees the first attempt fail, right before the retry is scheduled.
    let failed;
    const firstFailure = new Promise((resolve) => (failed = resolve));
    const spy = (options, nextCall) =>
      new InterceptingCall(nextCall(options), {
        start(metadata, _listener, next) {
          next(metadata, new ListenerBuilder().withOnReceiveStatus((s, n) => { failed(s.code); n(s); }).build());
        },
      });
    const connection = ${
      kind === 'plain'
        ? 'Connection.lazy({ address, interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions()), spy] })'
        : 'await connectTemporal(address, { lazy: true, below: [spy] })'
    };
    connection.workflowService.getSystemInfo({}).then(
      () => console.log('answered'),
      (err) => console.log('rejected', err.code, err.details),
    );
    console.log('first attempt', await firstFailure);
    await new Promise((resolve) => setImmediate(resolve));
    await connection.close();
    console.log('closed');
  `;
  return spawnSync(process.execPath, [...TS_NODE_ARGS, '--input-type=module', '-e', script], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('the API Temporal connection closed between retries', () => {
  it('plain SDK connection: the next attempt throws from its timer and the process dies', () => {
    const run = closeBetweenRetries('plain');
    expect(run.stdout).toContain('first attempt 14'); // UNAVAILABLE
    expect(run.stdout).toContain('closed');
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('Channel has been shut down');
  });

  it('guarded connection: the call fails with CANCELLED and the process exits cleanly', () => {
    const run = closeBetweenRetries('guarded');
    expect(run.stdout).toContain('first attempt 14');
    expect(run.stdout).toContain('closed');
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain('rejected 1 the Temporal connection was closed'); // CANCELLED
    expect(run.stderr).not.toContain('Channel has been shut down');
  });
});
