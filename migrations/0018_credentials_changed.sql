-- Each instance keeps the API tokens that authenticated recently in memory
-- (auth/token_cache.go), and empties that cache when PostgreSQL notifies
-- callroom_credentials: in the transaction of every change that could make
-- a kept token fail. The payload is empty; it names no one.
CREATE FUNCTION notify_credentials_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('callroom_credentials', '');
    RETURN NULL;
END
$$;

-- A token revoked, given another expiry, hash or owner. Recording its use
-- (last_used_at, at most once a minute per token) is not a change.
CREATE TRIGGER api_tokens_credentials_changed AFTER UPDATE ON api_tokens FOR EACH ROW
    WHEN ((OLD.user_id, OLD.token_hash, OLD.expires_at, OLD.revoked_at)
        IS DISTINCT FROM (NEW.user_id, NEW.token_hash, NEW.expires_at, NEW.revoked_at))
    EXECUTE FUNCTION notify_credentials_changed();
CREATE TRIGGER api_tokens_credentials_removed AFTER DELETE OR TRUNCATE ON api_tokens FOR EACH STATEMENT
    EXECUTE FUNCTION notify_credentials_changed();

-- Any change to a user: deactivated, roles or name changed, removed.
CREATE TRIGGER users_credentials_changed AFTER UPDATE OR DELETE OR TRUNCATE ON users FOR EACH STATEMENT
    EXECUTE FUNCTION notify_credentials_changed();
