-- Up Migration
-- Every `/events` stream of an API process is fed by one poller of `workspace_transitions`
-- (src/api/transition-feed.ts). A new row is announced on the channel `wo_transitions` (payload:
-- the workspace id) at its commit, so the poller runs at once for a followed workspace instead of
-- at its next tick. The poll stays the source of truth and the backstop (PGlite has no NOTIFY, a
-- LISTEN connection can drop); a notification only makes it early.
CREATE FUNCTION wo_notify_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Identical notifications of one transaction are folded into one by PostgreSQL.
  PERFORM pg_notify('wo_transitions', NEW.workspace_id);
  RETURN NULL;
END $$;

CREATE TRIGGER workspace_transitions_notify AFTER INSERT ON workspace_transitions FOR EACH ROW
  EXECUTE FUNCTION wo_notify_transition();

-- Down Migration
DROP TRIGGER workspace_transitions_notify ON workspace_transitions;
DROP FUNCTION wo_notify_transition();
