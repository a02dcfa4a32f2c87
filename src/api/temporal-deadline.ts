/**
 * Temporal calls the API makes on a request's behalf end by a deadline: the contract's 503 comes
 * within 5 s, never after the SDK's own retries (~20 s against a stopped server, for ever against
 * a network that drops packets).
 */
import type { Client } from '@temporalio/client';

export class DeadlineExceeded extends Error {}

/**
 * Runs a Temporal call under a gRPC deadline, with a timer as backstop (a call that retries
 * internally, or a connection that never comes up, still ends on time).
 */
export async function withDeadline<T>(client: Client, call: () => Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const backstop = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DeadlineExceeded('temporal call timed out')),
      Math.max(0, deadline - Date.now()) + 250,
    );
  });
  try {
    return await Promise.race([client.withDeadline(deadline, call), backstop]);
  } finally {
    clearTimeout(timer);
  }
}
