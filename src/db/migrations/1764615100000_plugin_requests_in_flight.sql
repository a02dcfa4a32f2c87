-- Up Migration
-- The orphan sweep looks for plugin requests left in flight with no run (their API stopped between
-- recording the request and starting its workflow): only those rows, oldest first.
CREATE INDEX workspace_plugins_in_flight ON workspace_plugins (updated_at)
  WHERE status IN ('installing', 'uninstalling');

-- Down Migration
DROP INDEX workspace_plugins_in_flight;
