package inbox

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
)

// The functions in this file are for callroom acting on its own, in the
// caller's transaction: package fhir keeps patient threads in step with the
// EHR's encounters and care teams. No person asked, so there is no
// membership check; the audit trail records the system as the actor.

// PatientThread names the thread of one patient's encounter.
type PatientThread struct {
	PatientRef   string // Patient/123
	EncounterRef string // Encounter/456, or "" for the patient's thread without encounter
	Name         string
}

// OpenPatientThread returns the thread for in (the newest with the same
// patient and encounter), creating it when there is none and bringing it
// back from the archive when its encounter started again.
func (s *Store) OpenPatientThread(ctx context.Context, tx pgx.Tx, in PatientThread) (uuid.UUID, bool, error) {
	if err := checkPatientRef("patient_ref", in.PatientRef); err != nil {
		return uuid.Nil, false, err
	}
	if err := checkEncounterRef("encounter_ref", in.EncounterRef); err != nil {
		return uuid.Nil, false, err
	}
	// The same lock as PostPage: a page and an admission at once find one thread.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('inbox.patient:' || $1, 0))`, in.PatientRef); err != nil {
		return uuid.Nil, false, err
	}
	var id uuid.UUID
	var archived bool
	err := tx.QueryRow(ctx, `SELECT id, archived_at IS NOT NULL FROM threads
		WHERE kind = 'patient' AND patient_ref = $1 AND encounter_ref IS NOT DISTINCT FROM $2
		ORDER BY archived_at IS NULL DESC, created_at DESC LIMIT 1`, in.PatientRef, nullString(in.EncounterRef)).Scan(&id, &archived)
	switch {
	case err == nil:
		if archived {
			if _, err := tx.Exec(ctx, `UPDATE threads SET archived_at = NULL, updated_at = now() WHERE id = $1`, id); err != nil {
				return uuid.Nil, false, err
			}
			if err := audit.Record(ctx, tx, audit.System, audit.Entry{Action: "thread.unarchive", ObjectType: "thread",
				ObjectID: id.String(), PatientRef: in.PatientRef}); err != nil {
				return uuid.Nil, false, err
			}
			return id, false, announce(ctx, tx, id, EventThreadUpdated, threadEvent{ThreadID: id})
		}
		return id, false, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return uuid.Nil, false, err
	}
	err = tx.QueryRow(ctx, `INSERT INTO threads (kind, name, patient_ref, encounter_ref) VALUES ('patient', $1, $2, $3) RETURNING id`,
		truncateName(in.Name), in.PatientRef, nullString(in.EncounterRef)).Scan(&id)
	if err != nil {
		return uuid.Nil, false, err
	}
	return id, true, audit.Record(ctx, tx, audit.System, audit.Entry{Action: "thread.create", ObjectType: "thread",
		ObjectID: id.String(), PatientRef: in.PatientRef, Details: map[string]any{"kind": Patient, "source": "fhir"}})
}

func truncateName(s string) string {
	r := []rune(s)
	if len(r) > MaxNameLength {
		r = r[:MaxNameLength]
	}
	return string(r)
}

// SyncMembers adds add and removes remove from a thread, and announces the
// change once. Only active nurses and physicians are added; the others are
// skipped (returned in skipped), never an error, so one deactivated account
// does not stop an admission from opening its thread.
func (s *Store) SyncMembers(ctx context.Context, tx pgx.Tx, threadID uuid.UUID, add, remove []uuid.UUID, reason map[string]any) (added, removed, skipped []uuid.UUID, err error) {
	t, err := getThread(ctx, tx, threadID, "FOR NO KEY UPDATE")
	if err != nil {
		return nil, nil, nil, err
	}
	var ok []uuid.UUID
	if len(add) > 0 {
		rows, _ := tx.Query(ctx, `SELECT x FROM unnest($1::uuid[]) WITH ORDINALITY AS u (x, ord)
			WHERE EXISTS (SELECT 1 FROM users WHERE id = x AND active AND roles && ARRAY['nurse', 'physician']) ORDER BY ord`, add)
		if ok, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
			return nil, nil, nil, err
		}
		for _, id := range add {
			if !containsID(ok, id) {
				skipped = append(skipped, id)
			}
		}
		if added, err = addMembers(ctx, tx, threadID, ok, nil); err != nil {
			return nil, nil, nil, err
		}
	}
	if len(remove) > 0 {
		rows, _ := tx.Query(ctx, `UPDATE thread_members SET left_at = now()
			WHERE thread_id = $1 AND user_id = ANY ($2) AND left_at IS NULL RETURNING user_id`, threadID, remove)
		if removed, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
			return nil, nil, nil, err
		}
	}
	if len(added) == 0 && len(removed) == 0 {
		return added, removed, skipped, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE threads SET updated_at = now() WHERE id = $1`, threadID); err != nil {
		return nil, nil, nil, err
	}
	details := map[string]any{"added": added, "removed": removed}
	for k, v := range reason {
		details[k] = v
	}
	if err := audit.Record(ctx, tx, audit.System, audit.Entry{Action: "thread.member_sync", ObjectType: "thread",
		ObjectID: threadID.String(), PatientRef: t.patientRef(), Details: details}); err != nil {
		return nil, nil, nil, err
	}
	return added, removed, skipped, announce(ctx, tx, threadID, EventThreadUpdated, threadEvent{ThreadID: threadID}, removed...)
}

func containsID(ids []uuid.UUID, id uuid.UUID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// ArchiveThread marks a patient thread archived (its encounter finished or
// was cancelled). Members keep reading it; archiving twice changes nothing.
func (s *Store) ArchiveThread(ctx context.Context, tx pgx.Tx, threadID uuid.UUID) (bool, error) {
	var ref string
	err := tx.QueryRow(ctx, `UPDATE threads SET archived_at = now(), updated_at = now()
		WHERE id = $1 AND archived_at IS NULL RETURNING coalesce(patient_ref, '')`, threadID).Scan(&ref)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := audit.Record(ctx, tx, audit.System, audit.Entry{Action: "thread.archive", ObjectType: "thread",
		ObjectID: threadID.String(), PatientRef: ref}); err != nil {
		return false, err
	}
	return true, announce(ctx, tx, threadID, EventThreadUpdated, threadEvent{ThreadID: threadID})
}

// LatestPatientThread returns the patient's newest thread that is not
// archived, or uuid.Nil.
func LatestPatientThread(ctx context.Context, tx pgx.Tx, patientRef string) (uuid.UUID, error) {
	var id uuid.UUID
	err := tx.QueryRow(ctx, `SELECT id FROM threads WHERE kind = 'patient' AND patient_ref = $1 AND archived_at IS NULL
		ORDER BY created_at DESC LIMIT 1`, patientRef).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, nil
	}
	return id, err
}
