package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// Secrets handed to clients start with a prefix that says what they are, so
// a leaked one is recognisable by secret scanners and in support tickets.
const (
	tokenPrefix   = "crt_"
	sessionPrefix = "crs_"
)

// ErrUnauthenticated means the credential is missing, unknown, expired or revoked.
var ErrUnauthenticated = errors.New("unauthenticated")

// NewSecret returns a new random secret starting with prefix, and the hash
// to store in its place. Other packages use it for their own capability URLs
// (calendar feeds, email reply addresses).
func NewSecret(prefix string) (secret string, hash []byte) { return newSecret(prefix) }

// HashSecret is the stored form of a secret made by NewSecret.
func HashSecret(secret string) []byte { return hashSecret(secret) }

func newSecret(prefix string) (secret string, hash []byte) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(secret))
	return secret, h[:]
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Token describes an API token; the secret itself is only returned once, at creation.
type Token struct {
	ID         uuid.UUID  `json:"id" db:"id"`
	UserID     uuid.UUID  `json:"user_id" db:"user_id"`
	Name       string     `json:"name" db:"name"`
	CreatedAt  time.Time  `json:"created_at" db:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at" db:"last_used_at"`
	ExpiresAt  *time.Time `json:"expires_at" db:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at" db:"revoked_at"`
}

// CreateToken makes a new API bearer token for userID and returns its secret.
func (s *Store) CreateToken(ctx context.Context, by audit.Actor, userID uuid.UUID, name string, expires *time.Time) (Token, string, error) {
	if len(name) > 200 {
		return Token{}, "", callroom.Invalid("name", "is longer than 200 characters")
	}
	secret, hash := newSecret(tokenPrefix)
	var t Token
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var active bool
		if err := tx.QueryRow(ctx, `SELECT active FROM users WHERE id = $1`, userID).Scan(&active); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("user: %w", callroom.ErrNotFound)
			}
			return err
		}
		if !active {
			return callroom.Conflict("user_id", "user is deactivated")
		}
		rows, err := tx.Query(ctx, `INSERT INTO api_tokens (user_id, name, token_hash, expires_at) VALUES ($1, $2, $3, $4)
			RETURNING id, user_id, name, created_at, last_used_at, expires_at, revoked_at`, userID, name, hash, expires)
		if err != nil {
			return err
		}
		if t, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Token]); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "token.create", ObjectType: "api_token", ObjectID: t.ID.String(),
			Details: map[string]any{"user_id": userID}})
	})
	return t, secret, err
}

// Authenticate resolves a bearer token or session secret to its user. Both
// kinds of secret go through here, so every /api/v1 request is checked the
// same way whatever client sent it.
func (s *Store) Authenticate(ctx context.Context, secret, clientAddr string) (Principal, error) {
	switch {
	case strings.HasPrefix(secret, tokenPrefix):
		return s.authToken(ctx, secret, clientAddr)
	case strings.HasPrefix(secret, sessionPrefix):
		return s.authSession(ctx, secret, clientAddr)
	}
	return Principal{}, ErrUnauthenticated
}

type credentialRow struct {
	CredID                uuid.UUID  `db:"cred_id"`
	LastUsed              *time.Time `db:"last_used"`
	MFAEnrollmentRequired bool       `db:"mfa_enrollment_required"`
	User
}

// tokenRow is an API token's credentialRow and its expiry.
type tokenRow struct {
	credentialRow
	Expires *time.Time `db:"expires"`
}

func (s *Store) authToken(ctx context.Context, secret, clientAddr string) (Principal, error) {
	hash := hashSecret(secret)
	r, cached, gen := s.tokens.get(string(hash))
	if !cached {
		// API tokens are issued by administrators to systems, not typed by
		// people, so the second-factor enrolment requirement does not apply.
		rows, err := s.db.Query(ctx, `SELECT t.id AS cred_id, t.last_used_at AS last_used, false AS mfa_enrollment_required,
				t.expires_at AS expires, u.id, u.email, u.name, u.roles, u.npi, u.time_zone, u.active, u.created_at, u.updated_at
			FROM api_tokens t JOIN users u ON u.id = t.user_id
			WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.active`,
			hash)
		if err != nil {
			return Principal{}, err
		}
		t, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[tokenRow])
		if errors.Is(err, pgx.ErrNoRows) {
			return Principal{}, ErrUnauthenticated
		}
		if err != nil {
			return Principal{}, err
		}
		r = t.credentialRow
		s.tokens.put(string(hash), r, t.Expires, gen)
	}
	// Record use at most once a minute: a write per request would cost more than the request.
	if r.LastUsed == nil || time.Since(*r.LastUsed) > time.Minute {
		s.db.Exec(ctx, `UPDATE api_tokens SET last_used_at = now() WHERE id = $1`, r.CredID) //nolint:errcheck // best effort
		s.tokens.used(string(hash), time.Now())
	}
	return Principal{User: r.User, TokenID: r.CredID, ClientAddr: clientAddr}, nil
}

// CredentialsChanged is told of each notification on CredentialsChannel: a
// commit changed a token or a user, so no token is served from memory until
// looked up again.
func (s *Store) CredentialsChanged(string) { s.tokens.forget() }

// CredentialsListening is told whether notifications on CredentialsChannel
// are heard. Tokens that authenticated are kept in memory only while they
// are (tokenCache); a Store never told keeps none.
func (s *Store) CredentialsListening(on bool) { s.tokens.setListening(on) }
