import { budgetOf } from '../db/budget.js';
import type { Queryable } from '../db/queryable.js';
import { isOverBudget } from '../domain/budget.js';
import { HttpError } from './errors.js';

/**
 * At or over its budget a workspace takes no more work: A2A calls, and starts or restarts that
 * would only have the budget sweep stop it again, answer 402 until `limitCents` is raised.
 */
export async function requireBudget(db: Queryable, workspaceId: string): Promise<void> {
  const b = await budgetOf(db, workspaceId);
  if (b && isOverBudget(b)) {
    throw new HttpError(
      402,
      'budget_exceeded',
      `workspace spent ${b.spentCents} of its ${b.limitCents} cent budget; raise limitCents to continue`,
    );
  }
}
