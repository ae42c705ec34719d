package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/events"
	"github.com/callroom/callroom/internal/pg"
)

// EventSessionRevoked tells a user's open clients that credentials were
// revoked: data {"session_id": ...}, {"token_id": ...}, or {"all": true}.
// A client holding that credential (or any, for "all") clears what it holds
// (the remote wipe hospitals ask for) and returns to sign-in; the server ends
// the event streams opened with it.
const EventSessionRevoked = "session.revoked"

func publishRevoked(ctx context.Context, q pg.Querier, userID uuid.UUID, data map[string]any) error {
	return events.Publish(ctx, q, []uuid.UUID{userID}, EventSessionRevoked, data)
}

// Sessions lists a user's live browser sessions, newest first.
func (s *Store) Sessions(ctx context.Context, userID uuid.UUID) ([]Session, error) {
	rows, err := s.db.Query(ctx, `SELECT `+sessionColumns+` FROM sessions
		WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() AND last_seen_at > now() - $2::interval
		ORDER BY created_at DESC, id`, userID, s.SessionIdle)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[Session])
}

// Tokens lists a user's API tokens that still work, newest first.
func (s *Store) Tokens(ctx context.Context, userID uuid.UUID) ([]Token, error) {
	rows, err := s.db.Query(ctx, `SELECT id, user_id, name, created_at, last_used_at, expires_at, revoked_at
		FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
		ORDER BY created_at DESC, id`, userID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[Token])
}

// RevokeSession ends one of the user's sessions and announces it on their
// event stream in the same transaction.
func (s *Store) RevokeSession(ctx context.Context, by audit.Actor, userID, sessionID uuid.UUID) error {
	return s.revokeOne(ctx, by, userID, sessionID, "sessions", "session_id", "session")
}

// RevokeToken revokes one of the user's API tokens, likewise.
func (s *Store) RevokeToken(ctx context.Context, by audit.Actor, userID, tokenID uuid.UUID) error {
	defer s.tokens.forget() // as RevokeAll
	return s.revokeOne(ctx, by, userID, tokenID, "api_tokens", "token_id", "api_token")
}

func (s *Store) revokeOne(ctx context.Context, by audit.Actor, userID, id uuid.UUID, table, key, objectType string) error {
	return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var revoked bool
		err := tx.QueryRow(ctx, `SELECT revoked_at IS NOT NULL FROM `+table+` WHERE id = $1 AND user_id = $2 FOR UPDATE`,
			id, userID).Scan(&revoked)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%s: %w", objectType, callroom.ErrNotFound)
		}
		if err != nil || revoked {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE `+table+` SET revoked_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		if err := publishRevoked(ctx, tx, userID, map[string]any{key: id}); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: objectType + ".revoke", ObjectType: objectType, ObjectID: id.String(),
			Details: map[string]any{"user_id": userID}})
	})
}

// RevokeAll ends every session and API token of the user (a lost phone, a
// suspected compromise) and announces {"all": true}.
func (s *Store) RevokeAll(ctx context.Context, by audit.Actor, userID uuid.UUID) error {
	// This instance forgets its tokens once the revocation commits, before
	// it answers; the others when they hear of it (tokenCache).
	defer s.tokens.forget()
	return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE id = $1`, userID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("user: %w", callroom.ErrNotFound)
		}
		if err := revokeAll(ctx, tx, userID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "credentials.revoke_all", ObjectType: "user", ObjectID: userID.String()})
	})
}
