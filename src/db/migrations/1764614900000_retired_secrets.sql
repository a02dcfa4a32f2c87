-- Up Migration
-- A secret overwritten or deleted while an agent runs stays in that agent (secrets reach it only
-- through its bootstrap bundle, at its next (re)start), and it may still echo it. Its old value is
-- kept here, sealed like the live ones, so that redaction goes on covering it for every workspace
-- whose running generation fetched its bundle before the value was retired (src/db/secrets.ts).
-- workspace_id null: an org default, retired for every workspace of the org.
CREATE TABLE retired_secrets (
  id            bigserial PRIMARY KEY,
  org_id        text NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  workspace_id  text REFERENCES workspaces(id) ON DELETE CASCADE,
  value_enc     text NOT NULL,
  key_id        text,
  retired_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retired_secrets_org ON retired_secrets (org_id, retired_at);
CREATE INDEX retired_secrets_ws ON retired_secrets (workspace_id, retired_at);

-- Down Migration
DROP TABLE retired_secrets;
