-- Per-user event streams (package events): "something changed" notices,
-- ids and codes only, replayable by a reconnecting client.

-- One counter per user. Publishing bumps it with INSERT ... ON CONFLICT DO
-- UPDATE in the publishing transaction; the row lock makes the next publisher
-- for the same user wait until that transaction ends, so each user's seq is
-- in commit order with no holes. Never deleted by retention: seq must not go
-- backwards.
CREATE TABLE user_event_counters (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    seq     bigint NOT NULL CHECK (seq > 0)
);

CREATE TABLE user_events (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq        bigint NOT NULL CHECK (seq > 0),
    type       text NOT NULL CHECK (type ~ '^[a-z]+(\.[a-z_]+)+$'),
    data       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(data) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, seq)
);
-- For the hourly retention purge.
CREATE INDEX user_events_created_idx ON user_events (created_at);
