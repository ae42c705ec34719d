package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// MaxRuleDelaySeconds is the longest a notification rule may wait after a
// step reaches its owner (one hour, as the schema allows).
const MaxRuleDelaySeconds = 3600

// NotificationRule says "use this contact method DelaySeconds after an
// escalation step reaches me, if the page is still unacknowledged".
type NotificationRule struct {
	ID              uuid.UUID `json:"id" db:"id"`
	UserID          uuid.UUID `json:"user_id" db:"user_id"`
	ContactMethodID uuid.UUID `json:"contact_method_id" db:"contact_method_id"`
	DelaySeconds    int       `json:"delay_seconds" db:"delay_seconds"`
	CreatedAt       time.Time `json:"created_at" db:"created_at"`
}

// NewNotificationRule is what creating a notification rule takes.
type NewNotificationRule struct {
	ContactMethodID uuid.UUID `json:"contact_method_id"`
	DelaySeconds    int       `json:"delay_seconds"`
}

const notificationRuleColumns = `id, user_id, contact_method_id, delay_seconds, created_at`

// CreateNotificationRule adds a rule for userID. The contact method must be
// one of userID's own (otherwise a field error on contact_method_id, which
// does not reveal whether the id exists), delay_seconds must be 0..3600, and
// a second rule for the same method and delay is a conflict.
func (s *Store) CreateNotificationRule(ctx context.Context, by audit.Actor, userID uuid.UUID, in NewNotificationRule) (NotificationRule, error) {
	if in.ContactMethodID == uuid.Nil {
		return NotificationRule{}, callroom.Invalid("contact_method_id", "is required")
	}
	if in.DelaySeconds < 0 || in.DelaySeconds > MaxRuleDelaySeconds {
		return NotificationRule{}, callroom.Invalid("delay_seconds", "must be between 0 and %d", MaxRuleDelaySeconds)
	}
	var nr NotificationRule
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var owned bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM contact_methods WHERE id = $1 AND user_id = $2)`,
			in.ContactMethodID, userID).Scan(&owned); err != nil {
			return err
		}
		if !owned {
			return callroom.Invalid("contact_method_id", "is not one of this user's contact methods")
		}
		rows, err := tx.Query(ctx, `INSERT INTO notification_rules (user_id, contact_method_id, delay_seconds)
			VALUES ($1, $2, $3) RETURNING `+notificationRuleColumns, userID, in.ContactMethodID, in.DelaySeconds)
		if err != nil {
			return err
		}
		nr, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[NotificationRule])
		if err != nil {
			return ruleConstraint(err)
		}
		return audit.Record(ctx, tx, by, audit.Entry{
			Action: "notification_rule.create", ObjectType: "notification_rule", ObjectID: nr.ID.String(),
			Details: map[string]any{"contact_method_id": nr.ContactMethodID, "delay_seconds": nr.DelaySeconds},
		})
	})
	if err != nil {
		return NotificationRule{}, err
	}
	return nr, nil
}

func ruleConstraint(err error) error {
	if pg.IsUniqueViolation(err, "notification_rules_contact_method_id_delay_seconds_key") {
		return callroom.Conflict("delay_seconds", "a rule for this contact method with this delay already exists")
	}
	// The contact method was deleted between the check and the insert.
	if _, ok := pg.IsForeignKeyViolation(err); ok {
		return callroom.Invalid("contact_method_id", "is not one of this user's contact methods")
	}
	return err
}

// NotificationRules lists userID's rules by delay. An unknown user has none.
func (s *Store) NotificationRules(ctx context.Context, userID uuid.UUID) ([]NotificationRule, error) {
	rows, err := s.db.Query(ctx, `SELECT `+notificationRuleColumns+` FROM notification_rules
		WHERE user_id = $1 ORDER BY delay_seconds, created_at, id`, userID)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[NotificationRule])
	if out == nil && err == nil {
		out = []NotificationRule{}
	}
	return out, err
}

// DeleteNotificationRule removes one of userID's rules; another user's rule
// id is ErrNotFound.
func (s *Store) DeleteNotificationRule(ctx context.Context, by audit.Actor, userID, id uuid.UUID) error {
	return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var (
			methodID uuid.UUID
			delay    int
		)
		err := tx.QueryRow(ctx, `DELETE FROM notification_rules WHERE id = $1 AND user_id = $2
			RETURNING contact_method_id, delay_seconds`, id, userID).Scan(&methodID, &delay)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("notification rule: %w", callroom.ErrNotFound)
		}
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{
			Action: "notification_rule.delete", ObjectType: "notification_rule", ObjectID: id.String(),
			Details: map[string]any{"contact_method_id": methodID, "delay_seconds": delay},
		})
	})
}
