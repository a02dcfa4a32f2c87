-- Up Migration
-- Per-generation SSH key pairs of EC2 workspaces; the private key is AES-256-GCM ciphertext.
CREATE TABLE ssh_keys (
  workspace_id     text NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  generation       integer NOT NULL,
  private_key_enc  text NOT NULL,
  public_key       text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workspace_id, generation)
);

-- Host keys pinned on first connect (trust on first use), per instance.
CREATE TABLE ssh_host_keys (
  instance_id      text PRIMARY KEY,
  host_key_sha256  text NOT NULL,
  recorded_at      timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE ssh_host_keys;
DROP TABLE ssh_keys;
