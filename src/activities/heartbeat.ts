import { Context } from '@temporalio/activity';

/** Heartbeats while a long call runs, so a dead worker is noticed by the heartbeat timeout. */
export async function withHeartbeat<T>(fn: () => Promise<T>): Promise<T> {
  let ctx: Context | null = null;
  try {
    ctx = Context.current();
  } catch {
    ctx = null; // called outside an activity (unit tests)
  }
  const timer = ctx ? setInterval(() => ctx.heartbeat(), 2000) : undefined;
  try {
    return await fn();
  } finally {
    if (timer) clearInterval(timer);
  }
}
