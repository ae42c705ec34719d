-- A resource that changed nothing (an Encounter finished, or a CareTeam
-- inactive, before callroom opened a thread for it) is recorded too, with
-- the version it was at, so that an older notification applied after it (a
-- batch processed concurrently, a retry) is skipped as stale instead of
-- opening a thread for a visit that is over.
ALTER TABLE fhir_sources ALTER COLUMN thread_id DROP NOT NULL;
