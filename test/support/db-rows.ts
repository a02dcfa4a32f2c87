/** Rows for tests that exercise the database alone (no entity, no backend behind them). */
import type { Queryable, Transactable } from '../../src/db/queryable.js';
import { insertWorkspace } from '../../src/db/workspaces.js';

/** A docker workspace row of `orgId` with an empty config: only the row matters to such tests. */
export async function insertBareWorkspace(
  db: Queryable,
  row: { id: string; orgId: string; name: string },
): Promise<void> {
  await insertWorkspace(db, {
    ...row,
    backend: 'docker',
    template: null,
    runtime: 'echo',
    config: {} as never, // no config is read from these rows
    workflowId: `ws-${row.id}`,
    parentId: null,
    budgetLimitCents: null,
  });
}

/** The `connect` of a fake database that answers single statements only, never a transaction. */
export const noTransactions: Pick<Transactable, 'connect'> = {
  connect: (() =>
    Promise.reject(new Error('this fake database runs no transactions'))) as Transactable['connect'],
};
