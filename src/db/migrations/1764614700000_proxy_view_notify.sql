-- Up Migration
-- The A2A proxy keeps an in-process copy of each called workspace's routing and budget state (its
-- "proxy view", src/db/proxy-view.ts). Every change to what that view holds is announced on the
-- channel `wo_proxy_view` (payload: the workspace id; '*' = all), whoever writes it: the API, the
-- worker's activities, sweeps, or a test's UPDATE. NOTIFY is sent at commit, in commit order.
CREATE FUNCTION wo_notify_proxy_view() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_LEVEL = 'STATEMENT' THEN
    PERFORM pg_notify('wo_proxy_view', '*');
  ELSIF TG_TABLE_NAME = 'workspaces' THEN
    IF TG_OP = 'DELETE' THEN
      PERFORM pg_notify('wo_proxy_view', OLD.id);
    ELSE
      PERFORM pg_notify('wo_proxy_view', NEW.id);
      IF TG_OP = 'UPDATE' AND OLD.id IS DISTINCT FROM NEW.id THEN
        PERFORM pg_notify('wo_proxy_view', OLD.id);
      END IF;
    END IF;
  ELSE
    IF TG_OP = 'DELETE' THEN
      PERFORM pg_notify('wo_proxy_view', OLD.workspace_id);
    ELSE
      PERFORM pg_notify('wo_proxy_view', NEW.workspace_id);
      IF TG_OP = 'UPDATE' AND OLD.workspace_id IS DISTINCT FROM NEW.workspace_id THEN
        PERFORM pg_notify('wo_proxy_view', OLD.workspace_id);
      END IF;
    END IF;
  END IF;
  RETURN NULL;
END $$;

-- Only the columns the view holds: heartbeats and other updates do not invalidate it.
CREATE TRIGGER workspaces_proxy_view_update AFTER UPDATE ON workspaces FOR EACH ROW
  WHEN ((OLD.id, OLD.org_id, OLD.name, OLD.backend, OLD.generation, OLD.status, OLD.endpoint,
         OLD.budget_limit_cents)
        IS DISTINCT FROM
        (NEW.id, NEW.org_id, NEW.name, NEW.backend, NEW.generation, NEW.status, NEW.endpoint,
         NEW.budget_limit_cents))
  EXECUTE FUNCTION wo_notify_proxy_view();
CREATE TRIGGER workspaces_proxy_view_insert_delete AFTER INSERT OR DELETE ON workspaces FOR EACH ROW
  EXECUTE FUNCTION wo_notify_proxy_view();
CREATE TRIGGER workspaces_proxy_view_truncate AFTER TRUNCATE ON workspaces FOR EACH STATEMENT
  EXECUTE FUNCTION wo_notify_proxy_view();
CREATE TRIGGER workspace_spend_proxy_view AFTER INSERT OR UPDATE OR DELETE ON workspace_spend FOR EACH ROW
  EXECUTE FUNCTION wo_notify_proxy_view();
CREATE TRIGGER workspace_spend_proxy_view_truncate AFTER TRUNCATE ON workspace_spend FOR EACH STATEMENT
  EXECUTE FUNCTION wo_notify_proxy_view();

-- Down Migration
DROP TRIGGER workspace_spend_proxy_view_truncate ON workspace_spend;
DROP TRIGGER workspace_spend_proxy_view ON workspace_spend;
DROP TRIGGER workspaces_proxy_view_truncate ON workspaces;
DROP TRIGGER workspaces_proxy_view_insert_delete ON workspaces;
DROP TRIGGER workspaces_proxy_view_update ON workspaces;
DROP FUNCTION wo_notify_proxy_view();
