package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// OpenSession opens a browser session for a user whom something other than
// a password identified: an EHR launch (SMART on FHIR), where the EHR's
// authorization server vouched for the clinician. method names that
// something in the audit trail ("smart"). A deactivated user gets
// ErrLoginFailed, like a failed password sign-in.
func (s *Store) OpenSession(ctx context.Context, userID uuid.UUID, method, clientAddr, userAgent string) (Session, string, error) {
	by := audit.Actor{UserID: userID, ClientAddr: clientAddr}
	secret, tokenHash := newSecret(sessionPrefix)
	var sess Session
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO sessions (user_id, token_hash, expires_at, client_addr, user_agent)
			SELECT id, $2, now() + $3::interval, $4, $5 FROM users WHERE id = $1 AND active
			RETURNING id, user_id, created_at, last_seen_at, expires_at, revoked_at, client_addr, user_agent`,
			userID, tokenHash, s.SessionLifetime, clientAddr, truncate(userAgent, 300))
		if err != nil {
			return err
		}
		sess, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Session])
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrLoginFailed
		}
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "auth.login", ObjectType: "session", ObjectID: sess.ID.String(),
			Details: map[string]any{"method": method}})
	})
	if errors.Is(err, ErrLoginFailed) {
		if aerr := audit.Record(ctx, s.db, by, audit.Entry{Action: "auth.login", ObjectType: "user", ObjectID: userID.String(),
			Outcome: audit.Failure, Details: map[string]any{"method": method, "reason": "deactivated_or_unknown"}}); aerr != nil {
			return Session{}, "", aerr
		}
	}
	return sess, secret, err
}

// UserByNPI returns the user with that National Provider Identifier: how an
// EHR's Practitioner is matched to a callroom user.
func (s *Store) UserByNPI(ctx context.Context, npi string) (User, error) {
	rows, err := s.db.Query(ctx, `SELECT `+userColumns+` FROM users WHERE npi = $1`, npi)
	if err != nil {
		return User{}, err
	}
	u, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[User])
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("user: %w", callroom.ErrNotFound)
	}
	return u, err
}
