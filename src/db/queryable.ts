import type pg from 'pg';

/** A pool or a client inside a transaction: every query module takes this. */
export type Queryable = Pick<pg.Pool, 'query'>;

/** A pool that can also hand out a connection of its own (for a transaction). */
export type Transactable = Pick<pg.Pool, 'query' | 'connect'>;

export async function inTransaction<T>(
  pool: Transactable,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
