-- Up Migration
-- The entity's automatic restarts (restart policy): how many in the current streak (reset after a
-- healthy period) and why the last one happened; written with the transitions that change them.
ALTER TABLE workspaces ADD COLUMN restart_count integer NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN last_restart_reason text;

-- Down Migration
ALTER TABLE workspaces DROP COLUMN last_restart_reason;
ALTER TABLE workspaces DROP COLUMN restart_count;
