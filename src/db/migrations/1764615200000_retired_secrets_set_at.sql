-- Up Migration
-- When the retired value had been set. A running generation can hold only a value that was live
-- when it fetched its bundle: one set and replaced after that (within the fetch's delivery window:
-- src/db/secrets.ts) never reached it, so it is neither redacted for it nor kept. Without this, a
-- secret rewritten over and over while a workspace ran piled up values that every redaction
-- decrypted. NULL (rows retired before this column): treated as held, as before.
ALTER TABLE retired_secrets ADD COLUMN set_at timestamptz;

-- Down Migration
ALTER TABLE retired_secrets DROP COLUMN set_at;
