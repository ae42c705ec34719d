package oncall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pg"
)

// Store keeps schedules in PostgreSQL and answers on-call questions from them.
type Store struct {
	db *pgxpool.Pool
}

// NewStore returns a Store on db.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db} }

// ScheduleInfo is a schedule's own row, without its parts.
type ScheduleInfo struct {
	ID          uuid.UUID `json:"id" db:"id"`
	Name        string    `json:"name" db:"name"`
	Description string    `json:"description" db:"description"`
	TimeZone    string    `json:"time_zone" db:"time_zone"`
	CreatedAt   time.Time `json:"created_at" db:"created_at"`
	UpdatedAt   time.Time `json:"updated_at" db:"updated_at"`
}

// ScheduleDetail is a schedule with its rotations and rules. Overrides are
// listed by range, since a busy schedule collects thousands of them.
type ScheduleDetail struct {
	ScheduleInfo
	Rotations []Rotation `json:"rotations"`
	Rules     []Rule     `json:"rules"`
}

// NewSchedule is what creating a schedule takes.
type NewSchedule struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	TimeZone    string `json:"time_zone"`
}

// ScheduleChange is a partial update.
type ScheduleChange struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
	TimeZone    *string `json:"time_zone,omitempty"`
}

const scheduleColumns = `id, name, description, time_zone, created_at, updated_at`

func checkScheduleName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", callroom.Invalid("name", "is required")
	}
	if utf8.RuneCountInString(s) > 200 {
		return "", callroom.Invalid("name", "is longer than 200 characters")
	}
	return s, nil
}

func checkDescription(s string) error {
	if utf8.RuneCountInString(s) > 2000 {
		return callroom.Invalid("description", "is longer than 2000 characters")
	}
	return nil
}

func scheduleConstraint(err error) error {
	if pg.IsUniqueViolation(err, "schedules_name_key") {
		return callroom.Conflict("name", "a schedule with this name already exists")
	}
	return err
}

// CreateSchedule adds an empty schedule.
func (s *Store) CreateSchedule(ctx context.Context, by audit.Actor, in NewSchedule) (ScheduleInfo, error) {
	name, err := checkScheduleName(in.Name)
	if err != nil {
		return ScheduleInfo{}, err
	}
	if err := checkDescription(in.Description); err != nil {
		return ScheduleInfo{}, err
	}
	if err := auth.CheckTimeZone("time_zone", in.TimeZone); err != nil {
		return ScheduleInfo{}, err
	}
	var out ScheduleInfo
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `INSERT INTO schedules (name, description, time_zone) VALUES ($1, $2, $3)
			RETURNING `+scheduleColumns, name, in.Description, in.TimeZone)
		out, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[ScheduleInfo])
		if err != nil {
			return scheduleConstraint(err)
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "schedule.create", ObjectType: "schedule", ObjectID: out.ID.String()})
	})
	return out, err
}

// Schedules lists every schedule by name.
func (s *Store) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	rows, _ := s.db.Query(ctx, `SELECT `+scheduleColumns+` FROM schedules ORDER BY name`)
	return pgx.CollectRows(rows, pgx.RowToStructByName[ScheduleInfo])
}

func scheduleInfo(ctx context.Context, q pg.Querier, id uuid.UUID, lock bool) (ScheduleInfo, error) {
	sql := `SELECT ` + scheduleColumns + ` FROM schedules WHERE id = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	rows, _ := q.Query(ctx, sql, id)
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[ScheduleInfo])
	if errors.Is(err, pgx.ErrNoRows) {
		return out, fmt.Errorf("schedule: %w", callroom.ErrNotFound)
	}
	return out, err
}

// Schedule returns a schedule with its rotations and rules.
func (s *Store) Schedule(ctx context.Context, id uuid.UUID) (ScheduleDetail, error) {
	var d ScheduleDetail
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		info, rotations, rules, _, err := load(ctx, tx, id, nil, nil)
		d = ScheduleDetail{ScheduleInfo: info, Rotations: rotations, Rules: rules}
		return err
	})
	return d, err
}

// UpdateSchedule changes a schedule's name, description or time zone.
func (s *Store) UpdateSchedule(ctx context.Context, by audit.Actor, id uuid.UUID, c ScheduleChange) (ScheduleInfo, error) {
	if c.Name != nil {
		n, err := checkScheduleName(*c.Name)
		if err != nil {
			return ScheduleInfo{}, err
		}
		c.Name = &n
	}
	if c.Description != nil {
		if err := checkDescription(*c.Description); err != nil {
			return ScheduleInfo{}, err
		}
	}
	if c.TimeZone != nil {
		if err := auth.CheckTimeZone("time_zone", *c.TimeZone); err != nil {
			return ScheduleInfo{}, err
		}
	}
	var out ScheduleInfo
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `UPDATE schedules SET name = coalesce($2, name), description = coalesce($3, description),
			time_zone = coalesce($4, time_zone), updated_at = now() WHERE id = $1 RETURNING `+scheduleColumns,
			id, c.Name, c.Description, c.TimeZone)
		var err error
		out, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[ScheduleInfo])
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("schedule: %w", callroom.ErrNotFound)
		}
		if err != nil {
			return scheduleConstraint(err)
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "schedule.update", ObjectType: "schedule", ObjectID: id.String()})
	})
	return out, err
}

// DeleteSchedule removes a schedule with its rotations, rules, overrides and
// feeds. A schedule an escalation policy still pages cannot be deleted: that
// would silently leave a step with nobody to reach.
func (s *Store) DeleteSchedule(ctx context.Context, by audit.Actor, id uuid.UUID) error {
	return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM schedules WHERE id = $1`, id)
		if _, fk := pg.IsForeignKeyViolation(err); fk {
			return callroom.Conflict("id", "an escalation policy still uses this schedule; change the policy first")
		}
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("schedule: %w", callroom.ErrNotFound)
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "schedule.delete", ObjectType: "schedule", ObjectID: id.String()})
	})
}

