-- Up Migration
-- Key rotation: every sealed column records the id of the key that sealed it (a fingerprint of
-- the key, src/security/secrets.ts). NULL = sealed before key ids existed, with the SECRETS_KEY of
-- that time: still readable (every configured key is tried) until `secrets re-encrypt` stamps it.
ALTER TABLE secrets ADD COLUMN key_id text;
ALTER TABLE ssh_keys ADD COLUMN key_id text;
ALTER TABLE bootstrap_tokens ADD COLUMN workspace_token_key_id text;

-- Org-wide default secrets: a workspace secret of the same key overrides one at delivery.
CREATE TABLE org_secrets (
  org_id      text NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  key         text NOT NULL,
  value_enc   text NOT NULL,
  key_id      text,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, key)
);

-- The A2A credential handed to each generation's agent, sealed, so the proxy presents the very
-- value the agent got even after SECRETS_KEY (from which it is derived at issue) has rotated.
CREATE TABLE agent_credentials (
  workspace_id    text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  generation      integer NOT NULL,
  credential_enc  text NOT NULL,
  key_id          text,
  PRIMARY KEY (workspace_id, generation)
);

-- Down Migration
DROP TABLE agent_credentials;
DROP TABLE org_secrets;
ALTER TABLE bootstrap_tokens DROP COLUMN workspace_token_key_id;
ALTER TABLE ssh_keys DROP COLUMN key_id;
ALTER TABLE secrets DROP COLUMN key_id;
