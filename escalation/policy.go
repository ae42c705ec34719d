package escalation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pg"
)

// Target is who a step reaches: a schedule (whoever is on call on it when the
// step fires) or one user.
type Target struct {
	ScheduleID *uuid.UUID `json:"schedule_id,omitempty"`
	UserID     *uuid.UUID `json:"user_id,omitempty"`
}

// Step is one rung of the escalation ladder.
type Step struct {
	// DelaySeconds is how long to wait for an acknowledgement before the
	// next step fires.
	DelaySeconds int      `json:"delay_seconds"`
	Targets      []Target `json:"targets"`
}

// Policy is the ladder a service's pages climb.
type Policy struct {
	ID          uuid.UUID `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	// Repeat is how many more times the whole chain runs after the first pass.
	Repeat int `json:"repeat"`
	// Fallback (e.g. the house supervisor) is alarmed when a step finds
	// nobody on call and when the chain is exhausted.
	Fallback  *Target   `json:"fallback,omitempty"`
	Steps     []Step    `json:"steps"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	// activeUsers says, for the users its steps target, whether each is
	// active, as read with the policy: a step then resolves them without
	// another query.
	activeUsers map[uuid.UUID]bool
}

// NewPolicy is what creating a policy takes.
type NewPolicy struct {
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	Repeat      int     `json:"repeat"`
	Fallback    *Target `json:"fallback,omitempty"`
	Steps       []Step  `json:"steps"`
}

// Limits on a policy's shape.
const (
	MaxSteps        = 20
	MaxTargets      = 20
	MaxStepDelay    = 86400
	MaxPolicyRepeat = 10
)

func (t Target) validate(ctx context.Context, q pg.Querier, field string) error {
	if (t.ScheduleID == nil) == (t.UserID == nil) {
		return callroom.Invalid(field, "needs exactly one of schedule_id and user_id")
	}
	if t.UserID != nil {
		missing, ok, err := auth.UsersExist(ctx, q, []uuid.UUID{*t.UserID})
		if err != nil {
			return err
		}
		if !ok {
			return callroom.Invalid(field+".user_id", "no active user with id %s", missing)
		}
		return nil
	}
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schedules WHERE id = $1)`, *t.ScheduleID).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return callroom.Invalid(field+".schedule_id", "no schedule with id %s", *t.ScheduleID)
	}
	return nil
}

func (in *NewPolicy) validate(ctx context.Context, q pg.Querier) error {
	var err error
	if in.Name, err = checkText("name", in.Name, 200, true); err != nil {
		return err
	}
	if in.Description, err = checkText("description", in.Description, 2000, false); err != nil {
		return err
	}
	if in.Repeat < 0 || in.Repeat > MaxPolicyRepeat {
		return callroom.Invalid("repeat", "must be between 0 and %d", MaxPolicyRepeat)
	}
	if len(in.Steps) == 0 {
		return callroom.Invalid("steps", "a policy needs at least one step")
	}
	if len(in.Steps) > MaxSteps {
		return callroom.Invalid("steps", "at most %d steps", MaxSteps)
	}
	for i, st := range in.Steps {
		f := fmt.Sprintf("steps.%d", i)
		if st.DelaySeconds < 0 || st.DelaySeconds > MaxStepDelay {
			return callroom.Invalid(f+".delay_seconds", "must be between 0 and %d seconds", MaxStepDelay)
		}
		if len(st.Targets) == 0 {
			return callroom.Invalid(f+".targets", "a step needs at least one target")
		}
		if len(st.Targets) > MaxTargets {
			return callroom.Invalid(f+".targets", "at most %d targets", MaxTargets)
		}
		for j, t := range st.Targets {
			if err := t.validate(ctx, q, fmt.Sprintf("%s.targets.%d", f, j)); err != nil {
				return err
			}
		}
	}
	if in.Fallback != nil {
		if err := in.Fallback.validate(ctx, q, "fallback"); err != nil {
			return err
		}
	}
	return nil
}

// CreatePolicy adds an escalation policy.
func (s *Store) CreatePolicy(ctx context.Context, by audit.Actor, in NewPolicy) (Policy, error) {
	var out Policy
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if err := in.validate(ctx, tx); err != nil {
			return err
		}
		var fbUser, fbSchedule *uuid.UUID
		if in.Fallback != nil {
			fbUser, fbSchedule = in.Fallback.UserID, in.Fallback.ScheduleID
		}
		var id uuid.UUID
		err := tx.QueryRow(ctx, `INSERT INTO escalation_policies (name, description, repeat, fallback_user_id, fallback_schedule_id)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`, in.Name, in.Description, in.Repeat, fbUser, fbSchedule).Scan(&id)
		if pg.IsUniqueViolation(err, "escalation_policies_name_key") {
			return callroom.Conflict("name", "a policy with this name already exists")
		}
		if err != nil {
			return err
		}
		for i, st := range in.Steps {
			if _, err := tx.Exec(ctx, `INSERT INTO escalation_steps (policy_id, position, delay_seconds) VALUES ($1, $2, $3)`,
				id, i, st.DelaySeconds); err != nil {
				return err
			}
			for _, t := range st.Targets {
				if _, err := tx.Exec(ctx, `INSERT INTO escalation_step_targets (policy_id, position, schedule_id, user_id)
					VALUES ($1, $2, $3, $4)`, id, i, t.ScheduleID, t.UserID); err != nil {
					return err
				}
			}
		}
		if err := audit.Record(ctx, tx, by, audit.Entry{Action: "escalation_policy.create", ObjectType: "escalation_policy", ObjectID: id.String()}); err != nil {
			return err
		}
		out, err = loadPolicy(ctx, tx, id)
		return err
	})
	return out, err
}

// Policies lists every policy with its steps.
func (s *Store) Policies(ctx context.Context) ([]Policy, error) {
	var out []Policy
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT id FROM escalation_policies ORDER BY name`)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return err
		}
		for _, id := range ids {
			p, err := loadPolicy(ctx, tx, id)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// Policy returns one policy.
func (s *Store) Policy(ctx context.Context, id uuid.UUID) (Policy, error) {
	var out Policy
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		out, err = loadPolicy(ctx, tx, id)
		return err
	})
	return out, err
}

