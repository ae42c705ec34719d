-- Paging: services, escalation policies, pages with their timelines, and how
-- each person wants to be reached.

CREATE TABLE escalation_policies (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    -- How many more times the whole chain runs after the first pass.
    repeat      int NOT NULL DEFAULT 0 CHECK (repeat BETWEEN 0 AND 10),
    -- Reached when a step finds nobody on call, and when the chain is exhausted.
    fallback_user_id     uuid REFERENCES users (id),
    fallback_schedule_id uuid REFERENCES schedules (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT escalation_policies_name_key UNIQUE (name),
    CHECK (fallback_user_id IS NULL OR fallback_schedule_id IS NULL)
);

CREATE TABLE escalation_steps (
    policy_id     uuid NOT NULL REFERENCES escalation_policies (id) ON DELETE CASCADE,
    position      int NOT NULL CHECK (position >= 0),
    -- Seconds to wait for an acknowledgement before the next step fires.
    delay_seconds int NOT NULL CHECK (delay_seconds BETWEEN 0 AND 86400),
    PRIMARY KEY (policy_id, position)
);

CREATE TABLE escalation_step_targets (
    policy_id   uuid NOT NULL,
    position    int NOT NULL,
    -- A schedule means "whoever is on call when the step fires".
    schedule_id uuid REFERENCES schedules (id),
    user_id     uuid REFERENCES users (id),
    FOREIGN KEY (policy_id, position) REFERENCES escalation_steps (policy_id, position) ON DELETE CASCADE,
    CHECK ((schedule_id IS NULL) <> (user_id IS NULL))
);
CREATE INDEX escalation_step_targets_idx ON escalation_step_targets (policy_id, position);

CREATE TABLE services (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    escalation_policy_id uuid NOT NULL REFERENCES escalation_policies (id),
    -- Local part or whole address the email gateway accepts pages at.
    email_alias text CHECK (email_alias = lower(email_alias)),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT services_name_key UNIQUE (name),
    CONSTRAINT services_email_alias_key UNIQUE (email_alias)
);

-- How a person is reached. In-app needs no address: it is the event stream.
CREATE TABLE contact_methods (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('in_app', 'email', 'webhook')),
    label      text NOT NULL DEFAULT '',
    address    text NOT NULL DEFAULT '',   -- email address or webhook URL
    secret     text,                       -- webhook HMAC key
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'in_app' OR address <> '')
);
CREATE INDEX contact_methods_user_idx ON contact_methods (user_id);
CREATE UNIQUE INDEX contact_methods_in_app_key ON contact_methods (user_id) WHERE kind = 'in_app';

-- "Use this contact method N seconds after a step reaches me, if the page is
-- still unacknowledged."
CREATE TABLE notification_rules (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contact_method_id uuid NOT NULL REFERENCES contact_methods (id) ON DELETE CASCADE,
    delay_seconds     int NOT NULL CHECK (delay_seconds BETWEEN 0 AND 3600),
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (contact_method_id, delay_seconds)
);
CREATE INDEX notification_rules_user_idx ON notification_rules (user_id);

CREATE TABLE pages (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    service_id    uuid REFERENCES services (id),
    user_id       uuid REFERENCES users (id),       -- a page sent directly to a person
    policy_id     uuid REFERENCES escalation_policies (id),
    priority      text NOT NULL CHECK (priority IN ('routine', 'urgent', 'asap', 'stat')),
    summary       text NOT NULL,
    body          text NOT NULL DEFAULT '',
    patient_ref   text,
    encounter_ref text,
    dedup_key     text,
    status        text NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'acknowledged', 'resolved', 'cancelled', 'unanswered')),
    -- Where the escalation stands: the step that fired last, in which pass.
    step          int NOT NULL DEFAULT -1,
    round         int NOT NULL DEFAULT 0,
    -- The pending River job for the next step, cancelled when it becomes moot.
    next_job_id   bigint,
    next_step_at  timestamptz,
    created_by    uuid REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    acknowledged_by uuid REFERENCES users (id),
    acknowledged_at timestamptz,
    resolved_by   uuid REFERENCES users (id),
    resolved_at   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((service_id IS NULL) <> (user_id IS NULL))
);
CREATE INDEX pages_status_idx ON pages (status, created_at DESC);
CREATE INDEX pages_service_idx ON pages (service_id, created_at DESC);
CREATE INDEX pages_patient_idx ON pages (patient_ref) WHERE patient_ref IS NOT NULL;
-- One open page per (service, dedup key): a repeat returns the existing page.
CREATE UNIQUE INDEX pages_dedup_key ON pages (coalesce(service_id, user_id), dedup_key)
    WHERE dedup_key IS NOT NULL AND status IN ('open', 'acknowledged');

-- Who was reached how. One row per (page, pass, step, person, contact method):
-- a second rule on the same contact method for the same step never sends twice.
CREATE TABLE notifications (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    page_id           uuid NOT NULL REFERENCES pages (id) ON DELETE CASCADE,
    user_id           uuid NOT NULL REFERENCES users (id),
    contact_method_id uuid REFERENCES contact_methods (id) ON DELETE SET NULL,
    channel           text NOT NULL CHECK (channel IN ('in_app', 'email', 'webhook')),
    round             int NOT NULL,
    step              int NOT NULL,   -- -1 for the fallback alarm, -2 for a direct page
    status            text NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'sent', 'delivered', 'read', 'failed', 'cancelled')),
    reason            text NOT NULL DEFAULT '',
    due_at            timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    attempts          int NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX notifications_once_key ON notifications (page_id, round, step, user_id, coalesce(contact_method_id, '00000000-0000-0000-0000-000000000000'::uuid));
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC);

-- The page's timeline, append-only like the audit trail.
CREATE TABLE page_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    page_id    uuid NOT NULL REFERENCES pages (id) ON DELETE CASCADE,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind       text NOT NULL,
    round      int,
    step       int,
    user_id    uuid REFERENCES users (id),
    notification_id uuid,
    channel    text,
    -- For a step: when it was due, so lateness (at - due_at) can be measured.
    due_at     timestamptz,
    detail     text NOT NULL DEFAULT ''
);
CREATE INDEX page_events_page_idx ON page_events (page_id, id);
