import { parseBundle, type Bundle } from './bundle.js';
import { die } from './log.js';
import { platformError, type PlatformClient } from './platform.js';

/**
 * How long an unreachable platform is retried before the agent gives up. Kept inside the platform's
 * re-fetch window (2 min after a bootstrap token's first use): a fetch whose answer was lost (timed
 * out, connection cut) is retried with the same token and gets the same bundle back. Nothing
 * restarts an agent that gave up (neither docker nor EC2 restarts it in place: the platform boots a
 * new generation), so this one retry loop is what carries a boot over a lost answer.
 */
export const BOOTSTRAP_DEADLINE_MS = 90_000;

/**
 * Fetches the bundle with the given bearer (bootstrap token on first boot, workspace token on a
 * reboot). A lost answer (network error, timeout) or a 5xx is retried; a refusal (401 unknown or
 * spent token, 409 stale generation) is final and ends the process with one explanatory line.
 */
export async function fetchBundle(client: PlatformClient, token: string): Promise<Bundle> {
  const { res, error } = await client.callWithRetry(
    'GET',
    '/v1/registry/bootstrap',
    token,
    undefined,
    BOOTSTRAP_DEADLINE_MS,
  );
  if (!res) {
    die(
      `platform unreachable at ${client.baseUrl} for ${BOOTSTRAP_DEADLINE_MS / 1000}s: ${error ?? 'no answer'}`,
    );
  }
  if (res.status !== 200) {
    const e = platformError(res);
    const verb = res.status >= 500 ? 'failed' : 'refused';
    die(`bootstrap ${verb} (${res.status} ${e.code}): ${e.message}`);
  }
  try {
    return parseBundle(res.body);
  } catch (err) {
    die(`bootstrap answer invalid: ${err instanceof Error ? err.message : String(err)}`);
  }
}
