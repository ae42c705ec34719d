package inbox

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// The functions in this file are for callroom acting on its own, in the
// caller's transaction: package fhir keeps patient threads in step with the
// EHR's encounters and care teams. No person asked, so there is no
// membership check; the audit trail records the system as the actor.
//
// They queue their writes in w (pg.Writes) and read through it, so that
// what they write goes with their next read or the caller's next flush:
// opening an admitted patient's thread with its care team in it costs
// three round trips, not a dozen (docs/PERFORMANCE.md). The caller flushes
// w before using tx itself, and before commit.

// PatientThread names the thread of one patient's encounter.
type PatientThread struct {
	PatientRef   string // Patient/123
	EncounterRef string // Encounter/456, or "" for the patient's thread without encounter
	Name         string
}

// OpenPatientThread returns the thread for in (the newest with the same
// patient and encounter), creating it when there is none and bringing it
// back from the archive when its encounter started again. A thread it
// creates is queued in w.
func (s *Store) OpenPatientThread(ctx context.Context, tx pgx.Tx, w *pg.Writes, in PatientThread) (uuid.UUID, bool, error) {
	if err := checkPatientRef("patient_ref", in.PatientRef); err != nil {
		return uuid.Nil, false, err
	}
	if err := checkEncounterRef("encounter_ref", in.EncounterRef); err != nil {
		return uuid.Nil, false, err
	}
	// The same lock as PostPage: a page and an admission at once find one thread.
	w.Exec(`SELECT pg_advisory_xact_lock(hashtextextended('inbox.patient:' || $1, 0))`, in.PatientRef)
	type found struct {
		ID       uuid.UUID
		Archived bool
	}
	var threads []found
	err := w.FlushQuery(ctx, tx, func(rows pgx.Rows) (err error) {
		threads, err = pgx.CollectRows(rows, pgx.RowToStructByPos[found])
		return err
	}, `SELECT id, archived_at IS NOT NULL FROM threads
		WHERE kind = 'patient' AND patient_ref = $1 AND encounter_ref IS NOT DISTINCT FROM $2
		ORDER BY archived_at IS NULL DESC, created_at DESC LIMIT 1`, in.PatientRef, nullString(in.EncounterRef))
	if err != nil {
		return uuid.Nil, false, err
	}
	if len(threads) == 1 {
		id := threads[0].ID
		if threads[0].Archived {
			w.Exec(`UPDATE threads SET archived_at = NULL, updated_at = now() WHERE id = $1`, id)
			if err := audit.Queue(w, audit.System, audit.Entry{Action: "thread.unarchive", ObjectType: "thread",
				ObjectID: id.String(), PatientRef: in.PatientRef}); err != nil {
				return uuid.Nil, false, err
			}
			announceLater(ctx, w, id, EventThreadUpdated, threadEvent{ThreadID: id})
		}
		return id, false, nil
	}
	id := uuid.New()
	w.Exec(`INSERT INTO threads (id, kind, name, patient_ref, encounter_ref) VALUES ($1, 'patient', $2, $3, $4)`,
		id, truncateName(in.Name), in.PatientRef, nullString(in.EncounterRef))
	return id, true, audit.Queue(w, audit.System, audit.Entry{Action: "thread.create", ObjectType: "thread",
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
// does not stop an admission from opening its thread. add names each
// person once (fhir's resolver does). Its reads and changes go in one round
// trip with what w holds; its record of the change is queued in w.
func (s *Store) SyncMembers(ctx context.Context, tx pgx.Tx, w *pg.Writes, threadID uuid.UUID, add, remove []uuid.UUID, reason map[string]any) (added, removed, skipped []uuid.UUID, err error) {
	var ts []Thread
	queueThread(w, threadID, "FOR NO KEY UPDATE", &ts)
	var ok []uuid.UUID
	if len(add) > 0 {
		// Who may be added, and who was, in one statement; none if the
		// thread does not exist (ErrNotFound below, not a foreign key error).
		w.Queue(`WITH u AS (SELECT x, ord FROM unnest($2::uuid[]) WITH ORDINALITY AS a (x, ord)
				WHERE EXISTS (SELECT 1 FROM threads WHERE id = $1)
				AND EXISTS (SELECT 1 FROM users WHERE id = x AND active AND roles && ARRAY['nurse', 'physician'])),
			added AS (`+fmt.Sprintf(addMembersSQL, "u")+`)
			SELECT x, x IN (SELECT user_id FROM added) FROM u ORDER BY ord`, threadID, add, nil).Query(func(rows pgx.Rows) error {
			var x uuid.UUID
			var in bool
			_, err := pgx.ForEachRow(rows, []any{&x, &in}, func() error {
				ok = append(ok, x)
				if in {
					added = append(added, x)
				}
				return nil
			})
			return err
		})
	}
	if len(remove) > 0 {
		w.Queue(`UPDATE thread_members SET left_at = now()
			WHERE thread_id = $1 AND user_id = ANY ($2) AND left_at IS NULL RETURNING user_id`, threadID, remove).Query(func(rows pgx.Rows) (err error) {
			removed, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
			return err
		})
	}
	if err := w.Flush(ctx, tx); err != nil {
		return nil, nil, nil, err
	}
	t, err := oneThread(ts)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, id := range add {
		if !containsID(ok, id) {
			skipped = append(skipped, id)
		}
	}
	if len(added) == 0 && len(removed) == 0 {
		return added, removed, skipped, nil
	}
	w.Exec(`UPDATE threads SET updated_at = now() WHERE id = $1`, threadID)
	details := map[string]any{"added": added, "removed": removed}
	for k, v := range reason {
		details[k] = v
	}
	if err := audit.Queue(w, audit.System, audit.Entry{Action: "thread.member_sync", ObjectType: "thread",
		ObjectID: threadID.String(), PatientRef: t.patientRef(), Details: details}); err != nil {
		return nil, nil, nil, err
	}
	announceLater(ctx, w, threadID, EventThreadUpdated, threadEvent{ThreadID: threadID}, removed...)
	return added, removed, skipped, nil
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
// Its record and announcement are queued in w.
func (s *Store) ArchiveThread(ctx context.Context, tx pgx.Tx, w *pg.Writes, threadID uuid.UUID) (bool, error) {
	var refs []string
	err := w.FlushQuery(ctx, tx, func(rows pgx.Rows) (err error) {
		refs, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	}, `UPDATE threads SET archived_at = now(), updated_at = now()
		WHERE id = $1 AND archived_at IS NULL RETURNING coalesce(patient_ref, '')`, threadID)
	if err != nil || len(refs) == 0 {
		return false, err
	}
	if err := audit.Queue(w, audit.System, audit.Entry{Action: "thread.archive", ObjectType: "thread",
		ObjectID: threadID.String(), PatientRef: refs[0]}); err != nil {
		return false, err
	}
	announceLater(ctx, w, threadID, EventThreadUpdated, threadEvent{ThreadID: threadID})
	return true, nil
}

// LatestPatientThread returns the patient's newest thread that is not
// archived, or uuid.Nil, read with what w holds.
func LatestPatientThread(ctx context.Context, tx pgx.Tx, w *pg.Writes, patientRef string) (uuid.UUID, error) {
	var ids []uuid.UUID
	err := w.FlushQuery(ctx, tx, func(rows pgx.Rows) (err error) {
		ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		return err
	}, `SELECT id FROM threads WHERE kind = 'patient' AND patient_ref = $1 AND archived_at IS NULL
		ORDER BY created_at DESC LIMIT 1`, patientRef)
	if err != nil || len(ids) == 0 {
		return uuid.Nil, err
	}
	return ids[0], nil
}
