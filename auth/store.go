package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// Store keeps users, tokens and sessions in PostgreSQL.
type Store struct {
	db *pgxpool.Pool
	// SessionIdle ends a browser session after this long without a request
	// (HIPAA automatic logoff); SessionLifetime ends it regardless.
	SessionIdle     time.Duration
	SessionLifetime time.Duration
	// Sealer encrypts TOTP secrets at rest (package keys' *Keyring).
	Sealer Sealer
	// Issuer names callroom in authenticator apps.
	Issuer string

	tokens *tokenCache
}

// NewStore returns a Store with 15 minutes idle and 12 hours absolute session limits.
func NewStore(db *pgxpool.Pool) *Store {
	return &Store{db: db, SessionIdle: 15 * time.Minute, SessionLifetime: 12 * time.Hour, Issuer: "callroom", tokens: newTokenCache()}
}

const userColumns = `id, email, name, roles, npi, time_zone, active, created_at, updated_at`

// CreateUser adds a user.
func (s *Store) CreateUser(ctx context.Context, by audit.Actor, in NewUser) (User, error) {
	email, err := normalizeEmail("email", in.Email)
	if err != nil {
		return User{}, err
	}
	name, err := checkName("name", in.Name)
	if err != nil {
		return User{}, err
	}
	roles, err := ParseRoles("roles", in.Roles)
	if err != nil {
		return User{}, err
	}
	if in.TimeZone == "" {
		in.TimeZone = "UTC"
	}
	if err := CheckTimeZone("time_zone", in.TimeZone); err != nil {
		return User{}, err
	}
	if in.NPI != nil {
		if err := CheckNPI("npi", *in.NPI); err != nil {
			return User{}, err
		}
	}
	var hash *string
	if in.Password != nil {
		if err := checkPassword("password", *in.Password); err != nil {
			return User{}, err
		}
		h, err := HashPassword(*in.Password)
		if err != nil {
			return User{}, err
		}
		hash = &h
	}
	var u User
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO users (email, name, roles, npi, time_zone, password_hash)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+userColumns,
			email, name, roles, in.NPI, in.TimeZone, hash)
		if err != nil {
			return err
		}
		u, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[User])
		if err != nil {
			return userConstraint(err)
		}
		return audit.Record(ctx, tx, by, audit.Entry{
			Action: "user.create", ObjectType: "user", ObjectID: u.ID.String(),
			Details: map[string]any{"roles": roles},
		})
	})
	return u, err
}

func userConstraint(err error) error {
	switch {
	case pg.IsUniqueViolation(err, "users_email_key"):
		return callroom.Conflict("email", "a user with this email already exists")
	case pg.IsUniqueViolation(err, "users_npi_key"):
		return callroom.Conflict("npi", "a user with this NPI already exists")
	}
	return err
}

// User returns one user.
func (s *Store) User(ctx context.Context, id uuid.UUID) (User, error) {
	return s.userWhere(ctx, `id = $1`, id)
}

// UserByEmail returns the user with that email.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	return s.userWhere(ctx, `email = lower($1)`, email)
}

// userWhere returns the one user matching cond (with its argument $1), or
// ErrNotFound.
func (s *Store) userWhere(ctx context.Context, cond string, arg any) (User, error) {
	rows, err := s.db.Query(ctx, `SELECT `+userColumns+` FROM users WHERE `+cond, arg)
	if err != nil {
		return User{}, err
	}
	u, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[User])
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("user: %w", callroom.ErrNotFound)
	}
	return u, err
}

// UserFilter narrows Users.
type UserFilter struct {
	Role       Role
	ActiveOnly bool
}

// Users lists users by name.
func (s *Store) Users(ctx context.Context, f UserFilter) ([]User, error) {
	rows, err := s.db.Query(ctx, `SELECT `+userColumns+` FROM users
		WHERE ($1 = '' OR $1 = ANY (roles)) AND (NOT $2 OR active)
		ORDER BY name, id`, string(f.Role), f.ActiveOnly)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[User])
}

