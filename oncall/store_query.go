package oncall

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/internal/pg"
)

// span is the range of overrides to load; nil loads none.
type span struct{ from, to time.Time }

// inactiveSQL finds the deactivated accounts among everyone schedule $1 can
// put on call within [$2, $3): its rotations' participants, its rules' people
// and the people its overrides add.
const inactiveSQL = `SELECT u.id FROM users u WHERE NOT u.active AND u.id IN (
		SELECT unnest(participants) FROM rotations WHERE schedule_id = $1
		UNION ALL SELECT user_id FROM schedule_rules WHERE schedule_id = $1
		UNION ALL SELECT add_user_id FROM schedule_overrides WHERE schedule_id = $1 AND end_at > $2 AND start_at < $3)`

// load reads a schedule's row, rotations, rules and the overrides overlapping
// sp in one round trip (a pgx batch): who-is-on-call is asked on every page,
// so it must cost one trip to the database, not four. A non-nil inactive
// also receives, from the same round trip, the deactivated accounts among
// the schedule's people (sp required).
func load(ctx context.Context, tx pgx.Tx, id uuid.UUID, sp *span, inactive *[]uuid.UUID) (ScheduleInfo, []Rotation, []Rule, []StoredOverride, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT `+scheduleColumns+` FROM schedules WHERE id = $1`, id)
	b.Queue(`SELECT id, name, participants, shift_length, shift_unit, start_at FROM rotations WHERE schedule_id = $1 ORDER BY created_at, id`, id)
	b.Queue(`SELECT id, rotation_id, user_id, windows FROM schedule_rules WHERE schedule_id = $1 ORDER BY created_at, id`, id)
	if sp != nil {
		b.Queue(`SELECT `+overrideColumns+` FROM schedule_overrides
			WHERE schedule_id = $1 AND end_at > $2 AND start_at < $3 ORDER BY start_at, id`, id, sp.from, sp.to)
	}
	if inactive != nil {
		b.Queue(inactiveSQL, id, sp.from, sp.to)
	}
	res := tx.SendBatch(ctx, b)
	defer res.Close()

	var info ScheduleInfo
	rows, _ := res.Query()
	info, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[ScheduleInfo])
	if err == pgx.ErrNoRows {
		return info, nil, nil, nil, fmt.Errorf("schedule: %w", callroom.ErrNotFound)
	}
	if err != nil {
		return info, nil, nil, nil, err
	}
	rows, _ = res.Query()
	rotations, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Rotation, error) {
		var r Rotation
		err := row.Scan(&r.ID, &r.Name, &r.Participants, &r.ShiftLength, &r.ShiftUnit, &r.Start)
		return r, err
	})
	if err != nil {
		return info, nil, nil, nil, err
	}
	rows, _ = res.Query()
	rules, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Rule, error) {
		var r Rule
		var windows []byte
		if err := row.Scan(&r.ID, &r.RotationID, &r.UserID, &windows); err != nil {
			return r, err
		}
		return r, json.Unmarshal(windows, &r.Windows)
	})
	if err != nil {
		return info, nil, nil, nil, err
	}
	var overrides []StoredOverride
	if sp != nil {
		rows, _ = res.Query()
		if overrides, err = pgx.CollectRows(rows, scanOverride); err != nil {
			return info, nil, nil, nil, err
		}
	}
	if inactive != nil {
		rows, _ = res.Query()
		if *inactive, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
			return info, nil, nil, nil, err
		}
	}
	return info, rotations, rules, overrides, nil
}

// compileFor loads and compiles a schedule with the overrides overlapping sp.
func compileFor(ctx context.Context, q pg.Beginner, id uuid.UUID, sp span) (*Compiled, ScheduleInfo, error) {
	var c *Compiled
	var info ScheduleInfo
	err := pg.InTx(ctx, q, func(tx pgx.Tx) error {
		var err error
		c, info, err = compileTx(ctx, tx, id, sp, nil)
		return err
	})
	return c, info, err
}

// compileTx loads and compiles a schedule with the overrides overlapping sp,
// in tx; a non-nil inactive also receives the schedule's deactivated people
// (load).
func compileTx(ctx context.Context, tx pgx.Tx, id uuid.UUID, sp span, inactive *[]uuid.UUID) (*Compiled, ScheduleInfo, error) {
	info, rotations, rules, stored, err := load(ctx, tx, id, &sp, inactive)
	if err != nil {
		return nil, info, err
	}
	overrides := make([]Override, len(stored))
	for i := range stored {
		overrides[i] = stored[i].Override
	}
	c, err := Compile(Schedule{ID: info.ID, Name: info.Name, TimeZone: info.TimeZone,
		Rotations: rotations, Rules: rules, Overrides: overrides})
	return c, info, err
}

// OnCallAt returns who is on call on schedule id at instant t.
func (s *Store) OnCallAt(ctx context.Context, id uuid.UUID, t time.Time) ([]uuid.UUID, error) {
	c, _, err := compileFor(ctx, s.db, id, span{t, t.Add(time.Nanosecond)})
	if err != nil {
		return nil, err
	}
	return c.OnCallAt(t), nil
}

// ReachableAtTx is who is on call on schedule id at t, inside the caller's
// transaction, without the people whose accounts are deactivated (an
// escalation step pages nobody else), with the schedule's name for the
// timeline when nobody is left, all in the one round trip of the schedule's
// read: it is asked at every step that targets a schedule.
func ReachableAtTx(ctx context.Context, tx pgx.Tx, id uuid.UUID, t time.Time) (ids []uuid.UUID, name string, err error) {
	var inactive []uuid.UUID
	c, info, err := compileTx(ctx, tx, id, span{t, t.Add(time.Nanosecond)}, &inactive)
	if err != nil {
		return nil, "", err
	}
	for _, id := range c.OnCallAt(t) {
		if !slices.Contains(inactive, id) {
			ids = append(ids, id)
		}
	}
	return ids, info.Name, nil
}

// Shifts returns each user's on-call intervals on schedule id within [from, to).
func (s *Store) Shifts(ctx context.Context, id uuid.UUID, from, to time.Time) ([]Shift, error) {
	if err := checkRequestRange(from, to); err != nil {
		return nil, err
	}
	c, _, err := compileFor(ctx, s.db, id, span{from, to})
	if err != nil {
		return nil, err
	}
	return c.Shifts(from, to)
}

// Gaps returns the intervals within [from, to) when nobody is on call.
func (s *Store) Gaps(ctx context.Context, id uuid.UUID, from, to time.Time) ([]Gap, error) {
	if err := checkRequestRange(from, to); err != nil {
		return nil, err
	}
	c, _, err := compileFor(ctx, s.db, id, span{from, to})
	if err != nil {
		return nil, err
	}
	return c.Gaps(from, to)
}
