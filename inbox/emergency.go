package inbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/events"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/patient"
)

// Emergency access ("break the glass", 45 CFR 164.312(a)(2)(ii)): a nurse or
// physician who is not on a patient's threads may still need them, now: the
// patient arrives coding and the covering team is not yet in the thread.
// They state a reason and get read access to that patient's threads for a
// short, fixed time. The grant is audited with the reason, every read under
// it is audited as such (emergency_access.use), the auditors are told at
// once (an event on their stream), and the grant waits in a review queue
// until an auditor has looked at it. Emergency access reads; to post, the
// clinician is added to the thread as usual.

// Emergency access lasts DefaultEmergencyMinutes unless the clinician asks
// for less or more, up to MaxEmergencyMinutes.
const (
	DefaultEmergencyMinutes = 60
	MaxEmergencyMinutes     = 240
)

// Event types on the auditors' streams.
const EventEmergencyAccess = "emergency.access_granted"

// EmergencyAccess is one grant.
type EmergencyAccess struct {
	ID         uuid.UUID  `json:"id" db:"id"`
	UserID     uuid.UUID  `json:"user_id" db:"user_id"`
	PatientRef string     `json:"patient_ref" db:"patient_ref"`
	Reason     string     `json:"reason" db:"reason"`
	GrantedAt  time.Time  `json:"granted_at" db:"granted_at"`
	ExpiresAt  time.Time  `json:"expires_at" db:"expires_at"`
	ReviewedAt *time.Time `json:"reviewed_at,omitempty" db:"reviewed_at"`
	ReviewedBy *uuid.UUID `json:"reviewed_by,omitempty" db:"reviewed_by"`
	ReviewNote *string    `json:"review_note,omitempty" db:"review_note"`
}

// NewEmergencyAccess is what a clinician asks for.
type NewEmergencyAccess struct {
	PatientRef string `json:"patient_ref"`
	Reason     string `json:"reason"`
	Minutes    int    `json:"minutes,omitempty"`
}

const emergencyColumns = `id, user_id, patient_ref, reason, granted_at, expires_at, reviewed_at, reviewed_by, review_note`

// BreakGlass grants who emergency read access to the patient's threads.
func (s *Store) BreakGlass(ctx context.Context, who auth.Principal, in NewEmergencyAccess) (EmergencyAccess, error) {
	var out EmergencyAccess
	if !isClinician(who.User) {
		// Refused before validation: the refusal does not depend on the input.
		d := &denial{action: "emergency_access.grant", objectType: "patient", reason: "only nurses and physicians may claim emergency access"}
		if checkPatientRef("patient_ref", in.PatientRef) == nil {
			d.patientRef = in.PatientRef
		}
		return out, s.refuse(ctx, who.Actor(), d)
	}
	if err := checkPatientRef("patient_ref", in.PatientRef); err != nil {
		return out, err
	}
	in.Reason = strings.TrimSpace(in.Reason)
	if n := utf8.RuneCountInString(in.Reason); n < 10 || n > 500 {
		return out, callroom.Invalid("reason", "state why, in 10 to 500 characters")
	}
	if in.Minutes == 0 {
		in.Minutes = DefaultEmergencyMinutes
	}
	if in.Minutes < 1 || in.Minutes > MaxEmergencyMinutes {
		return out, callroom.Invalid("minutes", "must be between 1 and %d", MaxEmergencyMinutes)
	}
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `INSERT INTO emergency_access (user_id, patient_ref, reason, expires_at)
			VALUES ($1, $2, $3, now() + make_interval(mins => $4)) RETURNING `+emergencyColumns,
			who.User.ID, in.PatientRef, in.Reason, in.Minutes)
		var err error
		if out, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[EmergencyAccess]); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "emergency_access.grant", ObjectType: "emergency_access",
			ObjectID: out.ID.String(), PatientRef: in.PatientRef, Details: map[string]any{"reason": in.Reason,
				"expires_at": out.ExpiresAt.UTC().Format(time.RFC3339), "review": "required"}}); err != nil {
			return err
		}
		// Tell every active auditor now; ids only, they read the rest.
		rows, _ = tx.Query(ctx, `SELECT id FROM users WHERE active AND 'auditor' = ANY(roles) ORDER BY id`)
		auditors, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil || len(auditors) == 0 {
			return err
		}
		return events.Publish(ctx, tx, auditors, EventEmergencyAccess, map[string]any{"emergency_access_id": out.ID, "user_id": who.User.ID})
	})
	return out, err
}

// EmergencyFilter narrows EmergencyAccesses.
type EmergencyFilter struct {
	Unreviewed bool
	Limit      int // 1..500, default 100
}

