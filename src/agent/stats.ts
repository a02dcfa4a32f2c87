/** Request counters the heartbeat reports: tasks in flight and the error rate since last beat. */
export class AgentStats {
  activeTasks = 0;
  private requests = 0;
  private errors = 0;

  taskStarted(): void {
    this.activeTasks++;
    this.requests++;
  }

  taskEnded(failed: boolean): void {
    this.activeTasks = Math.max(0, this.activeTasks - 1);
    if (failed) this.errors++;
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
