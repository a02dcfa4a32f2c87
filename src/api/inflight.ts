/**
 * Handlers still running. An A2A call logs its activity row after its answer may already be cut
 * (caller gone, connections closed at shutdown), so "no connection left" is not "no row left to
 * write": a shutdown waits for these (bounded), then for the rows they handed to the batcher.
 */
export class InFlight {
  private n = 0;
  private waiters: Array<() => void> = [];
  /** Set when the process begins to shut down: a call cut from now on was cut by it. */
  closing = false;

  get count(): number {
    return this.n;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    this.n++;
    try {
      return await fn();
    } finally {
      if (--this.n === 0) for (const wake of this.waiters.splice(0)) wake();
    }
  }

  /** Resolves true once nothing runs, or false when `timeoutMs` passed first. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.n === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        resolve(false);
      }, timeoutMs);
      this.waiters.push(wake);
    });
  }
}
