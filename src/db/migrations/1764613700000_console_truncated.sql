-- Up Migration
-- Whether a kept console copy lost older output to the cap, so the boot log can say so after the
-- generation's resource is gone.
ALTER TABLE console_logs ADD COLUMN truncated boolean NOT NULL DEFAULT false;

-- Down Migration
ALTER TABLE console_logs DROP COLUMN truncated;
