/**
 * One computation shared by every request that asks while it runs, its answer reused for
 * `reuseMs` after it settles. For the unauthenticated routes that cost other systems work per
 * call (/readyz: the database, Temporal and each backend, an EC2 API call among them; /metrics:
 * the database and the workers' pages): however often anyone asks, a process does that work at
 * most once per `reuseMs`, so a flood of probes cannot spend the account's EC2 request quota or
 * the request pool the API's own calls need. A failed computation is not kept.
 */
export function sharedResult<T>(compute: () => Promise<T>, reuseMs: number): () => Promise<T> {
  let running: Promise<T> | undefined;
  let last: { at: number; value: T } | undefined;
  return () => {
    if (running) return running;
    if (last && Date.now() - last.at < reuseMs) return Promise.resolve(last.value);
    const p = compute().then((value) => {
      last = { at: Date.now(), value };
      return value;
    });
    running = p;
    // Cleared however it ends; the rejection itself is the callers' to see.
    p.then(
      () => (running = undefined),
      () => (running = undefined),
    );
    return p;
  };
}
