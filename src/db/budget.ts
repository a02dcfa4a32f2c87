/**
 * Budget queries. Spend is kept per generation (`workspace_spend`) and only raised: the workspace's
 * spend is the sum of its generations' highest reports (src/domain/budget.ts, `totalSpent`).
 */
import type { BackendKind } from '../backends/backend.js';
import { SPENDING_STATUSES, type Budget } from '../domain/budget.js';
import type { Queryable } from './queryable.js';

/** Raises the generation's spend to `spentCents` (never lowers it: a replay changes nothing). */
export async function recordSpend(
  db: Queryable,
  workspaceId: string,
  generation: number,
  spentCents: number,
): Promise<void> {
  await db.query(
    `INSERT INTO workspace_spend (workspace_id, generation, spent_cents) VALUES ($1, $2, $3)
     ON CONFLICT (workspace_id, generation) DO UPDATE
       SET spent_cents = GREATEST(workspace_spend.spent_cents, EXCLUDED.spent_cents), updated_at = now()
       WHERE EXCLUDED.spent_cents > workspace_spend.spent_cents`,
    [workspaceId, generation, spentCents],
  );
}

const SPENT = `(SELECT COALESCE(SUM(spent_cents), 0)::bigint FROM workspace_spend s WHERE s.workspace_id = w.id)`;

/** The workspace's limit and spend; null when there is no such workspace. */
export async function budgetOf(db: Queryable, workspaceId: string): Promise<Budget | null> {
  const { rows } = await db.query<{ limit_cents: number | null; spent_cents: string }>(
    `SELECT w.budget_limit_cents AS limit_cents, ${SPENT} AS spent_cents FROM workspaces w WHERE w.id = $1`,
    [workspaceId],
  );
  const r = rows[0];
  return r ? { limitCents: r.limit_cents, spentCents: Number(r.spent_cents) } : null;
}

export async function setBudgetLimit(
  db: Queryable,
  workspaceId: string,
  limitCents: number | null,
): Promise<void> {
  await db.query(`UPDATE workspaces SET budget_limit_cents = $2, updated_at = now() WHERE id = $1`, [
    workspaceId,
    limitCents,
  ]);
}

export interface OverBudgetWorkspace extends Budget {
  workspaceId: string;
  backend: BackendKind;
  status: string;
  limitCents: number;
}

/**
 * The budget sweep's one query: workspaces of the given backends that may still spend (see
 * SPENDING_STATUSES) and whose spend reached their limit, oldest id first.
 */
export async function overBudgetWorkspaces(
  db: Queryable,
  backends: readonly BackendKind[],
): Promise<OverBudgetWorkspace[]> {
  const { rows } = await db.query<{
    id: string;
    backend: BackendKind;
    status: string;
    limit_cents: number;
    spent_cents: string;
  }>(
    `SELECT w.id, w.backend, w.status, w.budget_limit_cents AS limit_cents,
            COALESCE(SUM(s.spent_cents), 0)::bigint AS spent_cents
       FROM workspaces w LEFT JOIN workspace_spend s ON s.workspace_id = w.id
      WHERE w.budget_limit_cents IS NOT NULL AND w.backend = ANY($1::text[]) AND w.status = ANY($2::text[])
      GROUP BY w.id
     HAVING COALESCE(SUM(s.spent_cents), 0) >= w.budget_limit_cents
      ORDER BY w.id`,
    [[...backends], [...SPENDING_STATUSES]],
  );
  return rows.map((r) => ({
    workspaceId: r.id,
    backend: r.backend,
    status: r.status,
    limitCents: r.limit_cents,
    spentCents: Number(r.spent_cents),
  }));
}
