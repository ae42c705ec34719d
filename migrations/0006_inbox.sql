-- Secure messaging (package inbox): threads about a patient, for a group or
-- between two people; messages with every version kept; receipts and
-- acknowledgements; attachments; retention policies.
--
-- Message text, attachment bytes and attachment file names are sealed by the
-- application (package keys) before they reach these tables: the bytea
-- columns hold "key | nonce | ciphertext" blobs and the key id beside each
-- references data_keys, so no column here is readable PHI except the
-- patient_ref a patient thread is filed under (needed to find it, and what
-- the audit trail records anyway).

CREATE TABLE threads (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind          text NOT NULL CHECK (kind IN ('patient', 'group', 'direct')),
    name          text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    -- 'Patient/123' or a patient identifier 'system|value'.
    patient_ref   text CHECK (length(patient_ref) <= 400),
    encounter_ref text,
    -- A direct thread's two people, ordered, so (a, b) and (b, a) are one thread.
    direct_low    uuid REFERENCES users (id),
    direct_high   uuid REFERENCES users (id),
    -- false: a member added later sees only what was posted while a member.
    history_for_new_members boolean NOT NULL DEFAULT true,
    -- true: retention never purges this thread's messages.
    legal_hold    boolean NOT NULL DEFAULT false,
    created_by    uuid REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_message_at timestamptz,
    CHECK ((kind = 'patient') = (patient_ref IS NOT NULL)),
    CHECK (kind = 'patient' OR encounter_ref IS NULL),
    CHECK ((kind = 'direct') = (direct_low IS NOT NULL AND direct_high IS NOT NULL)),
    CHECK (direct_low < direct_high),
    CHECK (kind <> 'group' OR name <> ''),
    CHECK (kind <> 'direct' OR name = '')
);
-- One direct thread per pair: asking again returns it.
CREATE UNIQUE INDEX threads_direct_pair_key ON threads (direct_low, direct_high) WHERE kind = 'direct';
CREATE INDEX threads_patient_idx ON threads (patient_ref, created_at DESC) WHERE patient_ref IS NOT NULL;

-- Membership periods: leaving closes the row, joining again opens a new one,
-- so who could read what, when, stays answerable.
CREATE TABLE thread_members (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    thread_id  uuid NOT NULL REFERENCES threads (id),
    user_id    uuid NOT NULL REFERENCES users (id),
    joined_at  timestamptz NOT NULL DEFAULT now(),
    left_at    timestamptz,
    added_by   uuid REFERENCES users (id),
    removed_by uuid REFERENCES users (id),
    -- The member has read every message up to this messages.seq (for unread counts).
    read_seq   bigint NOT NULL DEFAULT 0,
    CHECK (left_at IS NULL OR left_at >= joined_at)
);
CREATE UNIQUE INDEX thread_members_current_key ON thread_members (thread_id, user_id) WHERE left_at IS NULL;
CREATE INDEX thread_members_user_idx ON thread_members (user_id) WHERE left_at IS NULL;
CREATE INDEX thread_members_thread_user_idx ON thread_members (thread_id, user_id);

CREATE TABLE messages (
    id           uuid PRIMARY KEY,   -- chosen by the application: the sealed text's associated data names it
    -- Orders a thread's messages and is the paging cursor.
    seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    thread_id    uuid NOT NULL REFERENCES threads (id),
    author_id    uuid REFERENCES users (id),   -- NULL: a system message (a page)
    priority     text NOT NULL CHECK (priority IN ('routine', 'urgent', 'asap', 'stat')),
    reply_to     uuid,
    page_id      uuid REFERENCES pages (id),
    ack_required boolean NOT NULL DEFAULT false,
    -- The version members see; every version is in message_versions.
    version      int NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at   timestamptz NOT NULL DEFAULT now(),
    edited_at    timestamptz,
    recalled_at  timestamptz,
    recalled_by  uuid REFERENCES users (id),
    -- Retention erased the text and attachments; the row stays.
    purged_at    timestamptz,
    UNIQUE (thread_id, id),
    -- A reply is to a message of the same thread.
    FOREIGN KEY (thread_id, reply_to) REFERENCES messages (thread_id, id),
    CHECK ((recalled_at IS NULL) = (recalled_by IS NULL))
);
CREATE INDEX messages_thread_idx ON messages (thread_id, seq);
-- A page posts once; the thread holding it is where its members acknowledge it from.
CREATE UNIQUE INDEX messages_page_key ON messages (page_id) WHERE page_id IS NOT NULL;
CREATE INDEX messages_retention_idx ON messages (created_at) WHERE purged_at IS NULL;

