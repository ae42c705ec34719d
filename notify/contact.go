package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// Kinds of contact method, which are also the channels a notification goes
// out on.
const (
	// KindInApp is the event stream the web client shows. It has no address
	// and a user has at most one.
	KindInApp = "in_app"
	// KindEmail sends to an email address through the hospital relay.
	KindEmail = "email"
	// KindWebhook POSTs a signed JSON body to an SMS or pager gateway.
	KindWebhook = "webhook"
)

// Limits on contact method input.
const (
	maxContactLabelLen   = 100  // characters
	maxContactEmailLen   = 254  // bytes, RFC 5321's path limit
	maxWebhookSecretLen  = 256  // bytes; enough for any HMAC key a gateway hands out
	generatedSecretBytes = 32   // random bytes in a generated webhook secret, hex-encoded
	maxContactURLLen     = 2048 // bytes, as for links in notices
)

// ContactMethod is one way of reaching a person. The webhook secret is
// deliberately not a field: it is returned once, by CreateContactMethod, and
// afterwards only the delivery worker reads it (WebhookSecret).
type ContactMethod struct {
	ID     uuid.UUID `json:"id" db:"id"`
	UserID uuid.UUID `json:"user_id" db:"user_id"`
	Kind   string    `json:"kind" db:"kind"` // KindInApp, KindEmail or KindWebhook
	Label  string    `json:"label" db:"label"`
	// Address is the email address or the webhook URL; empty for in-app.
	Address   string    `json:"address" db:"address"`
	CreatedAt time.Time `json:"created_at" db:"created_at"`
}

// NewContactMethod is what creating a contact method takes.
type NewContactMethod struct {
	Kind    string `json:"kind"`
	Label   string `json:"label,omitempty"`
	Address string `json:"address,omitempty"`
	// Secret is the webhook's HMAC key (at least 16 bytes). Leave it nil to
	// have one generated; only webhooks take one.
	Secret *string `json:"secret,omitempty"`
}

// Store keeps people's contact methods and notification rules in PostgreSQL.
type Store struct {
	db *pgxpool.Pool
}

// NewStore returns a Store using db.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db} }

const contactMethodColumns = `id, user_id, kind, label, address, created_at`

// CreateContactMethod adds a contact method for userID.
//
// Validation names the offending field: kind (one of in_app, email,
// webhook), address (an email address, lower-cased; an absolute https URL,
// or http to a loopback host, for a webhook; nothing for in-app), label (at
// most 100 characters) and secret (webhooks only, at least 16 bytes). A
// second in-app method for the same user is a conflict on kind.
//
// For a webhook without a secret, 32 random bytes are generated and
// returned hex-encoded as secret; this is the only time the secret is ever
// returned. Otherwise secret is empty.
//
// The audit entry records the kind only: the address is contact
// information and stays out of the trail.
func (s *Store) CreateContactMethod(ctx context.Context, by audit.Actor, userID uuid.UUID, in NewContactMethod) (ContactMethod, string, error) {
	in, generated, err := checkContactMethod(in)
	if err != nil {
		return ContactMethod{}, "", err
	}
	var cm ContactMethod
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if err := userExists(ctx, tx, userID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `INSERT INTO contact_methods (user_id, kind, label, address, secret)
			VALUES ($1, $2, $3, $4, $5) RETURNING `+contactMethodColumns,
			userID, in.Kind, in.Label, in.Address, in.Secret)
		if err != nil {
			return err
		}
		cm, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[ContactMethod])
		switch {
		case pg.IsUniqueViolation(err, "contact_methods_in_app_key"):
			return callroom.Conflict("kind", "this user already has an in-app contact method")
		case err != nil:
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{
			Action: "contact_method.create", ObjectType: "contact_method", ObjectID: cm.ID.String(),
			Details: map[string]any{"kind": cm.Kind},
		})
	})
	if err != nil {
		return ContactMethod{}, "", err
	}
	if !generated {
		return cm, "", nil
	}
	return cm, *in.Secret, nil
}

