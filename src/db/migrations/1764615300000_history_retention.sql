-- Up Migration
-- HISTORY_RETENTION_DAYS: the orphan sweep deletes past generations' boot events and kept consoles,
-- and status transitions, older than the retention (src/db/history.ts). These indexes let it find
-- them by age without reading the tables whole; all three tables are written a few times per
-- generation, not per call, so the indexes cost little.
CREATE INDEX boot_events_received_at ON boot_events (received_at);
CREATE INDEX workspace_transitions_ts ON workspace_transitions (ts);
CREATE INDEX console_logs_captured_at ON console_logs (captured_at);

-- Down Migration
DROP INDEX console_logs_captured_at;
DROP INDEX workspace_transitions_ts;
DROP INDEX boot_events_received_at;
