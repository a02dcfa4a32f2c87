-- Up Migration
-- Memories are paged newest first by (created_at, id): several written in one transaction (the
-- create's initial memories) still get distinct, ordered instants.
ALTER TABLE memories ALTER COLUMN created_at SET DEFAULT clock_timestamp();
CREATE INDEX memories_ws_scope ON memories (workspace_id, scope, created_at DESC, id DESC);

-- What each generation's agent reported spending (heartbeat `spentCents`). Kept per generation and
-- only ever raised (GREATEST), so a replayed or out-of-order heartbeat cannot lower it; the
-- workspace's spend is the sum over its generations (a restart starts a new count, not a new budget).
CREATE TABLE workspace_spend (
  workspace_id  text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  generation    integer NOT NULL,
  spent_cents   integer NOT NULL CHECK (spent_cents >= 0),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workspace_id, generation)
);
-- The budget sweep's one query reads only workspaces that have a limit.
CREATE INDEX workspaces_budget ON workspaces (id) WHERE budget_limit_cents IS NOT NULL;

-- Down Migration
DROP INDEX workspaces_budget;
DROP TABLE workspace_spend;
DROP INDEX memories_ws_scope;
ALTER TABLE memories ALTER COLUMN created_at SET DEFAULT now();
