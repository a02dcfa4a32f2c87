-- Up Migration
-- restart_policy: the workspace's own restart policy (PATCH /v1/workspaces/:id or the create
-- body); NULL means the template's, else the server default.
-- discarded_generation: a generation the entity gave up and tried to remove but could not (a
-- failed boot whose teardown failed, a restart whose removal of the old generation failed). Its
-- resource is no longer live: the orphan sweep removes it. Cleared when that generation starts again.
ALTER TABLE workspaces ADD COLUMN restart_policy text CHECK (restart_policy IN ('always', 'never'));
ALTER TABLE workspaces ADD COLUMN discarded_generation integer;

-- Down Migration
ALTER TABLE workspaces DROP COLUMN discarded_generation;
ALTER TABLE workspaces DROP COLUMN restart_policy;
