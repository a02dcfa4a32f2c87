/**
 * The child's side of child.ts. Imports nothing from the bench's parent-side modules: those install
 * SIGINT handlers (provision-util.ts), and a child must ignore SIGINT.
 */
export interface Call {
  id: number;
  method: string;
  arg: unknown;
}

export type Answer = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The child's side: answers calls with `handlers`; runs `onStop` once on SIGTERM or a lost parent. */
export function serveChild(
  handlers: Record<string, (arg: never) => Promise<unknown>>,
  onStop: () => Promise<void>,
): void {
  process.on('SIGINT', () => undefined);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    onStop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`stopping failed: ${errorText(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('disconnect', stop);
  process.on('message', (msg: Call) => {
    const handler = handlers[msg.method];
    const answer = (a: Answer) => {
      if (process.connected) process.send?.(a);
    };
    if (!handler) return answer({ id: msg.id, ok: false, error: `no method ${msg.method}` });
    handler(msg.arg as never).then(
      (value) => answer({ id: msg.id, ok: true, value }),
      (err: unknown) => answer({ id: msg.id, ok: false, error: errorText(err) }),
    );
  });
}
