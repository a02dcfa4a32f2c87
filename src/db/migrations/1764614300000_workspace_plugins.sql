-- Up Migration
-- The desired plugin set of each workspace (issue 9, part 3): what the bootstrap bundle delivers at
-- every start, and the state of the plugin workflow (`workspace:<id>:plugin:<name>`) acting on it.
-- request_id fences a finished or superseded workflow: only the current request's outcome lands.
CREATE TABLE workspace_plugins (
  workspace_id  text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  name          text NOT NULL,
  version       text NOT NULL,
  sha256        text NOT NULL,
  source        text NOT NULL,
  files         jsonb NOT NULL,
  status        text NOT NULL CHECK (status IN ('pending', 'installing', 'installed', 'uninstalling', 'failed')),
  reason        text,
  request_id    text NOT NULL,
  installed_at  timestamptz,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workspace_id, name)
);

-- Down Migration
DROP TABLE workspace_plugins;
