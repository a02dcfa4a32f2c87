-- Up Migration
-- The terminal sessions open in API processes (src/api/terminal.ts). A row is written before the
-- backend opens the shell and deleted once the session is closed; its API process refreshes
-- last_seen while it holds it. A row not refreshed within its stale_after_ms outlived its API
-- process (SIGKILL, crash): the reaper of any API process kills the session's processes in the
-- workspace (dockerd does not end an exec when its attach connection drops) and deletes the row.
-- stale_after_ms is the owner's own threshold, so replicas with different settings never judge
-- each other's live sessions by the wrong clock.
CREATE TABLE terminal_sessions (
  id              uuid PRIMARY KEY,
  workspace_id    text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  generation      integer NOT NULL,
  backend         text NOT NULL,
  stale_after_ms  integer NOT NULL CHECK (stale_after_ms > 0),
  opened_at       timestamptz NOT NULL DEFAULT now(),
  last_seen       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX terminal_sessions_last_seen ON terminal_sessions (last_seen);
CREATE INDEX terminal_sessions_ws ON terminal_sessions (workspace_id);

-- Down Migration
DROP TABLE terminal_sessions;
