import { BackendError } from '../backend.js';

/**
 * EC2 API error → typed backend error. The SDK has already retried throttling and transient
 * failures with backoff (standard retry mode, `maxAttempts`) by the time an error reaches here.
 */

interface SdkErrorShape {
  name?: unknown;
  Code?: unknown;
  code?: unknown;
  message?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

const shape = (err: unknown): SdkErrorShape =>
  typeof err === 'object' && err !== null ? (err as SdkErrorShape) : {};

/** The EC2 error code (`InvalidAMIID.NotFound`, `RequestLimitExceeded`…) of a service error, else undefined. */
export function ec2ErrorCode(err: unknown): string | undefined {
  const e = shape(err);
  if (typeof e.Code === 'string') return e.Code;
  // Service exceptions carry $fault ('client' | 'server'); their name is the EC2 error code.
  if (e.$fault !== undefined && typeof e.name === 'string') return e.name;
  return undefined;
}

export function httpStatusOf(err: unknown): number | undefined {
  const status = shape(err).$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

function messageOf(err: unknown): string {
  const m = shape(err).message;
  return typeof m === 'string' && m !== '' ? m : String(err);
}

/** Codes that will not heal by retrying: bad image/subnet/group, no permission, quota, bad input. */
const PERMANENT_CODES = new Set([
  'UnauthorizedOperation',
  'AuthFailure',
  'OptInRequired',
  'Blocked',
  'InsufficientInstanceCapacity',
  'InstanceLimitExceeded',
  'VcpuLimitExceeded',
  'InvalidParameterValue',
  'InvalidParameter',
  'InvalidParameterCombination',
  'MissingParameter',
  'UnknownParameter',
  'InvalidUserData.Malformed',
  'InvalidInstanceType',
  'Unsupported',
  'UnsupportedOperation',
  'IdempotentParameterMismatch',
]);
const PERMANENT_PREFIXES = [
  'InvalidAMIID.',
  'InvalidSubnetID.',
  'InvalidGroup.',
  'InvalidSecurityGroupID.',
  'InvalidKeyPair.',
  'InvalidBlockDeviceMapping',
];

const THROTTLING_CODES = new Set([
  'RequestLimitExceeded',
  'Throttling',
  'ThrottlingException',
  'RequestThrottled',
  'RequestThrottledException',
  'EC2ThrottledException',
  'TooManyRequestsException',
]);

/** Node socket-level failures: the endpoint did not answer, which proves nothing about the instance. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNABORTED',
]);

export function isThrottling(err: unknown): boolean {
  const code = ec2ErrorCode(err);
  return (code !== undefined && THROTTLING_CODES.has(code)) || httpStatusOf(err) === 429;
}

/** The instance id names nothing (any more). Only this proves absence. */
export function isInstanceNotFound(err: unknown): boolean {
  const code = ec2ErrorCode(err);
  return code === 'InvalidInstanceID.NotFound' || code === 'InvalidInstanceID.Malformed';
}

/** A security group id names nothing (any more). */
export function isGroupNotFound(err: unknown): boolean {
  const code = ec2ErrorCode(err);
  return code === 'InvalidGroup.NotFound' || code === 'InvalidSecurityGroupID.NotFound';
}

export function isPermanentCode(code: string): boolean {
  return PERMANENT_CODES.has(code) || PERMANENT_PREFIXES.some((p) => code.startsWith(p));
}

/**
 * - permanent: the codes above, and any other 4xx answer from EC2 (the request itself is wrong);
 * - not_found: the instance id does not exist;
 * - transient: throttling, 5xx, timeouts, socket errors, anything without an EC2 answer.
 * The message names the EC2 code so an operator sees `InvalidAMIID.NotFound`, not a generic text.
 */
export function toBackendError(err: unknown, what: string): BackendError {
  if (err instanceof BackendError) return err;
  const code = ec2ErrorCode(err);
  const status = httpStatusOf(err);
  const detail = `${what}: ${code ? `${code}: ` : ''}${messageOf(err)}`;
  if (code !== undefined) {
    if (isInstanceNotFound(err)) return new BackendError('not_found', detail, { cause: err });
    if (isThrottling(err)) return new BackendError('transient', detail, { cause: err });
    if (isPermanentCode(code)) return new BackendError('permanent', detail, { cause: err });
    if (status !== undefined && status >= 400 && status < 500 && status !== 408) {
      return new BackendError('permanent', detail, { cause: err });
    }
    return new BackendError('transient', detail, { cause: err });
  }
  const sysCode = shape(err).code;
  if (typeof sysCode === 'string' && NETWORK_CODES.has(sysCode)) {
    return new BackendError('transient', `${what}: ${sysCode}: ${messageOf(err)}`, { cause: err });
  }
  return new BackendError('transient', detail, { cause: err });
}
