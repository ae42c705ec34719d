-- Response-time reports read narrow rows instead of the page timelines: one
-- outcome per page and one row per (page, person reached). Triggers keep them
-- in the same transaction as the change to pages, notifications and
-- page_events, whichever code path makes it; the migration backfills them.

CREATE TABLE page_outcomes (
    page_id     uuid PRIMARY KEY REFERENCES pages (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    service_id  uuid,
    priority    text NOT NULL,
    -- Seconds from sending to acknowledgement; null while unacknowledged.
    ack_seconds float8,
    -- Went past its first step.
    escalated   boolean NOT NULL,
    -- Its escalation ran out without an acknowledgement (acknowledged later or not).
    unanswered  boolean NOT NULL
);
CREATE INDEX page_outcomes_created_idx ON page_outcomes (created_at);

-- A person a page reached (a notification not cancelled), when it first did,
-- and, when they acknowledged it, how long they took.
CREATE TABLE page_recipients (
    page_id    uuid NOT NULL REFERENCES pages (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL,
    created_at timestamptz NOT NULL,   -- the page's
    service_id uuid,                   -- the page's
    first_at   timestamptz NOT NULL,
    response_seconds float8,           -- null unless this person acknowledged
    PRIMARY KEY (page_id, user_id)
);
CREATE INDEX page_recipients_created_idx ON page_recipients (created_at);

-- The whole outcome of one page, recomputed: used when a page changes.
CREATE FUNCTION report_refresh_page(pid uuid) RETURNS void LANGUAGE sql AS $$
    INSERT INTO page_outcomes (page_id, created_at, service_id, priority, ack_seconds, escalated, unanswered)
    SELECT p.id, p.created_at, p.service_id, p.priority,
        extract(epoch FROM p.acknowledged_at - p.created_at)::float8,
        p.step > 0 OR p.round > 0,
        p.status = 'unanswered' OR EXISTS (
            SELECT 1 FROM page_events e WHERE e.page_id = p.id AND e.kind = 'unanswered')
    FROM pages p WHERE p.id = pid
    ON CONFLICT (page_id) DO UPDATE SET created_at = EXCLUDED.created_at, service_id = EXCLUDED.service_id,
        priority = EXCLUDED.priority, ack_seconds = EXCLUDED.ack_seconds,
        escalated = EXCLUDED.escalated, unanswered = EXCLUDED.unanswered;
    UPDATE page_recipients r SET created_at = p.created_at, service_id = p.service_id,
        response_seconds = CASE WHEN p.acknowledged_by = r.user_id
            THEN extract(epoch FROM greatest(p.acknowledged_at - r.first_at, interval '0'))::float8 END
    FROM pages p WHERE p.id = pid AND r.page_id = pid;
$$;

-- One (page, person) row recomputed from their notifications.
CREATE FUNCTION report_refresh_recipient(pid uuid, uid uuid) RETURNS void LANGUAGE sql AS $$
    -- An upsert, not delete + insert: two transactions refreshing the same
    -- person must not collide on the key.
    DELETE FROM page_recipients WHERE page_id = pid AND user_id = uid AND NOT EXISTS (
        SELECT 1 FROM notifications n WHERE n.page_id = pid AND n.user_id = uid AND n.status <> 'cancelled');
    INSERT INTO page_recipients (page_id, user_id, created_at, service_id, first_at, response_seconds)
    SELECT p.id, uid, p.created_at, p.service_id, min(n.created_at),
        CASE WHEN p.acknowledged_by = uid
            THEN extract(epoch FROM greatest(p.acknowledged_at - min(n.created_at), interval '0'))::float8 END
    FROM notifications n JOIN pages p ON p.id = n.page_id
    WHERE n.page_id = pid AND n.user_id = uid AND n.status <> 'cancelled'
    GROUP BY p.id
    ON CONFLICT (page_id, user_id) DO UPDATE SET created_at = EXCLUDED.created_at, service_id = EXCLUDED.service_id,
        first_at = EXCLUDED.first_at, response_seconds = EXCLUDED.response_seconds;
$$;

CREATE FUNCTION report_pages_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- A new page has no timeline yet: no query needed.
        INSERT INTO page_outcomes (page_id, created_at, service_id, priority, ack_seconds, escalated, unanswered)
        VALUES (NEW.id, NEW.created_at, NEW.service_id, NEW.priority,
            extract(epoch FROM NEW.acknowledged_at - NEW.created_at)::float8,
            NEW.step > 0 OR NEW.round > 0, NEW.status = 'unanswered');
    ELSE
        PERFORM report_refresh_page(NEW.id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER pages_report_insert AFTER INSERT ON pages
    FOR EACH ROW EXECUTE FUNCTION report_pages_changed();
CREATE TRIGGER pages_report_update AFTER UPDATE ON pages
    FOR EACH ROW WHEN (
        (OLD.created_at, OLD.service_id, OLD.priority, OLD.status, OLD.step, OLD.round, OLD.acknowledged_by, OLD.acknowledged_at)
        IS DISTINCT FROM
        (NEW.created_at, NEW.service_id, NEW.priority, NEW.status, NEW.step, NEW.round, NEW.acknowledged_by, NEW.acknowledged_at))
    EXECUTE FUNCTION report_pages_changed();

CREATE FUNCTION report_page_unanswered() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE page_outcomes SET unanswered = true WHERE page_id = NEW.page_id AND NOT unanswered;
    RETURN NULL;
END $$;
CREATE TRIGGER page_events_report AFTER INSERT ON page_events
    FOR EACH ROW WHEN (NEW.kind = 'unanswered') EXECUTE FUNCTION report_page_unanswered();

CREATE FUNCTION report_notifications_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'cancelled' THEN
            INSERT INTO page_recipients (page_id, user_id, created_at, service_id, first_at, response_seconds)
            SELECT p.id, NEW.user_id, p.created_at, p.service_id, NEW.created_at,
                CASE WHEN p.acknowledged_by = NEW.user_id
                    THEN extract(epoch FROM greatest(p.acknowledged_at - NEW.created_at, interval '0'))::float8 END
            FROM pages p WHERE p.id = NEW.page_id
            ON CONFLICT (page_id, user_id) DO UPDATE SET first_at = least(page_recipients.first_at, EXCLUDED.first_at),
                -- from the earlier first notification: the longer response
                response_seconds = greatest(page_recipients.response_seconds, EXCLUDED.response_seconds);
        END IF;
        RETURN NULL;
    END IF;
    PERFORM report_refresh_recipient(OLD.page_id, OLD.user_id);
    IF TG_OP = 'UPDATE' AND (NEW.page_id, NEW.user_id) IS DISTINCT FROM (OLD.page_id, OLD.user_id) THEN
        PERFORM report_refresh_recipient(NEW.page_id, NEW.user_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER notifications_report_insert AFTER INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION report_notifications_changed();
CREATE TRIGGER notifications_report_update AFTER UPDATE ON notifications
    -- Only what changes the row: delivery progress (queued, sent, failed...)
    -- does not, so delivery jobs never touch page_recipients.
    FOR EACH ROW WHEN ((OLD.page_id, OLD.user_id, OLD.status = 'cancelled', OLD.created_at)
        IS DISTINCT FROM (NEW.page_id, NEW.user_id, NEW.status = 'cancelled', NEW.created_at))
    EXECUTE FUNCTION report_notifications_changed();
CREATE TRIGGER notifications_report_delete AFTER DELETE ON notifications
    FOR EACH ROW EXECUTE FUNCTION report_notifications_changed();

-- Backfill.
INSERT INTO page_outcomes (page_id, created_at, service_id, priority, ack_seconds, escalated, unanswered)
SELECT p.id, p.created_at, p.service_id, p.priority,
    extract(epoch FROM p.acknowledged_at - p.created_at)::float8,
    p.step > 0 OR p.round > 0,
    p.status = 'unanswered' OR EXISTS (
        SELECT 1 FROM page_events e WHERE e.page_id = p.id AND e.kind = 'unanswered')
FROM pages p;
INSERT INTO page_recipients (page_id, user_id, created_at, service_id, first_at, response_seconds)
SELECT p.id, n.user_id, p.created_at, p.service_id, min(n.created_at),
    CASE WHEN p.acknowledged_by = n.user_id
        THEN extract(epoch FROM greatest(p.acknowledged_at - min(n.created_at), interval '0'))::float8 END
FROM notifications n JOIN pages p ON p.id = n.page_id
WHERE n.status <> 'cancelled'
GROUP BY p.id, n.user_id;
