import { EC2Client } from '@aws-sdk/client-ec2';

export interface Ec2ClientOptions {
  region: string;
  /** moto / ec2-sim; unset = AWS's regional endpoint. */
  endpoint?: string;
  /** Static credentials (moto, CI); unset = the SDK's default provider chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** SDK attempts per call, with the standard mode's exponential backoff on throttling and 5xx. */
  maxAttempts?: number;
  /** TCP connect bound per attempt. */
  connectionTimeoutMs?: number;
  /** Bound on one request once connected, so a wedged endpoint ends as a transient error. */
  requestTimeoutMs?: number;
}

/**
 * An EC2 client configured the way the backend expects: standard retry mode (throttling such as
 * `RequestLimitExceeded` is retried with backoff before Temporal's own retries apply) and bounded
 * connect/request times, so status() of an unreachable endpoint answers `unknown` promptly.
 */
export function createEc2Client(opts: Ec2ClientOptions): EC2Client {
  return new EC2Client({
    region: opts.region,
    ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint }),
    ...(opts.credentials === undefined ? {} : { credentials: opts.credentials }),
    retryMode: 'standard',
    maxAttempts: opts.maxAttempts ?? 5,
    requestHandler: {
      connectionTimeout: opts.connectionTimeoutMs ?? 5_000,
      requestTimeout: opts.requestTimeoutMs ?? 30_000,
    },
  });
}
