package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
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
	// Method is how it was opened: password, password+totp,
	// password+recovery or oidc.
	Method string `json:"method" db:"method"`
}

const sessionColumns = `id, user_id, created_at, last_seen_at, expires_at, revoked_at, client_addr, user_agent, method`

// ErrLoginFailed is the one answer to every failed login, whether the email
// is unknown, the password wrong, the second factor wrong, the account locked
// or the user deactivated: the response must not reveal which emails exist.
var ErrLoginFailed = errors.New("email or password is incorrect")

// Credentials are what a person signs in with. TOTPCode or RecoveryCode is
// needed when the user has enrolled an authenticator.
type Credentials struct {
	Email, Password        string
	TOTPCode, RecoveryCode string
	ClientAddr, UserAgent  string
}

// Login checks an email and password and opens a session. It is SignIn
// without a second factor.
func (s *Store) Login(ctx context.Context, email, password, clientAddr, userAgent string) (Session, string, error) {
	return s.SignIn(ctx, Credentials{Email: email, Password: password, ClientAddr: clientAddr, UserAgent: userAgent})
}

// SignIn checks credentials and opens a session. Every attempt is audited,
// failures included. Wrong passwords and wrong second factors count towards
// the lockout threshold of the security settings; reaching it locks the
// account for the lockout period (and audits auth.lockout). A locked account
// answers exactly like a wrong password, after the same password hashing, so
// neither the answer nor its timing tells whether an email exists.
//
// A right password for a user with TOTP but no code answers ErrMFARequired;
// that does not count as a failure.
func (s *Store) SignIn(ctx context.Context, c Credentials) (Session, string, error) {
	var (
		id      uuid.UUID
		hash    *string
		active  bool
		locked  bool
		hasTOTP bool
	)
	err := s.db.QueryRow(ctx, `SELECT u.id, u.password_hash, u.active,
			coalesce(l.locked_until > now(), false),
			EXISTS (SELECT 1 FROM user_totp t WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL)
		FROM users u LEFT JOIN login_lockouts l ON l.user_id = u.id
		WHERE u.email = lower($1)`, c.Email).Scan(&id, &hash, &active, &locked, &hasTOTP)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Session{}, "", err
	}
	ok := false
	if hash != nil && len(c.Password) <= MaxPasswordLength {
		ok, _ = CheckPassword(*hash, c.Password)
	} else {
		CheckPassword(dummyHash, c.Password) //nolint:errcheck // equalise timing
	}
	by := audit.Actor{UserID: id, ClientAddr: c.ClientAddr}
	fail := func(reason string, count bool) (Session, string, error) {
		err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
			if count {
				if err := s.countFailure(ctx, tx, by, id); err != nil {
					return err
				}
			}
			return audit.Record(ctx, tx, by, audit.Entry{Action: "auth.login", ObjectType: "user", ObjectID: id.String(),
				Outcome: audit.Failure, Details: map[string]any{"reason": reason}})
		})
		if err != nil {
			return Session{}, "", err
		}
		return Session{}, "", ErrLoginFailed
	}
	switch {
	case id == uuid.Nil:
		return fail("unknown_email", false)
	case !active:
		return fail("deactivated", false)
	case locked:
		return fail("locked", false)
	case hash == nil:
		return fail("no_password", false)
	case !ok:
		return fail("bad_password", true)
	}
	method := "password"
	if hasTOTP {
		switch {
		case c.TOTPCode != "":
			good, err := s.checkTOTP(ctx, s.db, id, c.TOTPCode, time.Now())
			if err != nil {
				return Session{}, "", err
			}
			if !good {
				return fail("bad_totp", true)
			}
			method = "password+totp"
		case c.RecoveryCode != "":
			good, err := useRecoveryCode(ctx, s.db, id, c.RecoveryCode)
			if err != nil {
				return Session{}, "", err
			}
			if !good {
				return fail("bad_recovery_code", true)
			}
			method = "password+recovery"
		default:
			return Session{}, "", ErrMFARequired
		}
	}
	return s.openSession(ctx, by, id, method, c.ClientAddr, c.UserAgent)
}

