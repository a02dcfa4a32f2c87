-- Up Migration
-- The workspace token handed out by a bootstrap token's first fetch, sealed (AES-256-GCM), so a
-- re-fetch whose first answer was lost gets the same bundle back. Cleared when the agent registers
-- (delivery proven) and unusable past the short re-fetch window after first use.
ALTER TABLE bootstrap_tokens ADD COLUMN workspace_token_enc text;

-- Down Migration
ALTER TABLE bootstrap_tokens DROP COLUMN workspace_token_enc;
