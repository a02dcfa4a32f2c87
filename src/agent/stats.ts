/** The largest spend a heartbeat can carry (the platform stores it as int4). */
const SPENT_MAX = 2_147_483_647;

/**
 * Request counters the heartbeat reports: tasks in flight, the error rate since last beat, and what
 * this generation spent so far (only grows; a new generation counts from 0).
 */
export class AgentStats {
  activeTasks = 0;
  private requests = 0;
  private errors = 0;

  /**
   * @param spentCents what this generation spent before this process (a reboot resumes the count)
   * @param onSpend called with the new total after each charge (the agent saves it)
   */
  constructor(
    public spentCents = 0,
    private readonly onSpend: (spentCents: number) => void = () => undefined,
  ) {}

  taskStarted(): void {
    this.activeTasks++;
    this.requests++;
  }

  taskEnded(failed: boolean): void {
    this.activeTasks = Math.max(0, this.activeTasks - 1);
    if (failed) this.errors++;
  }

  /** Adds a task's cost to the spend reported in heartbeats. */
  charge(cents: number): void {
    if (cents <= 0) return;
    this.spentCents = Math.min(SPENT_MAX, this.spentCents + cents);
    this.onSpend(this.spentCents);
  }

  /** A request refused before it became a task (bad JSON, unknown method). */
  rejected(): void {
    this.requests++;
    this.errors++;
  }

  /** Error rate over the window since the previous call, then starts a new window. */
  takeErrorRate(): number {
    const rate = this.requests === 0 ? 0 : this.errors / this.requests;
    this.requests = 0;
    this.errors = 0;
    return rate;
  }
}
