import { defineConfig } from 'vitest/config';

const common = {
  // Integration tests start containers, workflows and servers: seconds, not milliseconds.
  testTimeout: 120_000,
  hookTimeout: 300_000,
  teardownTimeout: 60_000,
  // Child processes, not threads: native modules (Temporal core, PGlite wasm) and process-wide
  // state (signals, env) stay apart from the runner's.
  pool: 'forks',
  // Every answer the test stack's client reads is checked against /openapi.json's schemas, so
  // the whole suite keeps the document true (test/support/openapi-check.ts).
  env: { WO_OPENAPI_CHECK: '1' },
  // The temporary directories a file makes (test/support/temp-dirs.ts) go when it ends.
  setupFiles: ['test/setup/temp-dirs.ts'] as string[],
} as const;

// Three groups, one after another (sequence.groupOrder). The unit tests need no service and are
// light: two files at a time. The workflow tests (each on its own time-skipping server) and the
// replay check: one at a time, since under two lanes a starved workflow thread let a query pass
// its 5 s isolate timeout. Then the files that share one dockerd, Temporal dev server, PostgreSQL
// and moto: one at a time. Not all of them keep 2 cores busy (2026-12-03, whole stack group: ~55 %
// of the CPU time; crash-window, plugins, races, self-healing 82-95 %, faults and entity-faults,
// waiting on recovery timers, 24-29 %), but side by side they would need services of their own:
// moto is reset per file, sweeps read the whole database, one file restarts dockerd.
// `npx vitest run --project unit --project workflow` runs the first two alone, with no service.
const UNIT = ['test/unit/**/*.test.ts'];
const WORKFLOW = ['test/workflow/**/*.test.ts', 'test/replay/**/*.test.ts'];

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          ...common,
          name: 'unit',
          include: UNIT,
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...common,
          name: 'workflow',
          include: WORKFLOW,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          ...common,
          name: 'stack',
          include: ['test/**/*.test.ts'],
          exclude: [...UNIT, ...WORKFLOW],
          globalSetup: ['test/setup/global-setup.ts'],
          // A fresh moto per file (see the file): instances piled up over a run slowed every EC2 call.
          setupFiles: [...common.setupFiles, 'test/setup/fresh-ec2.ts'],
          // One file at a time: a 2-core machine, and these files share one dockerd and one
          // Temporal dev server (SQLite, single connection).
          fileParallelism: false,
          // And in one process: a fresh one per file cost ~1.5 s each (mostly importing the service
          // again), ~110 s a run. Every file closes what it starts, and what one leaves running (a
          // timer, a socket) now surfaces as an error in the run instead of dying with its process;
          // the module state they share (the proxy's pools and caches, the SSH handshake limiter)
          // is keyed by workspace or address and winds down with what it served.
          isolate: false,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
