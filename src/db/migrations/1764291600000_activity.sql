-- Up Migration
-- The activity log: one row per proxied A2A call (on the called workspace, and on the calling
-- workspace when the caller is a workspace) and one per lifecycle transition. Text columns are
-- already redacted when written. `ts` is unique enough in practice (clock_timestamp, microseconds);
-- pages are ordered (ts DESC, id DESC) and never split a group of equal timestamps.
CREATE TABLE activity (
  id             bigserial PRIMARY KEY,
  workspace_id   text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  ts             timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- 'a2a' | 'lifecycle' (open set: other features may add types).
  type           text NOT NULL,
  -- The other workspace of an A2A call (caller on 'inbound', callee on 'outbound').
  peer_id        text,
  direction      text,
  method         text,
  -- a2a: the HTTP status the caller got; lifecycle: the workspace status entered.
  status         text NOT NULL,
  duration_ms    integer,
  summary        text NOT NULL DEFAULT '',
  -- Chat-history excerpts of the turn (redacted, truncated).
  request_text   text,
  response_text  text
);
CREATE INDEX activity_ws_ts ON activity (workspace_id, ts DESC, id DESC);
CREATE INDEX activity_ws_peer_ts ON activity (workspace_id, peer_id, ts DESC, id DESC) WHERE peer_id IS NOT NULL;

-- Down Migration
DROP TABLE activity;
