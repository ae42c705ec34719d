package auth

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
)

// StartSession opens a browser session for a user someone else has
// authenticated (the EHR, in a SMART on FHIR launch); method names how
// (recorded on the session and audited). The user must be active.
func (s *Store) StartSession(ctx context.Context, userID uuid.UUID, method, clientAddr, userAgent string) (Session, string, error) {
	var active bool
	err := s.db.QueryRow(ctx, `SELECT active FROM users WHERE id = $1`, userID).Scan(&active)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !active) {
		return Session{}, "", ErrLoginFailed
	}
	if err != nil {
		return Session{}, "", err
	}
	return s.openSession(ctx, audit.Actor{UserID: userID, ClientAddr: clientAddr}, userID, method, clientAddr, userAgent)
}