// countFailure adds one failed login for userID and locks the account when
// the threshold is reached. Failures further apart than the lockout period
// do not add up.
func (s *Store) countFailure(ctx context.Context, tx pgx.Tx, by audit.Actor, userID uuid.UUID) error {
	var failures, threshold, minutes int
	err := tx.QueryRow(ctx, `INSERT INTO login_lockouts AS l (user_id, failures) VALUES ($1, 1)
		ON CONFLICT (user_id) DO UPDATE SET last_failure_at = now(), failures = CASE
			WHEN l.last_failure_at < now() - make_interval(mins => (SELECT lockout_minutes FROM security_settings)) THEN 1
			ELSE l.failures + 1 END
		RETURNING l.failures, (SELECT lockout_threshold FROM security_settings), (SELECT lockout_minutes FROM security_settings)`,
		userID).Scan(&failures, &threshold, &minutes)
	if err != nil || failures < threshold {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE login_lockouts SET failures = 0, locked_until = now() + make_interval(mins => $2)
		WHERE user_id = $1`, userID, minutes); err != nil {
		return err
	}
	return audit.Record(ctx, tx, by, audit.Entry{Action: "auth.lockout", ObjectType: "user", ObjectID: userID.String(),
		Details: map[string]any{"failures": failures, "minutes": minutes}})
}

// Unlock ends a user's lockout and clears their failure count.
func (s *Store) Unlock(ctx context.Context, by audit.Actor, userID uuid.UUID) error {
	return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE id = $1`, userID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("user: %w", callroom.ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM login_lockouts WHERE user_id = $1`, userID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "auth.unlock", ObjectType: "user", ObjectID: userID.String()})
	})
}

// openSession starts a session for a user whose credentials were checked,
// clears their failure count, and audits the login.
func (s *Store) openSession(ctx context.Context, by audit.Actor, userID uuid.UUID, method, clientAddr, userAgent string) (Session, string, error) {
	secret, tokenHash := newSecret(sessionPrefix)
	var sess Session
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO sessions (user_id, token_hash, expires_at, client_addr, user_agent, method)
			VALUES ($1, $2, now() + $3::interval, $4, $5, $6) RETURNING `+sessionColumns,
			userID, tokenHash, s.SessionLifetime, clientAddr, truncate(userAgent, 300), method)
		if err != nil {
			return err
		}
		if sess, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Session]); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM login_lockouts WHERE user_id = $1`, userID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "auth.login", ObjectType: "session", ObjectID: sess.ID.String(),
			Details: map[string]any{"method": method}})
	})
	return sess, secret, err
}

// Logout ends the session that secret belongs to, and tells the session's
// other open tabs (session.revoked) to clear what they hold.
func (s *Store) Logout(ctx context.Context, p Principal) error {
	if p.SessionID == uuid.Nil {
		return nil
	}
	return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, p.SessionID); err != nil {
			return err
		}
		if err := publishRevoked(ctx, tx, p.User.ID, map[string]any{"session_id": p.SessionID}); err != nil {
			return err
		}
		return audit.Record(ctx, tx, p.Actor(), audit.Entry{Action: "auth.logout", ObjectType: "session", ObjectID: p.SessionID.String()})
	})
}

func (s *Store) authSession(ctx context.Context, secret, clientAddr string) (Principal, error) {
	// A session of a user whom the security settings require to have a second
	// factor, opened by password before they enrolled one, may only enrol
	// (see Principal.MFAEnrollmentRequired). Single sign-on sessions are
	// exempt: the identity provider owns the second factor.
	rows, err := s.db.Query(ctx, `SELECT t.id AS cred_id, t.last_seen_at AS last_used,
			(t.method <> 'oidc'
			 AND NOT EXISTS (SELECT 1 FROM user_totp m WHERE m.user_id = u.id AND m.confirmed_at IS NOT NULL)
			 AND EXISTS (SELECT 1 FROM security_settings x WHERE x.mfa_required_all OR x.mfa_required_roles && u.roles)
			) AS mfa_enrollment_required,
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
	return Principal{User: r.User, SessionID: r.CredID, ClientAddr: clientAddr, MFAEnrollmentRequired: r.MFAEnrollmentRequired}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