CREATE TABLE message_versions (
    message_id uuid NOT NULL REFERENCES messages (id),
    version    int NOT NULL CHECK (version >= 1),
    -- Sealed text, associated data 'message:<message id>:<version>'. NULL once purged.
    body       bytea,
    key_id     uuid REFERENCES data_keys (id),
    created_by uuid REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, version),
    CHECK ((body IS NULL) = (key_id IS NULL))
);

-- Edits add versions and recalls hide messages, but neither erases: versions
-- are never deleted nor renumbered. Only their sealed bytes may change
-- (retention clears them; a key migration could re-seal them).
CREATE FUNCTION message_versions_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'message_versions are never erased: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.message_id <> OLD.message_id OR NEW.version <> OLD.version
       OR NEW.created_at <> OLD.created_at OR NEW.created_by IS DISTINCT FROM OLD.created_by THEN
        RAISE EXCEPTION 'message_versions: only the sealed body may change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER message_versions_no_erase BEFORE UPDATE OR DELETE ON message_versions
    FOR EACH ROW EXECUTE FUNCTION message_versions_guard();
CREATE TRIGGER message_versions_no_truncate BEFORE TRUNCATE ON message_versions
    FOR EACH STATEMENT EXECUTE FUNCTION message_versions_guard();

-- Per member per message: delivered, read, acknowledged.
CREATE TABLE message_receipts (
    message_id      uuid NOT NULL REFERENCES messages (id),
    user_id         uuid NOT NULL REFERENCES users (id),
    delivered_at    timestamptz,
    read_at         timestamptz,
    acknowledged_at timestamptz,
    PRIMARY KEY (message_id, user_id)
);

CREATE TABLE attachments (
    id           uuid PRIMARY KEY,   -- chosen by the application, like messages.id
    thread_id    uuid NOT NULL REFERENCES threads (id),
    -- NULL until a message of the same thread references it.
    message_id   uuid,
    uploaded_by  uuid NOT NULL REFERENCES users (id),
    -- Detected from the content, never taken from the client.
    content_type text NOT NULL
                 CHECK (content_type IN ('image/png', 'image/jpeg', 'image/gif', 'image/webp', 'application/pdf')),
    size_bytes   int NOT NULL CHECK (size_bytes BETWEEN 1 AND 20971520),
    -- Sealed bytes, associated data 'attachment:<id>'. NULL once purged.
    content      bytea,
    key_id       uuid REFERENCES data_keys (id),
    -- Sealed file name (names often carry a patient's name or MRN),
    -- associated data 'attachment:<id>:filename'. NULL when none or purged.
    filename        bytea,
    filename_key_id uuid REFERENCES data_keys (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    purged_at    timestamptz,
    FOREIGN KEY (thread_id, message_id) REFERENCES messages (thread_id, id),
    CHECK ((content IS NULL) = (key_id IS NULL)),
    CHECK ((content IS NULL) = (purged_at IS NOT NULL)),
    CHECK ((filename IS NULL) = (filename_key_id IS NULL))
);
CREATE INDEX attachments_thread_idx ON attachments (thread_id, created_at);
CREATE INDEX attachments_message_idx ON attachments (message_id) WHERE message_id IS NOT NULL;

-- How long messages of each thread kind are kept. No row: kept for ever.
CREATE TABLE retention_policies (
    kind       text PRIMARY KEY CHECK (kind IN ('patient', 'group', 'direct')),
    days       int NOT NULL CHECK (days BETWEEN 1 AND 36500),
    updated_by uuid REFERENCES users (id),
    updated_at timestamptz NOT NULL DEFAULT now()
);
