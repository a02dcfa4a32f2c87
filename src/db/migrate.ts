import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runner } from 'node-pg-migrate';

/** Where the SQL migrations live, resolved from this module so it works from any cwd (and from dist/). */
export const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations', import.meta.url));
export const MIGRATIONS_TABLE = 'pgmigrations';

export type DbLog = (message: string) => void;

/**
 * Applies every pending migration (direction up). A no-op on an up-to-date database.
 *
 * `target` is a connection string, a connected client, or a pool. With a pool we borrow one of its
 * clients instead of opening a new connection: embedded PGlite serves a single connection, which
 * the pool may already hold.
 */
export async function migrate(target: string | pg.Pool | pg.ClientBase, log?: DbLog): Promise<string[]> {
  if (target instanceof pg.Pool) {
    const client = await target.connect();
    try {
      return await runMigrations(client, log);
    } finally {
      client.release();
    }
  }
  if (typeof target === 'string') {
    const client = new pg.Client({ connectionString: target });
    await client.connect();
    try {
      return await runMigrations(client, log);
    } finally {
      await client.end();
    }
  }
  return runMigrations(target, log);
}

async function runMigrations(client: pg.ClientBase, log?: DbLog): Promise<string[]> {
  const quiet = (): void => {};
  const applied = await runner({
    dbClient: client,
    dir: MIGRATIONS_DIR,
    migrationsTable: MIGRATIONS_TABLE,
    direction: 'up',
    // All pending migrations in one transaction: a failed deploy leaves the schema untouched.
    singleTransaction: true,
    // Several processes (API, workers) may start together against one database: queue, don't fail.
    advisoryLockMode: 'wait',
    checkOrder: true,
    // node-pg-migrate logs every statement to console by default; keep only our one-line summary.
    logger: { debug: quiet, info: quiet, warn: log ?? quiet, error: log ?? quiet },
  });
  const names = applied.map((m) => m.name);
  log?.(names.length > 0 ? `migrations applied: ${names.join(', ')}` : 'migrations: up to date');
  return names;
}
