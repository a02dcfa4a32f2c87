import pg from 'pg';

/**
 * Telling "the database is away" from a bug, so that the API answers 503 with Retry-After (as it
 * does for Temporal) instead of 500. A socket error (ECONNREFUSED, ETIMEDOUT…) says nothing of whose
 * socket it was (dockerd's fails alike), so the request pool marks the ones it raises; pg's and
 * PostgreSQL's own are known by their text or SQLSTATE.
 */
const FROM_DATABASE = Symbol('wo.database-unavailable');

/**
 * SQLSTATEs of a server that cannot serve now: connection exceptions (08), shutting down (57P01–03),
 * out of resources (53000 insufficient_resources, 53100 disk_full, 53200 out_of_memory, 53300
 * too_many_connections). Not 53400 (a configured limit: no retry lifts it).
 */
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[1-3]|53[0-3]00)$/;

/** pg's and pg-pool's own failures to reach or keep a connection (they carry no SQLSTATE). */
const UNAVAILABLE_TEXT =
  /^(timeout exceeded when trying to connect|Connection terminated|Query read timeout|Client has encountered a connection error|Cannot use a pool after calling end)/;

export function databaseUnavailable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  if (FROM_DATABASE in err) return true;
  if (err instanceof pg.DatabaseError)
    return typeof err.code === 'string' && UNAVAILABLE_SQLSTATE.test(err.code);
  return err instanceof Error && UNAVAILABLE_TEXT.test(err.message);
}

function mark(err: unknown): unknown {
  // A socket error while reaching the database (the only kind of failure a connect can have that
  // is not the server's answer): ours to call unavailable.
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof Error && typeof code === 'string' && /^E[A-Z_]+$/.test(code)) {
    Object.defineProperty(err, FROM_DATABASE, { value: true });
  }
  return err;
}

/**
 * A pool whose socket failures are marked as the database's (see databaseUnavailable). Only the
 * promise forms are wrapped: pg-pool's query() reaches its connection through the callback form.
 */
export class MarkingPool extends pg.Pool {
  // The overloads of pg.Pool's query/connect, wrapped as one: `any` as theirs is.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override query(...args: any[]): any {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const out = (super.query as (...a: any[]) => any)(...args);
    if (out instanceof Promise) return out.catch((err: unknown) => Promise.reject(mark(err)));
    return out;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override connect(...args: any[]): any {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const out = (super.connect as (...a: any[]) => any)(...args);
    if (out instanceof Promise) return out.catch((err: unknown) => Promise.reject(mark(err)));
    return out;
  }
}
