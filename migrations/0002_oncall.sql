-- On-call schedules: rotations, rules, overrides, and calendar feeds.

CREATE TABLE schedules (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    time_zone   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_name_key UNIQUE (name)
);

CREATE TABLE rotations (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    schedule_id  uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    -- Ordered; the hand-off goes to the next participant, wrapping around.
    participants uuid[] NOT NULL CHECK (cardinality(participants) > 0),
    shift_length int NOT NULL CHECK (shift_length > 0),
    shift_unit   text NOT NULL CHECK (shift_unit IN ('hours', 'days', 'weeks')),
    start_at     timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rotations_schedule_idx ON rotations (schedule_id);

CREATE TABLE schedule_rules (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    schedule_id uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    rotation_id uuid REFERENCES rotations (id) ON DELETE CASCADE,
    user_id     uuid REFERENCES users (id),
    -- [{"weekdays":[1,2],"start":"19:00","end":"07:00"}]; weekdays 0 = Sunday.
    windows     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((rotation_id IS NULL) <> (user_id IS NULL))
);
CREATE INDEX schedule_rules_schedule_idx ON schedule_rules (schedule_id);

CREATE TABLE schedule_overrides (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    schedule_id    uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('add', 'remove', 'replace')),
    add_user_id    uuid REFERENCES users (id),
    remove_user_id uuid REFERENCES users (id),
    start_at       timestamptz NOT NULL,
    end_at         timestamptz NOT NULL,
    created_by     uuid REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (end_at > start_at),
    CHECK ((kind = 'add' AND add_user_id IS NOT NULL AND remove_user_id IS NULL)
        OR (kind = 'remove' AND add_user_id IS NULL AND remove_user_id IS NOT NULL)
        OR (kind = 'replace' AND add_user_id IS NOT NULL AND remove_user_id IS NOT NULL AND add_user_id <> remove_user_id))
);
-- Queries ask for overrides overlapping [from, to): end_at > from AND start_at < to.
CREATE INDEX schedule_overrides_range_idx ON schedule_overrides (schedule_id, end_at, start_at);

-- iCalendar feeds at unguessable URLs, for calendar apps that cannot sign in.
-- Only a hash of the URL's secret is kept; a feed is revoked, not deleted.
CREATE TABLE calendar_feeds (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash  bytea NOT NULL UNIQUE,
    schedule_id uuid REFERENCES schedules (id) ON DELETE CASCADE,
    user_id     uuid REFERENCES users (id),
    created_by  uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK ((schedule_id IS NULL) <> (user_id IS NULL))
);
