-- Up Migration
-- Running totals of the metrics the worker observes, for /metrics: the workflows and activities run
-- in the worker, /metrics is served by the API (other processes in production), so the worker adds
-- each observation here and whichever API is scraped reports the deployment's totals. One row per
-- (metric, label set, series): a counter's value (series ''), or a histogram's cumulative bucket
-- (series = its upper bound, '+Inf'), 'sum' and 'count'. It never grows with the observations.
CREATE TABLE metric_totals (
  name        text NOT NULL,
  labels      jsonb NOT NULL,
  series      text NOT NULL DEFAULT '',
  value       double precision NOT NULL DEFAULT 0,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, labels, series)
);
-- The last generation whose provision was observed: each generation is counted once, however
-- often the activity that observes it is retried.
ALTER TABLE workspaces ADD COLUMN provision_observed_generation integer;

-- Down Migration
ALTER TABLE workspaces DROP COLUMN provision_observed_generation;
DROP TABLE metric_totals;
