package oncall

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/internal/pg"
)

// span is the range of overrides to load; nil loads none.
type span struct{ from, to time.Time }

// load reads a schedule's row, rotations, rules and the overrides overlapping
// sp in one round trip (a pgx batch): who-is-on-call is asked on every page,
// so it must cost one trip to the database, not four.
func load(ctx context.Context, tx pgx.Tx, id uuid.UUID, sp *span) (ScheduleInfo, []Rotation, []Rule, []StoredOverride, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT `+scheduleColumns+` FROM schedules WHERE id = $1`, id)
	b.Queue(`SELECT id, name, participants, shift_length, shift_unit, start_at FROM rotations WHERE schedule_id = $1 ORDER BY created_at, id`, id)
	b.Queue(`SELECT id, rotation_id, user_id, windows FROM schedule_rules WHERE schedule_id = $1 ORDER BY created_at, id`, id)
	if sp != nil {
		b.Queue(`SELECT `+overrideColumns+` FROM schedule_overrides
			WHERE schedule_id = $1 AND end_at > $2 AND start_at < $3 ORDER BY start_at, id`, id, sp.from, sp.to)
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
	return info, rotations, rules, overrides, nil
}

// compileFor loads and compiles a schedule with the overrides overlapping sp.
func compileFor(ctx context.Context, q pg.Beginner, id uuid.UUID, sp span) (*Compiled, ScheduleInfo, error) {
	var c *Compiled
	var info ScheduleInfo
	err := pg.InTx(ctx, q, func(tx pgx.Tx) error {
		var err error
		c, info, err = compileTx(ctx, tx, id, sp)
		return err
	})
	return c, info, err
}

func compileTx(ctx context.Context, tx pgx.Tx, id uuid.UUID, sp span) (*Compiled, ScheduleInfo, error) {
	info, rotations, rules, stored, err := load(ctx, tx, id, &sp)
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

// OnCallAtTx is OnCallAt inside the caller's transaction, for an escalation
// step that must resolve its targets consistently with the page it updates.
func OnCallAtTx(ctx context.Context, tx pgx.Tx, id uuid.UUID, t time.Time) ([]uuid.UUID, error) {
	c, _, err := compileTx(ctx, tx, id, span{t, t.Add(time.Nanosecond)})
	if err != nil {
		return nil, err
	}
	return c.OnCallAt(t), nil
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
