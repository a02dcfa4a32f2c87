-- Up Migration
CREATE TABLE orgs (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Org API keys: only a SHA-256 of the key is stored.
CREATE TABLE api_keys (
  id          text PRIMARY KEY,
  org_id      text NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  key_hash    text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- The read model of each workspace. The entity workflow owns desired state and writes here on
-- every transition; the API serves reads from this table.
CREATE TABLE workspaces (
  id                 text PRIMARY KEY,
  org_id             text NOT NULL REFERENCES orgs(id),
  name               text NOT NULL,
  backend            text NOT NULL,
  template           text,
  runtime            text NOT NULL,
  config             jsonb NOT NULL DEFAULT '{}'::jsonb,
  config_hash        text NOT NULL,
  -- Bumped by every saved config, so a restart can tell whether config changed under it.
  config_version     integer NOT NULL DEFAULT 1,
  generation         integer NOT NULL DEFAULT 0,
  status             text NOT NULL,
  phase              text,
  instance_id        text,
  endpoint           text,
  last_heartbeat_at  timestamptz,
  runtime_state      text,
  error              text,
  workflow_id        text NOT NULL,
  -- What the current generation boots with: copied from the saved config when a generation is
  -- prepared, so the bootstrap bundle and the readiness check agree even if config changes later.
  boot_runtime       text,
  boot_config        jsonb,
  boot_config_hash   text,
  -- The agent's registration for the current generation (fences stale boots).
  registered_generation   integer,
  registered_config_hash  text,
  agent_card         jsonb,
  parent_id          text,
  budget_limit_cents integer,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workspaces_org_created ON workspaces (org_id, created_at DESC, id DESC);
CREATE INDEX workspaces_status ON workspaces (status);

-- Workspace tokens are minted per generation at bootstrap; hashed.
CREATE TABLE workspace_tokens (
  token_hash    text PRIMARY KEY,
  workspace_id  text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  generation    integer NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workspace_tokens_ws ON workspace_tokens (workspace_id, generation);

-- Single-use bootstrap tokens, the only secret a resource is started with.
CREATE TABLE bootstrap_tokens (
  token_hash    text PRIMARY KEY,
  workspace_id  text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  generation    integer NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  used_at       timestamptz
);

CREATE TABLE boot_events (
  id            bigserial PRIMARY KEY,
  workspace_id  text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  generation    integer NOT NULL,
  phase         text NOT NULL,
  message       text,
  ts            timestamptz NOT NULL,
  received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX boot_events_ws ON boot_events (workspace_id, id);

-- Status transitions, served by GET /events (SSE).
CREATE TABLE workspace_transitions (
  id            bigserial PRIMARY KEY,
  workspace_id  text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  status        text NOT NULL,
  phase         text,
  message       text,
  generation    integer NOT NULL,
  ts            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workspace_transitions_ws ON workspace_transitions (workspace_id, id);

-- Memories seeded at provision (content already redacted).
CREATE TABLE memories (
  id            text PRIMARY KEY,
  workspace_id  text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  content       text NOT NULL,
  scope         text NOT NULL DEFAULT 'local',
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX memories_ws ON memories (workspace_id, created_at);

-- Console output captured before a failed resource is torn down (boot log survives compensation).
CREATE TABLE console_logs (
  workspace_id  text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  generation    integer NOT NULL,
  text          text NOT NULL,
  captured_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workspace_id, generation)
);

-- Secrets: AES-256-GCM ciphertext (iv || tag || data, base64); values never leave except by bootstrap.
CREATE TABLE secrets (
  workspace_id  text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  key           text NOT NULL,
  value_enc     text NOT NULL,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workspace_id, key)
);

-- Down Migration
DROP TABLE secrets;
DROP TABLE console_logs;
DROP TABLE memories;
DROP TABLE workspace_transitions;
DROP TABLE boot_events;
DROP TABLE bootstrap_tokens;
DROP TABLE workspace_tokens;
DROP TABLE workspaces;
DROP TABLE api_keys;
DROP TABLE orgs;
