/**
 * The API's own Temporal connection (when no worker shares the process). The SDK retries a failed
 * call on a timer (~20 s of attempts against a stopped server), and a call the API stopped waiting
 * for (its 5 s deadline, a create's cleanup) may still be between attempts when the process shuts
 * down. Such a retry, after close(), would reach the closed channel and throw from its timer: an
 * uncaught exception (src/fatal.ts: exit 1, the rest of the shutdown cut, the activity rows' drain
 * among it) in an API stopped during a Temporal outage. A guard below the SDK's retry interceptor
 * ends those attempts with CANCELLED instead, which the SDK does not retry: the call just fails.
 */
import { InterceptingCall, Metadata, status, type Interceptor } from '@grpc/grpc-js';
import { Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';

const CLOSED_DETAILS = 'the Temporal connection was closed';

/** What an InterceptingCall wraps (grpc-js does not export the interface by name). */
type CallBelow = ConstructorParameters<typeof InterceptingCall>[0];

/** A call that never reaches the channel: it ends with CANCELLED as soon as it starts. */
function closedCall(): CallBelow {
  return {
    start(_metadata, listener) {
      setImmediate(() =>
        listener?.onReceiveStatus?.({
          code: status.CANCELLED,
          details: CLOSED_DETAILS,
          metadata: new Metadata(),
        }),
      );
    },
    cancelWithStatus: () => undefined,
    getPeer: () => '',
    sendMessageWithContext: () => undefined,
    sendMessage: () => undefined,
    startRead: () => undefined,
    halfClose: () => undefined,
    getAuthContext: () => null,
  };
}

/**
 * A Connection whose close() first turns every later attempt into CANCELLED. `lazy`: connects on
 * its first call (Connection.lazy) instead of now. `below`: interceptors under the guard, which see
 * each attempt that reaches the channel.
 */
export async function connectTemporal(
  address: string,
  opts: { lazy?: boolean; below?: Interceptor[] } = {},
): Promise<Connection> {
  let closed = false;
  const guard: Interceptor = (options, nextCall) =>
    closed ? new InterceptingCall(closedCall()) : new InterceptingCall(nextCall(options));
  const settings = {
    address,
    // The SDK's default retry (its own when no interceptors are given), with the guard below it.
    interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions()), guard, ...(opts.below ?? [])],
  };
  const connection = opts.lazy ? Connection.lazy(settings) : await Connection.connect(settings);
  const close = connection.close.bind(connection);
  // One method of this instance, so that every holder's close() (the Client's, the service's) is the guarded one.
  connection.close = async () => {
    closed = true;
    await close();
  };
  return connection;
}