// checkUsers refuses references to users that do not exist or are deactivated.
func checkUsers(ctx context.Context, q pg.Querier, field string, ids []uuid.UUID) error {
	missing, ok, err := auth.UsersExist(ctx, q, ids)
	if err != nil {
		return err
	}
	if !ok {
		return callroom.Invalid(field, "no active user with id %s", missing)
	}
	return nil
}

// AddRotation adds a rotation to a schedule.
func (s *Store) AddRotation(ctx context.Context, by audit.Actor, scheduleID uuid.UUID, r Rotation) (Rotation, error) {
	r.ID = uuid.New()
	r.Name = strings.TrimSpace(r.Name)
	if err := r.Validate(); err != nil {
		return Rotation{}, err
	}
	if utf8.RuneCountInString(r.Name) > 200 {
		return Rotation{}, callroom.Invalid("name", "is longer than 200 characters")
	}
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := scheduleInfo(ctx, tx, scheduleID, true); err != nil {
			return err
		}
		if err := checkUsers(ctx, tx, "participants", r.Participants); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rotations (id, schedule_id, name, participants, shift_length, shift_unit, start_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, r.ID, scheduleID, r.Name, r.Participants, r.ShiftLength, r.ShiftUnit, r.Start); err != nil {
			return err
		}
		return touch(ctx, tx, by, scheduleID, "schedule.rotation.create", r.ID)
	})
	return r, err
}

// DeleteRotation removes a rotation and the rules that restrict it.
func (s *Store) DeleteRotation(ctx context.Context, by audit.Actor, scheduleID, rotationID uuid.UUID) error {
	return s.deletePart(ctx, by, scheduleID, rotationID, "rotations", "schedule.rotation.delete", "rotation")
}

// AddRule adds a rule to a schedule.
func (s *Store) AddRule(ctx context.Context, by audit.Actor, scheduleID uuid.UUID, r Rule) (Rule, error) {
	r.ID = uuid.New()
	if err := r.Validate(); err != nil {
		return Rule{}, err
	}
	windows, err := json.Marshal(r.Windows)
	if err != nil {
		return Rule{}, err
	}
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := scheduleInfo(ctx, tx, scheduleID, true); err != nil {
			return err
		}
		if r.UserID != nil {
			if err := checkUsers(ctx, tx, "user_id", []uuid.UUID{*r.UserID}); err != nil {
				return err
			}
		}
		if r.RotationID != nil {
			var ok bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rotations WHERE id = $1 AND schedule_id = $2)`,
				*r.RotationID, scheduleID).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return callroom.Invalid("rotation_id", "no such rotation in this schedule")
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schedule_rules (id, schedule_id, rotation_id, user_id, windows)
			VALUES ($1, $2, $3, $4, $5)`, r.ID, scheduleID, r.RotationID, r.UserID, windows); err != nil {
			return err
		}
		return touch(ctx, tx, by, scheduleID, "schedule.rule.create", r.ID)
	})
	return r, err
}

// DeleteRule removes a rule.
func (s *Store) DeleteRule(ctx context.Context, by audit.Actor, scheduleID, ruleID uuid.UUID) error {
	return s.deletePart(ctx, by, scheduleID, ruleID, "schedule_rules", "schedule.rule.delete", "rule")
}

