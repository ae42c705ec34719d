-- EHR integration over FHIR R4 (package fhir): notifications received from
-- the EHR's subscriptions, the care-team memberships they keep in step, and
-- practitioners that matched no callroom user.

-- A patient thread is archived when its encounter ends; it stays readable.
ALTER TABLE threads ADD COLUMN archived_at timestamptz;

-- Every notification accepted, kept until processed and for a while after,
-- so a burst is absorbed by River, a crash loses nothing and a duplicate
-- (same subscription, same bytes) is recognised. The body may hold PHI: it
-- is sealed by the application (package keys), associated data
-- 'fhir_notification:<id>'.
CREATE TABLE fhir_notifications (
    id            uuid PRIMARY KEY,
    subscription  text NOT NULL CHECK (length(subscription) BETWEEN 1 AND 64),
    flavor        text NOT NULL CHECK (flavor IN ('rest-hook-empty', 'rest-hook-payload', 'backport', 'medplum', 'poll')),
    -- SHA-256 of method, path and body: the same notification sent twice.
    digest        bytea NOT NULL,
    resource_type text NOT NULL DEFAULT '',
    resource_id   text NOT NULL DEFAULT '',
    event_number  bigint,
    -- Medplum's X-Medplum-Interaction: delete (the body is the last version).
    deleted       boolean NOT NULL DEFAULT false,
    body          bytea,
    key_id        uuid REFERENCES data_keys (id),
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    outcome       text NOT NULL DEFAULT '' CHECK (length(outcome) <= 500),
    CHECK ((body IS NULL) = (key_id IS NULL))
);
CREATE UNIQUE INDEX fhir_notifications_digest_key ON fhir_notifications (subscription, digest);

-- What callroom knows of each subscription: when it last read changes (for
-- the empty rest-hook and polling), the last event number it saw (backport
-- gaps) and the last heartbeat.
CREATE TABLE fhir_subscription_state (
    subscription      text PRIMARY KEY,
    last_read_at      timestamptz,
    last_event_number bigint NOT NULL DEFAULT 0,
    last_heartbeat_at timestamptz,
    missed_heartbeats int NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Why each person is in a patient thread because of the EHR: one row per
-- (thread, source, user), the source an Encounter or CareTeam reference. A
-- person leaves the thread when no source keeps them.
CREATE TABLE fhir_thread_members (
    thread_id  uuid NOT NULL REFERENCES threads (id),
    source_ref text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id),
    PRIMARY KEY (thread_id, source_ref, user_id)
);
CREATE INDEX fhir_thread_members_source_idx ON fhir_thread_members (source_ref);

-- The thread each Encounter or CareTeam acts on, its last status and the
-- version applied (meta.lastUpdated), so an older notification arriving
-- after a newer one is not applied over it.
CREATE TABLE fhir_sources (
    source_ref   text PRIMARY KEY,
    thread_id    uuid NOT NULL REFERENCES threads (id),
    status       text NOT NULL,
    last_updated timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Practitioners named by the EHR that matched no callroom user, by NPI nor
-- by email: listed for an administrator, never guessed.
CREATE TABLE fhir_unmatched_practitioners (
    practitioner_ref text PRIMARY KEY,
    npi              text NOT NULL DEFAULT '',
    has_email        boolean NOT NULL DEFAULT false,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now()
);

-- Summaries written back to the EHR as Communication resources: one per page
-- settled (acknowledged, resolved, unanswered), per thread archived, per
-- thread and day (digest). The unique key makes queuing twice harmless; the
-- Communication's identifier (callroom's system, this row's id) makes a
-- retried create harmless on the EHR's side (If-None-Exist).
CREATE TABLE fhir_writebacks (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind       text NOT NULL CHECK (kind IN ('page', 'thread', 'digest')),
    object_id  uuid NOT NULL,
    event      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz,
    fhir_ref   text,
    last_error text CHECK (length(last_error) <= 500),
    UNIQUE (kind, object_id, event)
);

-- Which user each practitioner matched (NULL: none), so a burst of
-- notifications naming the same people does not read each Practitioner from
-- the EHR every time; re-checked after a few minutes (an account may have
-- been created or an NPI corrected).
CREATE TABLE fhir_practitioner_matches (
    practitioner_ref text PRIMARY KEY,
    user_id          uuid REFERENCES users (id),
    checked_at       timestamptz NOT NULL DEFAULT now()
);

-- SMART on FHIR EHR launches in flight: the state sent to the EHR's
-- authorization server (stored hashed) and the PKCE verifier, so whichever
-- instance receives the callback finishes the launch, once, within 10 minutes.
CREATE TABLE fhir_launches (
    state_hash bytea PRIMARY KEY,
    verifier   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);
