-- Privileges of callroom's application role (docs/SECURITY.md).
--
-- Run as the database owner after 'callroom migrate' (and again after every
-- migration that adds tables); then run 'callroom serve' with a DATABASE_URL
-- that logs in as callroom_app. Migrations and 'callroom audit purge' run as
-- the owner. The application role may read the audit trail and add to it,
-- and fill in the chain columns of rows not yet sealed; it may not change or
-- delete a row (the triggers refuse too, but privileges hold even if a
-- trigger is disabled).
--
--   CREATE ROLE callroom_app LOGIN PASSWORD '...';

GRANT USAGE ON SCHEMA public TO callroom_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO callroom_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO callroom_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM callroom_app;
GRANT UPDATE (seq, prev_hash, hash) ON audit_events TO callroom_app;
REVOKE DELETE, TRUNCATE ON audit_chain_head FROM callroom_app;
