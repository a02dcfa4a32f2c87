import { defineConfig } from 'vitest/config';

// Tests that need no shared services (unit, and workflow tests on their own time-skipping server):
// `npx vitest run -c vitest.unit.config.ts` while iterating. `./dev test` runs them with the rest.
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/workflow/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