func loadPolicy(ctx context.Context, q pg.Querier, id uuid.UUID) (Policy, error) {
	return loadPolicyWhere(ctx, q, `ep.id = $1`, id)
}

// servicePolicyRead reads the policy of service id into *p, as the first
// statement of the transaction that sends a page (pg.InTxPipelined: it goes
// with the BEGIN). No rows means no such service: the page's service_id is
// invalid.
func servicePolicyRead(serviceID uuid.UUID, p *Policy) pg.Read {
	return pg.Read{SQL: policySQL(`ep.id = (SELECT escalation_policy_id FROM services WHERE id = $1)`), Args: []any{serviceID},
		Scan: func(rows pgx.Rows) (err error) {
			*p, err = scanPolicy(rows)
			if errors.Is(err, callroom.ErrNotFound) {
				return callroom.Invalid("service_id", "no such service")
			}
			return err
		}}
}

// loadPolicyWhere reads a policy with its steps and their targets in one
// statement (one row per target, the policy's columns repeated): the first
// step of every page reads it, so it is one round trip, not two.
func loadPolicyWhere(ctx context.Context, q pg.Querier, where string, arg any) (Policy, error) {
	rows, _ := q.Query(ctx, policySQL(where), arg)
	return scanPolicy(rows)
}

// policySQL is loadPolicyWhere's statement.
func policySQL(where string) string {
	return `SELECT ep.id, ep.name, ep.description, ep.repeat, ep.fallback_user_id, ep.fallback_schedule_id,
			ep.created_at, ep.updated_at, s.position, s.delay_seconds, t.schedule_id, t.user_id, u.active
		FROM escalation_policies ep
		LEFT JOIN escalation_steps s ON s.policy_id = ep.id
		LEFT JOIN escalation_step_targets t ON t.policy_id = s.policy_id AND t.position = s.position
		LEFT JOIN users u ON u.id = t.user_id
		WHERE ` + where + `
		ORDER BY s.position, t.schedule_id NULLS LAST, t.user_id`
}

// scanPolicy reads policySQL's rows (and closes them).
func scanPolicy(rows pgx.Rows) (Policy, error) {
	var p Policy
	var fbUser, fbSchedule *uuid.UUID
	var pos, delay *int
	var sched, user *uuid.UUID
	var active *bool
	n := 0
	_, err := pgx.ForEachRow(rows, []any{&p.ID, &p.Name, &p.Description, &p.Repeat, &fbUser, &fbSchedule,
		&p.CreatedAt, &p.UpdatedAt, &pos, &delay, &sched, &user, &active}, func() error {
		n++
		if pos == nil {
			return nil // a policy without steps
		}
		if user != nil && active != nil {
			if p.activeUsers == nil {
				p.activeUsers = map[uuid.UUID]bool{}
			}
			p.activeUsers[*user] = *active
		}
		for len(p.Steps) <= *pos {
			p.Steps = append(p.Steps, Step{})
		}
		p.Steps[*pos].DelaySeconds = *delay
		if sched != nil || user != nil {
			// Copy: the scan targets are reused for every row.
			p.Steps[*pos].Targets = append(p.Steps[*pos].Targets, Target{ScheduleID: copyID(sched), UserID: copyID(user)})
		}
		return nil
	})
	if err != nil {
		return Policy{}, err
	}
	if n == 0 {
		return Policy{}, fmt.Errorf("escalation policy: %w", callroom.ErrNotFound)
	}
	if fbUser != nil || fbSchedule != nil {
		p.Fallback = &Target{UserID: copyID(fbUser), ScheduleID: copyID(fbSchedule)}
	}
	return p, nil
}

func copyID(id *uuid.UUID) *uuid.UUID {
	if id == nil {
		return nil
	}
	c := *id
	return &c
}