// EmergencyAccesses is the review queue: grants newest first (auditors and
// administrators only).
func (s *Store) EmergencyAccesses(ctx context.Context, who auth.Principal, f EmergencyFilter) ([]EmergencyAccess, error) {
	if f.Limit == 0 {
		f.Limit = 100
	}
	if !mayReadVersions(who) {
		return nil, s.refuse(ctx, who.Actor(), &denial{action: "emergency_access.list", objectType: "emergency_access",
			reason: "only auditors and administrators review emergency access"})
	}
	if f.Limit < 1 || f.Limit > 500 {
		return nil, callroom.Invalid("limit", "must be between 1 and 500")
	}
	var out []EmergencyAccess
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT `+emergencyColumns+` FROM emergency_access
			WHERE NOT $1 OR reviewed_at IS NULL ORDER BY granted_at DESC, id LIMIT $2`, f.Unreviewed, f.Limit)
		var err error
		if out, err = pgx.CollectRows(rows, pgx.RowToStructByName[EmergencyAccess]); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "emergency_access.list", ObjectType: "emergency_access",
			Details: map[string]any{"count": len(out)}}); err != nil {
			return err
		}
		refs := make([]string, len(out))
		for i, g := range out {
			refs[i] = g.PatientRef
		}
		return audit.RecordPatients(ctx, tx, who.Actor(), audit.Entry{Action: "emergency_access.list", ObjectType: "emergency_access"}, refs)
	})
	return out, err
}

// ReviewEmergencyAccess marks a grant reviewed, with an optional note
// (auditors and administrators; once).
func (s *Store) ReviewEmergencyAccess(ctx context.Context, who auth.Principal, id uuid.UUID, note string) (EmergencyAccess, error) {
	var out EmergencyAccess
	if !mayReadVersions(who) {
		return out, s.refuse(ctx, who.Actor(), &denial{action: "emergency_access.review", objectType: "emergency_access",
			objectID: id.String(), reason: "only auditors and administrators review emergency access"})
	}
	note = strings.TrimSpace(note)
	if utf8.RuneCountInString(note) > 500 {
		return out, callroom.Invalid("note", "must be at most 500 characters")
	}
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT `+emergencyColumns+` FROM emergency_access WHERE id = $1 FOR UPDATE`, id)
		var err error
		out, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[EmergencyAccess])
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("emergency access: %w", callroom.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if out.ReviewedAt != nil {
			return callroom.Conflict("id", "this emergency access was already reviewed")
		}
		if out.UserID == who.User.ID {
			return callroom.Conflict("id", "nobody reviews their own emergency access")
		}
		rows, _ = tx.Query(ctx, `UPDATE emergency_access SET reviewed_at = now(), reviewed_by = $2, review_note = $3
			WHERE id = $1 RETURNING `+emergencyColumns, id, who.User.ID, nullString(note))
		if out, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[EmergencyAccess]); err != nil {
			return err
		}
		return audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "emergency_access.review", ObjectType: "emergency_access",
			ObjectID: id.String(), PatientRef: out.PatientRef, Details: map[string]any{"note": note}})
	})
	return out, err
}

// activeEmergency returns the user's unexpired grant for the patient.
func activeEmergency(ctx context.Context, q pg.Querier, userID uuid.UUID, ref string) (uuid.UUID, bool, error) {
	var b pgx.Batch
	var grant emergencyGrant
	queueEmergency(&b, userID, ref, &grant)
	err := q.SendBatch(ctx, &b).Close()
	return grant.id, grant.ok, err
}

// emergencyGrant is what queueEmergency found: ok when there is a grant.
type emergencyGrant struct {
	id uuid.UUID
	ok bool
}

// queueEmergency queues the read of the user's unexpired grant for the
// patient into g.
func queueEmergency(b *pgx.Batch, userID uuid.UUID, ref string, g *emergencyGrant) {
	if ref == "" {
		return
	}
	b.Queue(`SELECT id FROM emergency_access WHERE user_id = $1 AND patient_ref IN `+patient.SameAs("$2")+` AND expires_at > now()
		ORDER BY expires_at DESC LIMIT 1`, userID, ref).Query(func(rows pgx.Rows) error {
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if len(ids) > 0 {
			g.id, g.ok = ids[0], true
		}
		return err
	})
}

// readThread reads thread id for who, and lets current members read it,
// and others holding unexpired emergency access to its patient; a read
// under emergency access is audited as such (besides the read's own
// event). It reports whether the read is an emergency one (the reader then
// sees every message, as the care team does, but leaves no receipts). The
// thread and the caller's membership are read in one round trip.
func readThread(ctx context.Context, tx pgx.Tx, id uuid.UUID, who auth.Principal, action string) (Thread, bool, error) {
	var b pgx.Batch
	var ts []Thread
	member := false
	queueThread(&b, id, "", &ts)
	b.Queue(`SELECT EXISTS (SELECT 1 FROM thread_members WHERE thread_id = $1 AND user_id = $2 AND left_at IS NULL)`, id, who.User.ID).
		QueryRow(func(row pgx.Row) error { return row.Scan(&member) })
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return Thread{}, false, err
	}
	t, err := oneThread(ts)
	if err != nil || member {
		return t, false, err
	}
	grant, ok, err := activeEmergency(ctx, tx, who.User.ID, t.patientRef())
	if err != nil {
		return t, false, err
	}
	if !ok {
		return t, false, denyThread(t, action, notMember)
	}
	return t, true, useEmergency(ctx, tx, who, grant, t.patientRef(), action, t.ID.String())
}

func useEmergency(ctx context.Context, tx pgx.Tx, who auth.Principal, grant uuid.UUID, ref, action, threadID string) error {
	return audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "emergency_access.use", ObjectType: "thread", ObjectID: threadID,
		PatientRef: ref, Details: map[string]any{"emergency_access": grant.String(), "for": action}})
}
