/**
 * Budgets: a workspace's limit (`budget_limit_cents`, null = none) against what its agents reported
 * spending. Pure: the API, the A2A proxy and the budget sweep share these rules.
 */

/** What the budget sweep does with an over-budget workspace (BUDGET_POLICY). */
export const BUDGET_POLICIES = ['stop', 'notify', 'none'] as const;
export type BudgetPolicy = (typeof BUDGET_POLICIES)[number];

export interface Budget {
  limitCents: number | null;
  spentCents: number;
}

/** Spent reached the limit: nothing more may be spent (A2A answers 402, the sweep acts). */
export function isOverBudget(b: Budget): boolean {
  return b.limitCents !== null && b.spentCents >= b.limitCents;
}

/**
 * The workspace's spend from what each generation reported: every generation's highest report,
 * summed. A generation's agent counts from 0 (a restart starts a new count, never a new budget),
 * and a report lower than one already seen (a replay, a late delivery) changes nothing.
 */
export function totalSpent(reports: ReadonlyArray<{ generation: number; spentCents: number }>): number {
  const best = new Map<number, number>();
  for (const r of reports) best.set(r.generation, Math.max(best.get(r.generation) ?? 0, r.spentCents));
  let total = 0;
  for (const v of best.values()) total += v;
  return total;
}

/** The statuses in which a workspace may still spend, so the sweep stops it (any other is left alone). */
export const SPENDING_STATUSES = ['provisioning', 'online', 'degraded', 'offline', 'restarting'] as const;