// checkContactMethod validates and normalises in. generated reports that
// in.Secret was made here (and so must be shown to the caller once).
func checkContactMethod(in NewContactMethod) (_ NewContactMethod, generated bool, err error) {
	in.Label = strings.TrimSpace(in.Label)
	in.Address = strings.TrimSpace(in.Address)
	switch in.Kind {
	case KindInApp, KindEmail, KindWebhook:
	case "":
		return in, false, callroom.Invalid("kind", "is required (in_app, email or webhook)")
	default:
		return in, false, callroom.Invalid("kind", "must be one of in_app, email, webhook")
	}
	if hasControl(in.Label) {
		return in, false, callroom.Invalid("label", "contains control characters")
	}
	if utf8.RuneCountInString(in.Label) > maxContactLabelLen {
		return in, false, callroom.Invalid("label", "is longer than %d characters", maxContactLabelLen)
	}
	switch in.Kind {
	case KindInApp:
		if in.Address != "" {
			return in, false, callroom.Invalid("address", "in-app contact methods take no address")
		}
	case KindEmail:
		a, err := checkContactEmail(in.Address)
		if err != nil {
			return in, false, err
		}
		in.Address = a
	case KindWebhook:
		if err := checkWebhookURL(in.Address); err != nil {
			return in, false, callroom.Invalid("address", "%s", err)
		}
	}
	if in.Kind != KindWebhook {
		if in.Secret != nil {
			return in, false, callroom.Invalid("secret", "only webhook contact methods take a secret")
		}
		return in, false, nil
	}
	if in.Secret == nil {
		secret := newWebhookSecret()
		in.Secret = &secret
		return in, true, nil
	}
	switch sec := *in.Secret; {
	case len(sec) < minWebhookSecret:
		return in, false, callroom.Invalid("secret", "must be at least %d bytes", minWebhookSecret)
	case len(sec) > maxWebhookSecretLen:
		return in, false, callroom.Invalid("secret", "must be at most %d bytes", maxWebhookSecretLen)
	case hasControl(sec):
		return in, false, callroom.Invalid("secret", "contains control characters or invalid UTF-8")
	}
	return in, false, nil
}

// checkContactEmail accepts one bare address (no display name) and returns
// it lower-cased.
func checkContactEmail(s string) (string, error) {
	if s == "" {
		return "", callroom.Invalid("address", "is required for an email contact method")
	}
	a, err := parseAddress(s)
	if err != nil || a.Address != s || len(s) > maxContactEmailLen {
		return "", callroom.Invalid("address", "is not an email address")
	}
	return strings.ToLower(s), nil
}

// checkWebhookURL applies the webhook sender's URL policy (see
// NewWebhookSender) when the address is saved, so a contact method that
// would be refused at delivery time is refused now: an absolute https URL,
// or http only to a loopback host ("localhost", 127.0.0.0/8, ::1), which
// isLoopbackHost decides exactly as for the sender. Errors name no value.
func checkWebhookURL(raw string) error {
	if raw == "" {
		return errors.New("is required for a webhook contact method")
	}
	if len(raw) > maxContactURLLen {
		return fmt.Errorf("is longer than %d bytes", maxContactURLLen)
	}
	if hasControl(raw) || strings.ContainsAny(raw, " \t") {
		return errors.New("contains whitespace or control characters")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return errors.New("is not an absolute http(s) URL")
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return errors.New("must use https unless the host is loopback")
	}
	return nil
}

// newWebhookSecret returns 32 random bytes, hex-encoded.
func newWebhookSecret() string {
	b := make([]byte, generatedSecretBytes)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails (it crashes the program instead)
	return hex.EncodeToString(b)
}

// userExists answers ErrNotFound for an unknown user. Deactivated users are
// found: an administrator may still tidy up their contact methods.
func userExists(ctx context.Context, q pg.Querier, userID uuid.UUID) error {
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, userID).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("user: %w", callroom.ErrNotFound)
	}
	return nil
}

// ContactMethods lists userID's contact methods, oldest first. An unknown
// user has none.
func (s *Store) ContactMethods(ctx context.Context, userID uuid.UUID) ([]ContactMethod, error) {
	rows, err := s.db.Query(ctx, `SELECT `+contactMethodColumns+` FROM contact_methods
		WHERE user_id = $1 ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[ContactMethod])
	if out == nil && err == nil {
		out = []ContactMethod{}
	}
	return out, err
}

// DeleteContactMethod removes one of userID's contact methods and, through
// the foreign key, every notification rule that uses it. Notifications
// already sent keep their row with the contact method cleared. An id that
// is not userID's is ErrNotFound, so nobody learns about other people's
// methods.
func (s *Store) DeleteContactMethod(ctx context.Context, by audit.Actor, userID, id uuid.UUID) error {
	return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var kind string
		err := tx.QueryRow(ctx, `DELETE FROM contact_methods WHERE id = $1 AND user_id = $2 RETURNING kind`, id, userID).Scan(&kind)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("contact method: %w", callroom.ErrNotFound)
		}
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{
			Action: "contact_method.delete", ObjectType: "contact_method", ObjectID: id.String(),
			Details: map[string]any{"kind": kind},
		})
	})
}

// WebhookSecret returns the HMAC key of a webhook contact method, for the
// delivery worker. It is ErrNotFound when the method no longer exists (or is
// not a webhook), which a worker treats as a permanent failure.
func WebhookSecret(ctx context.Context, q pg.Querier, contactMethodID uuid.UUID) ([]byte, error) {
	var secret *string
	err := q.QueryRow(ctx, `SELECT secret FROM contact_methods WHERE id = $1 AND kind = 'webhook'`, contactMethodID).Scan(&secret)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("webhook contact method: %w", callroom.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if secret == nil || len(*secret) < minWebhookSecret {
		return nil, fmt.Errorf("notify: webhook contact method %s has no usable secret", contactMethodID)
	}
	return []byte(*secret), nil
}
