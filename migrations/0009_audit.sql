-- Audit controls (HIPAA 164.312(b), (c)): a hash chain over the audit trail,
-- six-year retention enforced by the database, and emergency access grants.

-- The chain. Writers only INSERT, as before, and leave seq, prev_hash and
-- hash NULL: putting a row in the chain at insert time would need a lock on
-- the chain head held until commit, which would serialise the commit (and its
-- WAL flush) of every audited transaction in the system and could deadlock
-- with row locks taken before the audit insert. Instead one sealer at a time
-- (audit.Seal, a River job every few seconds, serialised by the lock on
-- audit_chain_head) takes the committed rows not yet in the chain in id order,
-- gives each the next seq, and stores
--   hash = sha256(prev_hash || canonical content of the row)
-- where the canonical content is defined in Go (audit/chain.go). The chain's
-- order is therefore the sealer's order: well defined whatever order
-- concurrent writers commit in. Rows that existed before this migration are
-- sealed by the first pass: the chain starts at the oldest row.
ALTER TABLE audit_events
    ADD COLUMN seq       bigint,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN hash      bytea,
    ADD CONSTRAINT audit_events_seq_key UNIQUE (seq),
    ADD CONSTRAINT audit_events_sealed_check CHECK ((seq IS NULL) = (hash IS NULL) AND (seq IS NULL) = (prev_hash IS NULL));
CREATE INDEX audit_events_unsealed_idx ON audit_events (id) WHERE hash IS NULL;
CREATE INDEX audit_events_patient_idx ON audit_events (patient_ref, at) WHERE patient_ref IS NOT NULL;

-- The head of the chain: the last sealed seq and its hash (32 zero bytes
-- before the first row). The sealer locks this row FOR UPDATE.
CREATE TABLE audit_chain_head (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq  bigint NOT NULL,
    hash bytea NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO audit_chain_head (seq, hash) VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- Rows never change, with one exception: sealing, which fills seq,
-- prev_hash and hash of a row that has none, and changes nothing else.
-- DELETE is refused for rows younger than six years, always; older rows go
-- only through an explicit purge (the session sets callroom.audit_purge),
-- which only the database owner can run (docs/SECURITY.md: the application
-- role has no DELETE on this table).
CREATE OR REPLACE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.hash IS NULL AND NEW.hash IS NOT NULL
       AND (OLD.id, OLD.at, OLD.actor_id, OLD.action, OLD.object_type, OLD.object_id, OLD.outcome,
            OLD.client_addr, OLD.patient_ref, OLD.details)
           IS NOT DISTINCT FROM
           (NEW.id, NEW.at, NEW.actor_id, NEW.action, NEW.object_type, NEW.object_id, NEW.outcome,
            NEW.client_addr, NEW.patient_ref, NEW.details) THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF OLD.at > now() - interval '6 years' THEN
            RAISE EXCEPTION 'audit_events: rows younger than six years are kept (row % of %)', OLD.id, OLD.at
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF coalesce(current_setting('callroom.audit_purge', true), '') = 'on' THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE FUNCTION audit_chain_head_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_chain_head: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION audit_chain_head_refuse_delete();
CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_head_refuse_delete();

-- Emergency access ("break the glass"): a user outside a patient's care team
-- reads that patient's threads until expires_at, having stated a reason.
-- Every grant waits for an auditor's review (reviewed_at). The reason is also
-- in the audit event that granted it (audit_events.details.reason), which,
-- unlike this row, can never change.
CREATE TABLE emergency_access (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id),
    patient_ref text NOT NULL CHECK (length(patient_ref) <= 400),
    reason      text NOT NULL CHECK (length(reason) BETWEEN 10 AND 500),
    granted_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    reviewed_at timestamptz,
    reviewed_by uuid REFERENCES users (id),
    review_note text CHECK (length(review_note) <= 500),
    CHECK (expires_at > granted_at),
    CHECK ((reviewed_at IS NULL) = (reviewed_by IS NULL))
);
CREATE INDEX emergency_access_lookup_idx ON emergency_access (user_id, patient_ref, expires_at);
CREATE INDEX emergency_access_unreviewed_idx ON emergency_access (granted_at) WHERE reviewed_at IS NULL;
