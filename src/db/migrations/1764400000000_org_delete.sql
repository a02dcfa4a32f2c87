-- Up Migration
-- An org being deleted (or deleted): set once by DELETE /v1/orgs/:id, in the transaction that also
-- drops the org's API keys. The row stays, so the orphan sweep still knows the org's leftovers as ours.
ALTER TABLE orgs ADD COLUMN deleted_at timestamptz;

-- Down Migration
ALTER TABLE orgs DROP COLUMN deleted_at;