// AddOverride adds an override, refusing one that contradicts an existing
// override over the same time (see ValidateOverride). The schedule row is
// locked so two schedulers cannot add contradicting overrides at once.
func (s *Store) AddOverride(ctx context.Context, by audit.Actor, scheduleID uuid.UUID, o Override) (StoredOverride, error) {
	o.ID = uuid.New()
	if err := o.Validate(); err != nil {
		return StoredOverride{}, err
	}
	var out StoredOverride
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := scheduleInfo(ctx, tx, scheduleID, true); err != nil {
			return err
		}
		var users []uuid.UUID
		if o.AddUserID != nil {
			users = append(users, *o.AddUserID)
		}
		if o.RemoveUserID != nil {
			users = append(users, *o.RemoveUserID)
		}
		if err := checkUsers(ctx, tx, overrideUserField(o), users); err != nil {
			return err
		}
		existing, err := overridesIn(ctx, tx, scheduleID, o.Start, o.End)
		if err != nil {
			return err
		}
		plain := make([]Override, len(existing))
		for i := range existing {
			plain[i] = existing[i].Override
		}
		if err := ValidateOverride(plain, o); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `INSERT INTO schedule_overrides (id, schedule_id, kind, add_user_id, remove_user_id, start_at, end_at, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+overrideColumns,
			o.ID, scheduleID, o.Kind, o.AddUserID, o.RemoveUserID, o.Start, o.End, nullUser(by.UserID))
		out, err = pgx.CollectExactlyOneRow(rows, scanOverride)
		if err != nil {
			return err
		}
		return touch(ctx, tx, by, scheduleID, "schedule.override.create", o.ID)
	})
	return out, err
}

func overrideUserField(o Override) string {
	if o.Kind == OverrideRemove {
		return "remove_user_id"
	}
	return "add_user_id"
}

// DeleteOverride removes an override.
func (s *Store) DeleteOverride(ctx context.Context, by audit.Actor, scheduleID, overrideID uuid.UUID) error {
	return s.deletePart(ctx, by, scheduleID, overrideID, "schedule_overrides", "schedule.override.delete", "override")
}

func (s *Store) deletePart(ctx context.Context, by audit.Actor, scheduleID, id uuid.UUID, table, action, what string) error {
	return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE id = $1 AND schedule_id = $2`, id, scheduleID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%s: %w", what, callroom.ErrNotFound)
		}
		return touch(ctx, tx, by, scheduleID, action, id)
	})
}

// touch marks the schedule changed and audits the change to one of its parts.
func touch(ctx context.Context, tx pgx.Tx, by audit.Actor, scheduleID uuid.UUID, action string, partID uuid.UUID) error {
	if _, err := tx.Exec(ctx, `UPDATE schedules SET updated_at = now() WHERE id = $1`, scheduleID); err != nil {
		return err
	}
	return audit.Record(ctx, tx, by, audit.Entry{Action: action, ObjectType: "schedule", ObjectID: scheduleID.String(),
		Details: map[string]any{"part_id": partID}})
}

func nullUser(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// StoredOverride is an override with who made it and when.
type StoredOverride struct {
	Override
	CreatedBy *uuid.UUID `json:"created_by,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

const overrideColumns = `id, kind, add_user_id, remove_user_id, start_at, end_at, created_by, created_at`

func scanOverride(row pgx.CollectableRow) (StoredOverride, error) {
	var o StoredOverride
	err := row.Scan(&o.ID, &o.Kind, &o.AddUserID, &o.RemoveUserID, &o.Start, &o.End, &o.CreatedBy, &o.CreatedAt)
	return o, err
}

func overridesIn(ctx context.Context, q pg.Querier, scheduleID uuid.UUID, from, to time.Time) ([]StoredOverride, error) {
	rows, _ := q.Query(ctx, `SELECT `+overrideColumns+` FROM schedule_overrides
		WHERE schedule_id = $1 AND end_at > $2 AND start_at < $3 ORDER BY start_at, id`, scheduleID, from, to)
	return pgx.CollectRows(rows, scanOverride)
}

// Overrides lists a schedule's overrides overlapping [from, to).
func (s *Store) Overrides(ctx context.Context, scheduleID uuid.UUID, from, to time.Time) ([]StoredOverride, error) {
	if err := checkRequestRange(from, to); err != nil {
		return nil, err
	}
	var out []StoredOverride
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := scheduleInfo(ctx, tx, scheduleID, false); err != nil {
			return err
		}
		var err error
		out, err = overridesIn(ctx, tx, scheduleID, from, to)
		return err
	})
	return out, err
}

// checkRequestRange checks a from/to pair from a request.
func checkRequestRange(from, to time.Time) error {
	if from.IsZero() {
		return callroom.Invalid("from", "is required (RFC 3339)")
	}
	if to.IsZero() {
		return callroom.Invalid("to", "is required (RFC 3339)")
	}
	return checkQueryRange(from, to)
}
