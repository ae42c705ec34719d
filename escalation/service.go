package escalation

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// Service is something a nurse can page: a clinical service or a role
// ("Cardiology", "Rapid Response", "4 West charge nurse").
type Service struct {
	ID                 uuid.UUID `json:"id" db:"id"`
	Name               string    `json:"name" db:"name"`
	Description        string    `json:"description" db:"description"`
	EscalationPolicyID uuid.UUID `json:"escalation_policy_id" db:"escalation_policy_id"`
	EmailAlias         *string   `json:"email_alias,omitempty" db:"email_alias"`
	CreatedAt          time.Time `json:"created_at" db:"created_at"`
	UpdatedAt          time.Time `json:"updated_at" db:"updated_at"`
}

// NewService is what creating a service takes.
type NewService struct {
	Name               string    `json:"name"`
	Description        string    `json:"description,omitempty"`
	EscalationPolicyID uuid.UUID `json:"escalation_policy_id"`
	EmailAlias         *string   `json:"email_alias,omitempty"`
}

const serviceColumns = `id, name, description, escalation_policy_id, email_alias, created_at, updated_at`

func checkText(field, s string, max int, required bool) (string, error) {
	s = strings.TrimSpace(s)
	if required && s == "" {
		return "", callroom.Invalid(field, "is required")
	}
	if utf8.RuneCountInString(s) > max {
		return "", callroom.Invalid(field, "is longer than %d characters", max)
	}
	return s, nil
}

// CreateService adds a service paging through an existing policy.
func (s *Store) CreateService(ctx context.Context, by audit.Actor, in NewService) (Service, error) {
	name, err := checkText("name", in.Name, 200, true)
	if err != nil {
		return Service{}, err
	}
	desc, err := checkText("description", in.Description, 2000, false)
	if err != nil {
		return Service{}, err
	}
	if in.EscalationPolicyID == uuid.Nil {
		return Service{}, callroom.Invalid("escalation_policy_id", "is required")
	}
	if in.EmailAlias != nil {
		a := strings.ToLower(strings.TrimSpace(*in.EmailAlias))
		if a == "" || strings.ContainsAny(a, " <>\"") || len(a) > 254 {
			return Service{}, callroom.Invalid("email_alias", "must be an address or its local part, e.g. cardiology")
		}
		if strings.Contains(a, "@") {
			if _, err := mail.ParseAddress(a); err != nil {
				return Service{}, callroom.Invalid("email_alias", "is not an email address")
			}
		}
		in.EmailAlias = &a
	}
	var out Service
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `INSERT INTO services (name, description, escalation_policy_id, email_alias)
			VALUES ($1, $2, $3, $4) RETURNING `+serviceColumns, name, desc, in.EscalationPolicyID, in.EmailAlias)
		out, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Service])
		switch {
		case pg.IsUniqueViolation(err, "services_name_key"):
			return callroom.Conflict("name", "a service with this name already exists")
		case pg.IsUniqueViolation(err, "services_email_alias_key"):
			return callroom.Conflict("email_alias", "another service uses this email alias")
		}
		if _, fk := pg.IsForeignKeyViolation(err); fk {
			return callroom.Invalid("escalation_policy_id", "no such escalation policy")
		}
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "service.create", ObjectType: "service", ObjectID: out.ID.String()})
	})
	return out, err
}

// Services lists services by name.
func (s *Store) Services(ctx context.Context) ([]Service, error) {
	rows, _ := s.db.Query(ctx, `SELECT `+serviceColumns+` FROM services ORDER BY name`)
	return pgx.CollectRows(rows, pgx.RowToStructByName[Service])
}

// Service returns one service.
func (s *Store) Service(ctx context.Context, id uuid.UUID) (Service, error) {
	rows, _ := s.db.Query(ctx, `SELECT `+serviceColumns+` FROM services WHERE id = $1`, id)
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Service])
	if errors.Is(err, pgx.ErrNoRows) {
		return out, fmt.Errorf("service: %w", callroom.ErrNotFound)
	}
	return out, err
}

// ServiceByEmailAlias finds the service paged at alias (a whole address or
// its local part), for the email gateway.
func (s *Store) ServiceByEmailAlias(ctx context.Context, alias string) (Service, error) {
	alias = strings.ToLower(alias)
	local, _, _ := strings.Cut(alias, "@")
	rows, _ := s.db.Query(ctx, `SELECT `+serviceColumns+` FROM services WHERE email_alias = $1 OR email_alias = $2
		ORDER BY (email_alias = $1) DESC LIMIT 1`, alias, local)
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Service])
	if errors.Is(err, pgx.ErrNoRows) {
		return out, fmt.Errorf("service: %w", callroom.ErrNotFound)
	}
	return out, err
}
