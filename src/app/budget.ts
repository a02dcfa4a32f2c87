/**
 * Budget use cases: a workspace's limit and spend, and the guard that stops work at the limit
 * (A2A calls, starts and restarts).
 */
import { budgetOf, setBudgetLimit } from '../db/budget.js';
import type { Queryable } from '../db/queryable.js';
import { isOverBudget, type Budget } from '../domain/budget.js';
import { AppError, missing } from './errors.js';

/**
 * At or over its budget a workspace takes no more work: A2A calls, and starts or restarts that
 * would only have the budget sweep stop it again, are refused until `limitCents` is raised.
 */
export async function requireBudget(db: Queryable, workspaceId: string): Promise<void> {
  const b = await budgetOf(db, workspaceId);
  if (b) refuseOverBudget(b);
}

/** requireBudget's check on a budget already read (the A2A proxy reads it with the workspace). */
export function refuseOverBudget(b: Budget): void {
  if (isOverBudget(b)) {
    throw new AppError(
      'payment_required',
      'budget_exceeded',
      `workspace spent ${b.spentCents} of its ${b.limitCents} cent budget; raise limitCents to continue`,
    );
  }
}

/** The workspace's limit and what its agents reported spending. */
export async function getBudget(db: Queryable, workspaceId: string): Promise<Budget> {
  const b = await budgetOf(db, workspaceId);
  if (!b) throw missing();
  return b;
}

/** Sets (or, with null, lifts) the limit; the budget as it now is. */
export async function setLimit(
  db: Queryable,
  workspaceId: string,
  limitCents: number | null,
): Promise<Budget> {
  await setBudgetLimit(db, workspaceId, limitCents);
  return getBudget(db, workspaceId);
}
