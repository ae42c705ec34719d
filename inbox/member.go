package inbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pg"
)

// checkInvitees refuses anyone but active nurses and physicians: members
// read patient information, so they are the clinicians of the care team or
// unit, not whoever has an account.
func checkInvitees(ctx context.Context, q pg.Querier, field string, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	var bad uuid.UUID
	err := q.QueryRow(ctx, `SELECT x FROM unnest($1::uuid[]) WITH ORDINALITY AS u (x, ord)
		WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = x AND active AND roles && ARRAY['nurse', 'physician'])
		ORDER BY ord LIMIT 1`, ids).Scan(&bad)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return callroom.Invalid(field, "%s is not an active nurse or physician", bad)
}

// addMembers opens a membership for each of ids not already a current
// member, and returns who was added. Someone coming back keeps their read
// position, so history they had read does not show as unread again.
func addMembers(ctx context.Context, tx pgx.Tx, threadID uuid.UUID, ids []uuid.UUID, addedBy *uuid.UUID) ([]uuid.UUID, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, _ := tx.Query(ctx, fmt.Sprintf(addMembersSQL, `unnest($2::uuid[]) WITH ORDINALITY AS u (x, ord)`), threadID, ids, addedBy)
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

// addMembersSQL is addMembers' insert of the people (x) of a source (%s)
// in its order (ord), for thread $1 by $3.
const addMembersSQL = `INSERT INTO thread_members (thread_id, user_id, added_by, read_seq)
	SELECT $1, x, $3, coalesce((SELECT max(read_seq) FROM thread_members p WHERE p.thread_id = $1 AND p.user_id = x), 0)
	FROM %s ORDER BY ord
	ON CONFLICT (thread_id, user_id) WHERE left_at IS NULL DO NOTHING
	RETURNING user_id`

// AddMembers adds people to a group or patient thread. Any current member
// may; a direct thread always has exactly its two people. Adding someone
// already in the thread changes nothing.
func (s *Store) AddMembers(ctx context.Context, who auth.Principal, threadID uuid.UUID, userIDs []uuid.UUID) (Thread, error) {
	var out Thread
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		t, err := getThread(ctx, tx, threadID, "FOR NO KEY UPDATE")
		if err != nil {
			return err
		}
		if _, err := requireMember(ctx, tx, t, who.User.ID, "thread.member_add"); err != nil {
			return err
		}
		if t.Kind == Direct {
			return callroom.Conflict("user_ids", "a direct thread is between exactly two people; start a group thread instead")
		}
		ids, err := memberList("user_ids", uuid.Nil, userIDs)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return callroom.Invalid("user_ids", "is required: the people to add")
		}
		if err := checkInvitees(ctx, tx, "user_ids", ids); err != nil {
			return err
		}
		added, err := addMembers(ctx, tx, t.ID, ids, &who.User.ID)
		if err != nil {
			return err
		}
		if len(added) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE threads SET updated_at = now() WHERE id = $1`, t.ID); err != nil {
				return err
			}
			if err := audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "thread.member_add", ObjectType: "thread",
				ObjectID: t.ID.String(), PatientRef: t.patientRef(), Details: map[string]any{"user_ids": added}}); err != nil {
				return err
			}
			if err := announce(ctx, tx, t.ID, EventThreadUpdated, threadEvent{ThreadID: t.ID}); err != nil {
				return err
			}
		}
		out, err = s.view(ctx, tx, t.ID, who.User.ID, false)
		return err
	})
	return out, err
}

// RemoveMember ends userID's membership: they stop reading and posting at
// once, and keep what they already received on their devices only. Members
// may leave, and may remove others (a unit's charge nurse keeps its group
// current). The membership row is closed, not deleted: who could read what,
// when, stays on record.
func (s *Store) RemoveMember(ctx context.Context, who auth.Principal, threadID, userID uuid.UUID) error {
	return s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		t, err := getThread(ctx, tx, threadID, "FOR NO KEY UPDATE")
		if err != nil {
			return err
		}
		if _, err := requireMember(ctx, tx, t, who.User.ID, "thread.member_remove"); err != nil {
			return err
		}
		if t.Kind == Direct {
			return callroom.Conflict("", "a direct thread always has its two people")
		}
		tag, err := tx.Exec(ctx, `UPDATE thread_members SET left_at = now(), removed_by = $3
			WHERE thread_id = $1 AND user_id = $2 AND left_at IS NULL`, t.ID, userID, who.User.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("member: %w", callroom.ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `UPDATE threads SET updated_at = now() WHERE id = $1`, t.ID); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "thread.member_remove", ObjectType: "thread",
			ObjectID: t.ID.String(), PatientRef: t.patientRef(), Details: map[string]any{"user_id": userID}}); err != nil {
			return err
		}
		// The person removed hears too, so their client drops the thread.
		return announce(ctx, tx, t.ID, EventThreadUpdated, threadEvent{ThreadID: t.ID}, userID)
	})
}
