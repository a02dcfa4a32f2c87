import { readFileSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { migrate, type DbLog } from './migrate.js';
import { MarkingPool } from './unavailable.js';

export interface Database {
  pool: pg.Pool;
  /**
   * The pool the API's requests use: every statement bounded (DB_REQUEST_TIMEOUT_MS), so that a
   * database that stops answering fails a request (503) instead of holding it for ever. Separate
   * from `pool` because the worker's sweeps and the migrations may run longer. The same pool as
   * `pool` for embedded PGlite (one session, in this process: it cannot stall on its own).
   */
  requestPool: pg.Pool;
  close(): Promise<void>;
  /** True when served by in-process PGlite: one connection only, so one process owns the data. */
  embedded: boolean;
  /** A new client outside the pool (a dedicated LISTEN connection); absent for embedded PGlite. */
  newClient?: () => pg.Client;
}

export interface OpenDatabaseOptions {
  /** A PostgreSQL URL. Unset = embedded PGlite under `${dataDir}/pglite`. */
  databaseUrl?: string;
  dataDir: string;
  log?: DbLog;
  /** External PostgreSQL: a connection wait's bound (default DB_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number;
  /** External PostgreSQL: the bound of one statement of the request pool (REQUEST_QUERY_TIMEOUT_MS). */
  requestTimeoutMs?: number;
}

/** Opens the database (external PostgreSQL or embedded PGlite) and applies pending migrations. */
export async function openDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  const db = opts.databaseUrl
    ? openExternal(
        opts.databaseUrl,
        opts.connectTimeoutMs ?? DB_CONNECT_TIMEOUT_MS,
        opts.requestTimeoutMs ?? REQUEST_QUERY_TIMEOUT_MS,
      )
    : await openEmbedded(opts.dataDir, opts.log);
  try {
    await migrate(db.pool, opts.log);
  } catch (err) {
    await db.close().catch(() => {});
    throw err;
  }
  return db;
}

/**
 * How long a request waits for a database connection (a free one from the pool, or a new one's
 * connect and startup) before it fails: api.md's "never a hang" for the database too.
 */
export const DB_CONNECT_TIMEOUT_MS = 5_000;
/** How long one statement of an API request may take before the request fails (503). */
export const REQUEST_QUERY_TIMEOUT_MS = 10_000;

function openExternal(databaseUrl: string, connectTimeoutMs: number, requestTimeoutMs: number): Database {
  const common = { connectionString: databaseUrl, max: 10, keepAlive: true };
  const pool = new pg.Pool({ ...common, connectionTimeoutMillis: connectTimeoutMs });
  const requestPool = new MarkingPool({
    ...common,
    connectionTimeoutMillis: connectTimeoutMs,
    // A statement past it may still commit: its caller learns that its outcome is unknown (the
    // activity batcher then never sends it again), not that it failed.
    query_timeout: requestTimeoutMs,
  });
  // An idle client can die (server restart); without a listener pg would crash the process.
  pool.on('error', () => {});
  requestPool.on('error', () => {});
  let closed: Promise<void> | undefined;
  return {
    pool,
    requestPool,
    embedded: false,
    newClient: () => new pg.Client({ connectionString: databaseUrl, keepAlive: true }),
    close: () => (closed ??= Promise.all([pool.end(), requestPool.end()]).then(() => undefined)),
  };
}

async function openEmbedded(dataDir: string, log?: DbLog): Promise<Database> {
  const dir = path.resolve(dataDir, 'pglite');
  await mkdir(dir, { recursive: true });
  const releaseLock = await lockDataDir(dir);
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(dir);
  } catch (err) {
    await releaseLock();
    throw err;
  }
  // Served over the wire protocol so the rest of the code uses one `pg` API for both modes.
  const server = new PGLiteSocketServer({
    db: pglite,
    host: '127.0.0.1',
    port: 0,
    // The pool below keeps ONE live connection (two would interleave their protocol messages in
    // PGlite's single session). But pg.Pool destroys its client on any query error and reconnects
    // at once, before the server has dropped the old socket: with the default limit of 1 that
    // reconnect is refused. The slack only covers such closing sockets.
    maxConnections: 4,
  });
  try {
    await server.start();
  } catch (err) {
    await pglite.close().catch(() => {});
    await releaseLock();
    throw err;
  }
  const [host, port] = splitHostPort(server.getServerConn());
  log?.(`database: embedded PGlite at ${dir} (served on ${host}:${port})`);

  const pool = new pg.Pool({
    host,
    port,
    user: 'postgres',
    database: 'postgres',
    // PGlite has one session: every query and transaction queues on one connection.
    max: 1,
    // Keep that connection for the process lifetime instead of reconnecting after idling.
    idleTimeoutMillis: 0,
  });
  pool.on('error', () => {});

  let closed: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    await pool.end().catch(() => {});
    await server.stop().catch(() => {});
    await pglite.close();
    await releaseLock();
  };
  return { pool, requestPool: pool, embedded: true, close: () => (closed ??= close()) };
}

/**
 * Two processes opening one PGlite folder would corrupt it: the first takes a pid lock file; a
 * second one fails with a clear message. A lock left by a dead process is taken over.
 */
async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  const lockPath = path.join(dir, '..', 'pglite.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockPath, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(lockPath, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(readFileSync(lockPath, 'utf8').trim());
      if (owner && isAlive(owner)) {
        throw new Error(
          `embedded database ${dir} is in use by process ${owner}; set DATABASE_URL or stop it`,
          { cause: err },
        );
      }
      await rm(lockPath, { force: true });
    }
  }
  throw new Error(`could not lock embedded database ${dir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed owner not yet reaped (a zombie: its parent, or an init that reaps late, has not
  // waited for it) still answers kill(0), but holds no file any more: the folder is free.
  return !isZombie(pid);
}

/** Linux: the process's state in /proc is Z (zombie) or X (dead). Elsewhere: not known, false. */
export function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state …: comm may hold spaces and parentheses, so read after the last ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return false;
  }
}

function splitHostPort(conn: string): [string, number] {
  const i = conn.lastIndexOf(':');
  const port = Number(conn.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port <= 0)
    throw new Error(`unexpected PGlite server address: ${conn}`);
  return [conn.slice(0, i), port];
}
