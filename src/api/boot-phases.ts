/** Per-phase durations of a boot log's events (pure: the route and its tests share it). */

export interface TimedBootEvent {
  generation: number;
  ts: Date;
}

/**
 * For each event (oldest first), the milliseconds until the next event of the same generation:
 * how long that phase lasted. Null for a generation's last event (its phase has not ended, or the
 * boot stopped there). Never negative: an agent that re-sent an event late does not make time run
 * backwards.
 */
export function phaseDurations(events: readonly TimedBootEvent[]): (number | null)[] {
  const out: (number | null)[] = new Array<number | null>(events.length).fill(null);
  const nextTs = new Map<number, number>();
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    const next = nextTs.get(e.generation);
    const ts = e.ts.getTime();
    if (next !== undefined) out[i] = Math.max(0, next - ts);
    nextTs.set(e.generation, ts);
  }
  return out;
}
