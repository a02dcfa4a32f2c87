import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/global-setup.ts'],
    // A fresh moto per file (see the file): instances piled up over a run slowed every EC2 call.
    setupFiles: ['test/setup/fresh-ec2.ts'],
    // Integration tests start containers, workflows and servers: seconds, not milliseconds.
    testTimeout: 120_000,
    hookTimeout: 300_000,
    teardownTimeout: 60_000,
    // Child processes per file: native modules (Temporal core, PGlite wasm) and process-wide state
    // (signals, env) stay isolated between files.
    pool: 'forks',
    // One file at a time: a 2-core machine, and integration files share one dockerd and one
    // Temporal dev server (SQLite, single connection). Revisit when unit tests grow.
    fileParallelism: false,
    // Every answer the test stack's client reads is checked against /openapi.json's schemas, so
    // the whole suite keeps the document true (test/support/openapi-check.ts).
    env: { WO_OPENAPI_CHECK: '1' },
  },
});
