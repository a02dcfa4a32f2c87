-- Up Migration
-- The entity's step that wrote a transition (its run and the transition's number in it). A workflow
-- task that times out while its transition's local activity still runs is taken again, and the
-- step runs twice: the late write of the first try came after the retry's own (a row doubled), or
-- could land after the retry had gone on (a status set back). One row per step: a second write of
-- the same step changes nothing. NULL: written by older code or by hand, never deduplicated.
ALTER TABLE workspace_transitions ADD COLUMN step text;
CREATE UNIQUE INDEX workspace_transitions_step ON workspace_transitions (workspace_id, step)
  WHERE step IS NOT NULL;

-- Down Migration
DROP INDEX workspace_transitions_step;
ALTER TABLE workspace_transitions DROP COLUMN step;
