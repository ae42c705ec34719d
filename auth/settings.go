package auth

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// SecuritySettings are the administrator's choices for how people sign in.
// They live in the database, so every instance applies the same ones.
type SecuritySettings struct {
	// MFARequiredAll requires a second factor of every user; MFARequiredRoles
	// of users holding any of these roles. A user required to have one who
	// has not enrolled can reach only enrolment (and /me) until they do.
	MFARequiredAll   bool   `json:"mfa_required_all" db:"mfa_required_all"`
	MFARequiredRoles []Role `json:"mfa_required_roles" db:"mfa_required_roles"`
	// LockoutThreshold failed logins in a row lock the account for
	// LockoutMinutes.
	LockoutThreshold int       `json:"lockout_threshold" db:"lockout_threshold"`
	LockoutMinutes   int       `json:"lockout_minutes" db:"lockout_minutes"`
	UpdatedAt        time.Time `json:"updated_at" db:"updated_at"`
}

// SecuritySettingsChange is a partial update; nil fields stay as they are.
type SecuritySettingsChange struct {
	MFARequiredAll   *bool     `json:"mfa_required_all,omitempty"`
	MFARequiredRoles *[]string `json:"mfa_required_roles,omitempty"`
	LockoutThreshold *int      `json:"lockout_threshold,omitempty"`
	LockoutMinutes   *int      `json:"lockout_minutes,omitempty"`
}

const settingsColumns = `mfa_required_all, mfa_required_roles, lockout_threshold, lockout_minutes, updated_at`

// Settings returns the security settings.
func (s *Store) Settings(ctx context.Context) (SecuritySettings, error) {
	rows, err := s.db.Query(ctx, `SELECT `+settingsColumns+` FROM security_settings`)
	if err != nil {
		return SecuritySettings{}, err
	}
	return pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[SecuritySettings])
}

// UpdateSettings applies c and audits the change.
func (s *Store) UpdateSettings(ctx context.Context, by audit.Actor, c SecuritySettingsChange) (SecuritySettings, error) {
	var roles []Role
	if c.MFARequiredRoles != nil {
		var err error
		if roles, err = ParseRoles("mfa_required_roles", *c.MFARequiredRoles); err != nil {
			return SecuritySettings{}, err
		}
	}
	if c.LockoutThreshold != nil && (*c.LockoutThreshold < 1 || *c.LockoutThreshold > 100) {
		return SecuritySettings{}, callroom.Invalid("lockout_threshold", "must be between 1 and 100")
	}
	if c.LockoutMinutes != nil && (*c.LockoutMinutes < 1 || *c.LockoutMinutes > 1440) {
		return SecuritySettings{}, callroom.Invalid("lockout_minutes", "must be between 1 and 1440 (a day)")
	}
	var out SecuritySettings
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE security_settings SET
				mfa_required_all = coalesce($1, mfa_required_all),
				mfa_required_roles = CASE WHEN $2 THEN $3::text[] ELSE mfa_required_roles END,
				lockout_threshold = coalesce($4, lockout_threshold),
				lockout_minutes = coalesce($5, lockout_minutes),
				updated_at = now()
			RETURNING `+settingsColumns,
			c.MFARequiredAll, c.MFARequiredRoles != nil, roles, c.LockoutThreshold, c.LockoutMinutes)
		if err != nil {
			return err
		}
		if out, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[SecuritySettings]); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "settings.security.update", ObjectType: "security_settings",
			Details: map[string]any{"mfa_required_all": out.MFARequiredAll, "mfa_required_roles": out.MFARequiredRoles,
				"lockout_threshold": out.LockoutThreshold, "lockout_minutes": out.LockoutMinutes}})
	})
	return out, err
}
