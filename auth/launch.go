package auth

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// StartSession opens a browser session for a user someone else has
// authenticated (the EHR, in a SMART on FHIR launch); method names how
// (audited). The user must be active.
func (s *Store) StartSession(ctx context.Context, userID uuid.UUID, method, clientAddr, userAgent string) (Session, string, error) {
	secret, tokenHash := newSecret(sessionPrefix)
	var sess Session
	by := audit.Actor{UserID: userID, ClientAddr: clientAddr}
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO sessions (user_id, token_hash, expires_at, client_addr, user_agent)
			SELECT id, $2, now() + $3::interval, $4, $5 FROM users WHERE id = $1 AND active
			RETURNING id, user_id, created_at, last_seen_at, expires_at, revoked_at, client_addr, user_agent`,
			userID, tokenHash, s.SessionLifetime, clientAddr, truncate(userAgent, 300))
		if err != nil {
			return err
		}
		if sess, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Session]); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "auth.login", ObjectType: "session", ObjectID: sess.ID.String(),
			Details: map[string]any{"method": method}})
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, "", ErrLoginFailed
	}
	return sess, secret, err
}
