-- Up Migration
-- Per-workspace cron schedules. This table is the source of truth; each row is mirrored by a
-- Temporal Schedule `workspace:<workspace_id>:schedule:<id>` that starts one run per firing. The
-- prompt lives only here (a run reads it), so it is never in a schedule's definition or a run's
-- history. `last_run_*` is the outcome of the most recent run (scheduled or run-now).
CREATE TABLE schedules (
  id               text PRIMARY KEY,
  workspace_id     text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  cron             text NOT NULL,
  timezone         text NOT NULL DEFAULT 'UTC',
  prompt           text NOT NULL,
  enabled          boolean NOT NULL DEFAULT true,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  -- 'ok' | 'failed' | 'skipped'
  last_run_status  text,
  last_run_at      timestamptz,
  last_run_error   text,
  last_run_ms      integer
);
CREATE INDEX schedules_workspace ON schedules (workspace_id, created_at, id);

-- Down Migration
DROP TABLE schedules;
