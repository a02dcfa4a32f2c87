-- Up Migration
-- Running totals of the sweeps, for /metrics: the sweeps run in the worker, /metrics is served by
-- the API (another process in production), so the worker adds each run's figures here.
-- One row per (sweep, metric, label): the table never grows with the number of runs.
CREATE TABLE sweep_stats (
  sweep       text NOT NULL,
  metric      text NOT NULL,
  label       text NOT NULL DEFAULT '',
  value       double precision NOT NULL DEFAULT 0,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (sweep, metric, label)
);

-- Down Migration
DROP TABLE sweep_stats;
