package inbox

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pg"
)

// Who may do what in the inbox. auth's role table grants coarse permissions
// ("may send pages"); conversations need a finer rule that depends on the
// thread, so it lives here:
//
//   - Nurses and physicians start threads, and are the people added to them.
//   - Current members read, post, mark read, acknowledge, upload, download,
//     and add or remove members (group and patient threads). Membership is
//     per thread: no role reads a thread it is not in.
//   - Only a message's author edits it; its author or an administrator
//     recalls it.
//   - Holders of auth.ReadAudit (auditors, administrators) read every
//     version of a message, recalled or not, without being members: that is
//     what an investigation needs, and each such read is audited.
//   - Administrators set retention policies and legal holds.

func isClinician(u auth.User) bool { return u.Has(auth.Nurse) || u.Has(auth.Physician) }

func isAdmin(u auth.User) bool { return u.Has(auth.Admin) }

func mayReadVersions(p auth.Principal) bool { return p.Can(auth.ReadAudit) }

// denial is a refusal. It wraps callroom.ErrForbidden, so the HTTP layer
// answers 403, and carries what the audit trail records about it (outcome
// denied, under the action that was attempted, with the thread's patient_ref
// so a patient's access report shows failed attempts too). The reason is
// fixed text, never input.
type denial struct {
	action     string
	objectType string
	objectID   string
	patientRef string
	reason     string
}

func (d *denial) Error() string { return d.reason }
func (d *denial) Unwrap() error { return callroom.ErrForbidden }

func (d *denial) entry() audit.Entry {
	return audit.Entry{Action: d.action, ObjectType: d.objectType, ObjectID: d.objectID, Outcome: audit.Denied,
		PatientRef: d.patientRef, Details: map[string]any{"reason": d.reason}}
}

// denyThread refuses action on thread t.
func denyThread(t Thread, action, reason string) *denial {
	return &denial{action: action, objectType: "thread", objectID: t.ID.String(), patientRef: t.patientRef(), reason: reason}
}

const notMember = "only current members of this thread may do this"

// membership is one period of a user in a thread.
type membership struct {
	ID       int64      `db:"id"`
	UserID   uuid.UUID  `db:"user_id"`
	JoinedAt time.Time  `db:"joined_at"`
	LeftAt   *time.Time `db:"left_at"`
	ReadSeq  int64      `db:"read_seq"`
}

// currentMembership returns the user's open membership of the thread.
func currentMembership(ctx context.Context, q pg.Querier, threadID, userID uuid.UUID) (membership, bool, error) {
	rows, _ := q.Query(ctx, `SELECT id, user_id, joined_at, left_at, read_seq FROM thread_members
		WHERE thread_id = $1 AND user_id = $2 AND left_at IS NULL`, threadID, userID)
	m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[membership])
	if errors.Is(err, pgx.ErrNoRows) {
		return m, false, nil
	}
	return m, err == nil, err
}

// requireMember returns the caller's membership, or a denial of action.
func requireMember(ctx context.Context, q pg.Querier, t Thread, userID uuid.UUID, action string) (membership, error) {
	m, ok, err := currentMembership(ctx, q, t.ID, userID)
	if err != nil {
		return m, err
	}
	if !ok {
		return m, denyThread(t, action, notMember)
	}
	return m, nil
}
