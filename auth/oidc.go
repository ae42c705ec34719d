package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// OIDCIdentity is who an OpenID Connect provider says signed in, taken from
// a verified ID token.
type OIDCIdentity struct {
	Issuer, Subject string
	Email           string
	EmailVerified   bool
}

// ErrNoLinkedUser means the identity provider vouched for someone who is not
// (or not yet) a callroom user. callroom never creates users on sign-on: an
// administrator creates them, and the first sign-on links them by email.
var ErrNoLinkedUser = errors.New("no callroom user matches this single sign-on identity; ask an administrator to create your account")

// BeginOIDC remembers a sign-on in progress: the state (stored hashed), the
// nonce and the PKCE verifier, for whichever instance receives the callback.
func (s *Store) BeginOIDC(ctx context.Context, state, nonce, verifier string) error {
	_, err := s.db.Exec(ctx, `INSERT INTO oidc_logins (state_hash, nonce, verifier) VALUES ($1, $2, $3)`,
		hashSecret(state), nonce, verifier)
	return err
}

// TakeOIDC returns and forgets the sign-on that state began, if it began
// within the last 10 minutes. A state is good for one callback.
func (s *Store) TakeOIDC(ctx context.Context, state string) (nonce, verifier string, err error) {
	var fresh bool
	err = s.db.QueryRow(ctx, `DELETE FROM oidc_logins WHERE state_hash = $1
		RETURNING nonce, verifier, created_at > now() - interval '10 minutes'`,
		hashSecret(state)).Scan(&nonce, &verifier, &fresh)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !fresh) {
		return "", "", ErrUnauthenticated
	}
	return nonce, verifier, err
}

// SignInOIDC opens a session for the callroom user linked to id: by issuer
// and subject when linked before, else by a verified email of an active user
// not yet linked to another subject of this issuer (and links them then).
func (s *Store) SignInOIDC(ctx context.Context, id OIDCIdentity, clientAddr, userAgent string) (Session, string, error) {
	var userID uuid.UUID
	var active bool
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT u.id, u.active FROM oidc_identities i JOIN users u ON u.id = i.user_id
			WHERE i.issuer = $1 AND i.subject = $2`, id.Issuer, id.Subject).Scan(&userID, &active)
		if err == nil || !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if !id.EmailVerified || id.Email == "" {
			return ErrNoLinkedUser
		}
		err = tx.QueryRow(ctx, `SELECT u.id, u.active FROM users u WHERE u.email = lower($1)
			AND NOT EXISTS (SELECT 1 FROM oidc_identities i WHERE i.issuer = $2 AND i.user_id = u.id)`,
			id.Email, id.Issuer).Scan(&userID, &active)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoLinkedUser
		}
		if err != nil || !active {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO oidc_identities (issuer, subject, user_id) VALUES ($1, $2, $3)`,
			id.Issuer, id.Subject, userID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Actor{UserID: userID, ClientAddr: clientAddr}, audit.Entry{
			Action: "oidc.link", ObjectType: "user", ObjectID: userID.String(), Details: map[string]any{"issuer": id.Issuer}})
	})
	by := audit.Actor{UserID: userID, ClientAddr: clientAddr}
	if err == nil && !active {
		err = ErrNoLinkedUser
	}
	if errors.Is(err, ErrNoLinkedUser) {
		if aerr := audit.Record(ctx, s.db, by, audit.Entry{Action: "auth.login", ObjectType: "user", ObjectID: userID.String(),
			Outcome: audit.Failure, Details: map[string]any{"reason": "oidc_no_user", "method": "oidc"}}); aerr != nil {
			return Session{}, "", aerr
		}
		return Session{}, "", err
	}
	if err != nil {
		return Session{}, "", fmt.Errorf("single sign-on: %w", err)
	}
	return s.openSession(ctx, by, userID, "oidc", clientAddr, userAgent)
}
