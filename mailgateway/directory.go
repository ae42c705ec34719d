package mailgateway

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/internal/pg"
)

// directory answers the few questions the gateway asks the database
// directly: who a page+ address names, whom a notification reached, and
// where a page stands. They are read-only lookups on tables other packages
// own, kept here so no other package grows email-specific queries.
type directory struct{ db pg.Querier }

var (
	errNoSuchUser     = errors.New("mailgateway: no such active user")
	errAmbiguousUser  = errors.New("mailgateway: several users match")
	errNoSuchNotified = errors.New("mailgateway: no such notification")
)

// userForPaging resolves the part after "page+": a user id, a whole email
// address with "=" for "@", or an email local part that only one active
// user has.
func (d directory) userForPaging(ctx context.Context, key string) (uuid.UUID, error) {
	key = strings.ToLower(key)
	var rows pgx.Rows
	var err error
	if id, perr := uuid.Parse(key); perr == nil && len(key) == 36 {
		rows, err = d.db.Query(ctx, `SELECT id FROM users WHERE id = $1 AND active`, id)
	} else if i := strings.LastIndexByte(key, '='); i > 0 && i < len(key)-1 {
		rows, err = d.db.Query(ctx, `SELECT id FROM users WHERE email = $1 AND active`, key[:i]+"@"+key[i+1:])
	} else {
		rows, err = d.db.Query(ctx, `SELECT id FROM users WHERE split_part(email, '@', 1) = $1 AND active LIMIT 2`, key)
	}
	if err != nil {
		return uuid.Nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	switch {
	case err != nil:
		return uuid.Nil, err
	case len(ids) == 0:
		return uuid.Nil, errNoSuchUser
	case len(ids) > 1:
		return uuid.Nil, errAmbiguousUser
	}
	return ids[0], nil
}

// notified is one notification and the person it reached.
type notified struct {
	ID, PageID, UserID uuid.UUID
	Round, Step        int
	// Email is where the notification went: the email contact method's
	// address, or the account's address when the method is gone.
	Email string
	// AccountEmail is the person's sign-in address; a reply may come from
	// it too (a phone's mail app often sends from the work account).
	AccountEmail string
	Active       bool
}

// from reports whether addr is one of the notified person's addresses.
func (n notified) from(addr string) bool {
	return strings.EqualFold(addr, n.Email) || strings.EqualFold(addr, n.AccountEmail)
}

func (d directory) notification(ctx context.Context, id uuid.UUID) (notified, error) {
	n := notified{ID: id}
	err := d.db.QueryRow(ctx, `SELECT n.page_id, n.user_id, n.round, n.step,
			coalesce(CASE WHEN cm.kind = 'email' THEN cm.address END, u.email), u.email, u.active
		FROM notifications n JOIN users u ON u.id = n.user_id
		LEFT JOIN contact_methods cm ON cm.id = n.contact_method_id
		WHERE n.id = $1`, id).
		Scan(&n.PageID, &n.UserID, &n.Round, &n.Step, &n.Email, &n.AccountEmail, &n.Active)
	if errors.Is(err, pgx.ErrNoRows) {
		return n, errNoSuchNotified
	}
	return n, err
}

// pageState is what the "already acknowledged" answer says.
type pageState struct {
	Status         escalation.Status
	AcknowledgedBy *uuid.UUID
	AckName        string
	AcknowledgedAt *time.Time
}

func (d directory) pageState(ctx context.Context, id uuid.UUID) (pageState, error) {
	var s pageState
	err := d.db.QueryRow(ctx, `SELECT p.status, p.acknowledged_by, coalesce(u.name, ''), p.acknowledged_at
		FROM pages p LEFT JOIN users u ON u.id = p.acknowledged_by WHERE p.id = $1`, id).
		Scan(&s.Status, &s.AcknowledgedBy, &s.AckName, &s.AcknowledgedAt)
	return s, err
}
