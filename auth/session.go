package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// Session is a browser sign-in.
type Session struct {
	ID         uuid.UUID  `json:"id" db:"id"`
	UserID     uuid.UUID  `json:"user_id" db:"user_id"`
	CreatedAt  time.Time  `json:"created_at" db:"created_at"`
	LastSeenAt time.Time  `json:"last_seen_at" db:"last_seen_at"`
	ExpiresAt  time.Time  `json:"expires_at" db:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty" db:"revoked_at"`
	ClientAddr string     `json:"client_addr" db:"client_addr"`
	UserAgent  string     `json:"user_agent" db:"user_agent"`
}

// ErrLoginFailed is the one answer to every failed login, whether the email
// is unknown, the password wrong or the user deactivated: the response must
// not reveal which emails exist.
var ErrLoginFailed = errors.New("email or password is incorrect")

// Login checks an email and password and opens a session. Every attempt is
// audited, failures included.
func (s *Store) Login(ctx context.Context, email, password, clientAddr, userAgent string) (Session, string, error) {
	var (
		id     uuid.UUID
		hash   *string
		active bool
	)
	err := s.db.QueryRow(ctx, `SELECT id, password_hash, active FROM users WHERE email = lower($1)`, email).Scan(&id, &hash, &active)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Session{}, "", err
	}
	ok := false
	if hash != nil && len(password) <= MaxPasswordLength {
		ok, _ = CheckPassword(*hash, password)
	} else {
		CheckPassword(dummyHash, password) //nolint:errcheck // equalise timing
	}
	by := audit.Actor{UserID: id, ClientAddr: clientAddr}
	if !ok || !active {
		reason := "bad_password"
		switch {
		case id == uuid.Nil:
			reason = "unknown_email"
		case !active:
			reason = "deactivated"
		case hash == nil:
			reason = "no_password"
		}
		err := audit.Record(ctx, s.db, by, audit.Entry{Action: "auth.login", ObjectType: "user", ObjectID: id.String(),
			Outcome: audit.Failure, Details: map[string]any{"reason": reason}})
		if err != nil {
			return Session{}, "", err
		}
		return Session{}, "", ErrLoginFailed
	}
	secret, tokenHash := newSecret(sessionPrefix)
	var sess Session
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO sessions (user_id, token_hash, expires_at, client_addr, user_agent)
			VALUES ($1, $2, now() + $3::interval, $4, $5) RETURNING id, user_id, created_at, last_seen_at, expires_at, revoked_at, client_addr, user_agent`,
			id, tokenHash, s.SessionLifetime, clientAddr, truncate(userAgent, 300))
		if err != nil {
			return err
		}
		if sess, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Session]); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "auth.login", ObjectType: "session", ObjectID: sess.ID.String()})
	})
	return sess, secret, err
}

// Logout ends the session that secret belongs to.
func (s *Store) Logout(ctx context.Context, p Principal) error {
	if p.SessionID == uuid.Nil {
		return nil
	}
	return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, p.SessionID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, p.Actor(), audit.Entry{Action: "auth.logout", ObjectType: "session", ObjectID: p.SessionID.String()})
	})
}

func (s *Store) authSession(ctx context.Context, secret, clientAddr string) (Principal, error) {
	rows, err := s.db.Query(ctx, `SELECT t.id AS cred_id, t.last_seen_at AS last_used,
			u.id, u.email, u.name, u.roles, u.npi, u.time_zone, u.active, u.created_at, u.updated_at
		FROM sessions t JOIN users u ON u.id = t.user_id
		WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now()
		  AND t.last_seen_at > now() - $2::interval AND u.active`,
		hashSecret(secret), s.SessionIdle)
	if err != nil {
		return Principal{}, err
	}
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[credentialRow])
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, fmt.Errorf("session: %w", err)
	}
	// Idle logoff needs last_seen_at; refreshing it every 30 s is precise enough
	// for a 15-minute limit and spares a write on most requests.
	if r.LastUsed == nil || time.Since(*r.LastUsed) > 30*time.Second {
		s.db.Exec(ctx, `UPDATE sessions SET last_seen_at = now() WHERE id = $1`, r.CredID) //nolint:errcheck // best effort
	}
	return Principal{User: r.User, SessionID: r.CredID, ClientAddr: clientAddr}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