// UsersExist reports the first id in ids that is not an active user, for
// validating references from schedules and policies.
func UsersExist(ctx context.Context, q pg.Querier, ids []uuid.UUID) (missing uuid.UUID, ok bool, err error) {
	if len(ids) == 0 {
		return uuid.Nil, true, nil
	}
	rows, err := q.Query(ctx, `SELECT x FROM unnest($1::uuid[]) AS x
		WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = x AND active) LIMIT 1`, ids)
	if err != nil {
		return uuid.Nil, false, err
	}
	m, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return uuid.Nil, false, err
	}
	if len(m) > 0 {
		return m[0], false, nil
	}
	return uuid.Nil, true, nil
}

// UpdateUser applies c. Deactivating a user revokes all their tokens and
// sessions in the same transaction, so they are locked out at once.
func (s *Store) UpdateUser(ctx context.Context, by audit.Actor, id uuid.UUID, c UserChange) (User, error) {
	var roles []Role
	var err error
	if c.Name != nil {
		n, err := checkName("name", *c.Name)
		if err != nil {
			return User{}, err
		}
		c.Name = &n
	}
	if c.Roles != nil {
		if roles, err = ParseRoles("roles", *c.Roles); err != nil {
			return User{}, err
		}
	}
	if c.TimeZone != nil {
		if err := CheckTimeZone("time_zone", *c.TimeZone); err != nil {
			return User{}, err
		}
	}
	if c.NPI != nil && *c.NPI != "" {
		if err := CheckNPI("npi", *c.NPI); err != nil {
			return User{}, err
		}
	}
	var hash *string
	if c.Password != nil {
		if err := checkPassword("password", *c.Password); err != nil {
			return User{}, err
		}
		h, err := HashPassword(*c.Password)
		if err != nil {
			return User{}, err
		}
		hash = &h
	}
	var u User
	// This instance forgets its tokens once the change commits, before it
	// answers; the others when they hear of it (tokenCache).
	defer s.tokens.forget()
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE users SET
				name = coalesce($2, name),
				roles = CASE WHEN $3 THEN $4::text[] ELSE roles END,
				npi = CASE WHEN $5::text IS NULL THEN npi ELSE nullif($5, '') END,
				time_zone = coalesce($6, time_zone),
				active = coalesce($7, active),
				password_hash = coalesce($8, password_hash),
				updated_at = now()
			WHERE id = $1 RETURNING `+userColumns,
			id, c.Name, c.Roles != nil, roles, c.NPI, c.TimeZone, c.Active, hash)
		if err != nil {
			return err
		}
		u, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[User])
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("user: %w", callroom.ErrNotFound)
		}
		if err != nil {
			return userConstraint(err)
		}
		changed := []string{}
		for name, set := range map[string]bool{"name": c.Name != nil, "roles": c.Roles != nil, "npi": c.NPI != nil,
			"time_zone": c.TimeZone != nil, "active": c.Active != nil, "password": c.Password != nil} {
			if set {
				changed = append(changed, name)
			}
		}
		action := "user.update"
		if c.Active != nil && !*c.Active {
			action = "user.deactivate"
			if err := revokeAll(ctx, tx, id); err != nil {
				return err
			}
		}
		if c.Password != nil {
			// A new password ends sessions opened with the old one.
			tag, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL`, id)
			if err != nil {
				return err
			}
			// Open clients of those sessions clear what they hold. Tokens
			// stay valid; their streams reconnect at once.
			if tag.RowsAffected() > 0 && (c.Active == nil || *c.Active) {
				if err := publishRevoked(ctx, tx, id, map[string]any{"all": true}); err != nil {
					return err
				}
			}
		}
		return audit.Record(ctx, tx, by, audit.Entry{
			Action: action, ObjectType: "user", ObjectID: id.String(),
			Details: map[string]any{"changed": changed},
		})
	})
	return u, err
}

func revokeAll(ctx context.Context, q pg.Querier, userID uuid.UUID) error {
	if err := publishRevoked(ctx, q, userID, map[string]any{"all": true}); err != nil {
		return err
	}
	if _, err := q.Exec(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL`, userID); err != nil {
		return err
	}
	_, err := q.Exec(ctx, `UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL`, userID)
	return err
}
