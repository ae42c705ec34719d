package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// Sealer encrypts at rest; package keys' *Keyring is one. TOTP secrets are
// sealed with associated data naming their user, so a secret copied onto
// another user's row does not open.
type Sealer interface {
	Seal(ctx context.Context, plaintext, aad []byte) (blob []byte, keyID uuid.UUID, err error)
	Open(ctx context.Context, blob, aad []byte) ([]byte, error)
}

// TOTP parameters: RFC 6238's defaults, which every authenticator app
// supports (SHA-1, 6 digits, 30-second steps). One step of skew either way
// tolerates phones whose clocks drift.
const (
	totpPeriod = 30
	totpSkew   = 1
	// RecoveryCodes is how many one-time recovery codes enrolment hands out.
	RecoveryCodes = 10
)

var totpOpts = hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// ErrMFARequired means the password was right but the user has a second
// factor and gave no code: ask for it and try again.
var ErrMFARequired = errors.New("a second factor is required: send totp_code or recovery_code")

// TOTPEnrolment is what a user needs to set up an authenticator app. The
// secret is shown only here, before it is confirmed.
type TOTPEnrolment struct {
	Secret string `json:"secret"`
	URL    string `json:"otpauth_url"`
	// QRCodePNG is the otpauth URL as a QR code, a PNG image.
	QRCodePNG []byte `json:"qr_code_png"`
}

func totpAAD(userID uuid.UUID) []byte { return []byte("totp:" + userID.String()) }

// StartTOTP makes a new TOTP secret for the user, stored sealed and
// unconfirmed; ConfirmTOTP activates it. Starting again replaces an
// unconfirmed secret; a confirmed one must be disabled first.
func (s *Store) StartTOTP(ctx context.Context, p Principal) (TOTPEnrolment, error) {
	if s.Sealer == nil {
		return TOTPEnrolment{}, errors.New("auth: no sealer configured for TOTP secrets")
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.Issuer, AccountName: p.User.Email, SecretSize: 20})
	if err != nil {
		return TOTPEnrolment{}, err
	}
	img, err := key.Image(256, 256)
	if err != nil {
		return TOTPEnrolment{}, err
	}
	var qr bytes.Buffer
	if err := png.Encode(&qr, img); err != nil {
		return TOTPEnrolment{}, err
	}
	blob, keyID, err := s.Sealer.Seal(ctx, []byte(key.Secret()), totpAAD(p.User.ID))
	if err != nil {
		return TOTPEnrolment{}, err
	}
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO user_totp (user_id, secret_sealed, secret_key_id) VALUES ($1, $2, $3)
			ON CONFLICT (user_id) DO UPDATE SET secret_sealed = $2, secret_key_id = $3, created_at = now(), last_step = 0
			WHERE user_totp.confirmed_at IS NULL`, p.User.ID, blob, keyID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return callroom.Conflict("totp", "TOTP is already enabled; disable it first to enrol a new authenticator")
		}
		return audit.Record(ctx, tx, p.Actor(), audit.Entry{Action: "mfa.totp.start", ObjectType: "user", ObjectID: p.User.ID.String()})
	})
	if err != nil {
		return TOTPEnrolment{}, err
	}
	return TOTPEnrolment{Secret: key.Secret(), URL: key.URL(), QRCodePNG: qr.Bytes()}, nil
}

// ConfirmTOTP activates the pending secret when code is right for it, and
// returns the recovery codes, which are stored only hashed and cannot be
// shown again.
func (s *Store) ConfirmTOTP(ctx context.Context, p Principal, code string) ([]string, error) {
	var codes []string
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var confirmed *time.Time
		err := tx.QueryRow(ctx, `SELECT confirmed_at FROM user_totp WHERE user_id = $1 FOR UPDATE`, p.User.ID).Scan(&confirmed)
		if errors.Is(err, pgx.ErrNoRows) {
			return callroom.Conflict("code", "no TOTP enrolment in progress: POST /api/v1/me/mfa/totp first")
		}
		if err != nil {
			return err
		}
		if confirmed != nil {
			return callroom.Conflict("code", "TOTP is already enabled")
		}
		ok, err := s.checkTOTP(ctx, tx, p.User.ID, code, time.Now())
		if err != nil {
			return err
		}
		if !ok {
			return callroom.Invalid("code", "is not the current code of the authenticator")
		}
		if _, err := tx.Exec(ctx, `UPDATE user_totp SET confirmed_at = now() WHERE user_id = $1`, p.User.ID); err != nil {
			return err
		}
		if codes, err = newRecoveryCodes(ctx, tx, p.User.ID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, p.Actor(), audit.Entry{Action: "mfa.totp.enable", ObjectType: "user", ObjectID: p.User.ID.String()})
	})
	return codes, err
}

// DisableTOTP removes the user's authenticator and recovery codes. The user
// proves possession with a current code or a recovery code, and may not when
// the security settings require a second factor of them; an administrator
// (admin true) resetting a user who lost their phone needs neither.
func (s *Store) DisableTOTP(ctx context.Context, by audit.Actor, userID uuid.UUID, code, recovery string, admin bool) error {
	return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE id = $1`, userID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("user: %w", callroom.ErrNotFound)
		}
		if !admin {
			var required bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM security_settings x, users u
				WHERE u.id = $1 AND (x.mfa_required_all OR x.mfa_required_roles && u.roles))`, userID).Scan(&required); err != nil {
				return err
			}
			if required {
				return callroom.Conflict("totp", "the security settings require a second factor for your account; an administrator can reset it")
			}
			ok := false
			var err error
			switch {
			case code != "":
				ok, err = s.checkTOTP(ctx, tx, userID, code, time.Now())
			case recovery != "":
				ok, err = useRecoveryCode(ctx, tx, userID, recovery)
			default:
				return callroom.Invalid("code", "is required: a current code or a recovery code")
			}
			if err != nil {
				return err
			}
			if !ok {
				field := "code"
				if code == "" {
					field = "recovery_code"
				}
				return callroom.Invalid(field, "is not right")
			}
		}
		tag, err := tx.Exec(ctx, `DELETE FROM user_totp WHERE user_id = $1`, userID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("TOTP enrolment: %w", callroom.ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM user_recovery_codes WHERE user_id = $1`, userID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "mfa.totp.disable", ObjectType: "user", ObjectID: userID.String(),
			Details: map[string]any{"by_admin": admin}})
	})
}

// MFAStatus says whether a user has a confirmed authenticator, and how many
// unused recovery codes remain.
type MFAStatus struct {
	TOTPEnabled   bool `json:"totp_enabled"`
	RecoveryCodes int  `json:"recovery_codes_left"`
	// Required is true when the security settings require a second factor
	// for this user (for all users or one of their roles).
	Required bool `json:"required"`
}

// MFA returns a user's second-factor status.
func (s *Store) MFA(ctx context.Context, userID uuid.UUID) (MFAStatus, error) {
	var st MFAStatus
	err := s.db.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM user_totp WHERE user_id = u.id AND confirmed_at IS NOT NULL),
			(SELECT count(*) FROM user_recovery_codes WHERE user_id = u.id AND used_at IS NULL),
			EXISTS (SELECT 1 FROM security_settings x WHERE x.mfa_required_all OR x.mfa_required_roles && u.roles)
		FROM users u WHERE u.id = $1`, userID).Scan(&st.TOTPEnabled, &st.RecoveryCodes, &st.Required)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("user: %w", callroom.ErrNotFound)
	}
	return st, err
}

// checkTOTP reports whether code is the user's TOTP code for a time step
// within the allowed skew of now and later than the last step accepted, and
// records that step, so the same code is accepted once (RFC 6238 section
// 5.2). The conditional UPDATE makes this hold across instances.
func (s *Store) checkTOTP(ctx context.Context, q pg.Querier, userID uuid.UUID, code string, now time.Time) (bool, error) {
	code = strings.TrimSpace(code)
	if len(code) != totpOpts.Digits.Length() {
		return false, nil
	}
	var blob []byte
	if err := q.QueryRow(ctx, `SELECT secret_sealed FROM user_totp WHERE user_id = $1`, userID).Scan(&blob); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return false, err
	}
	secret, err := s.Sealer.Open(ctx, blob, totpAAD(userID))
	if err != nil {
		return false, fmt.Errorf("opening a TOTP secret: %w", err)
	}
	step := now.Unix() / totpPeriod
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		ok, err := hotp.ValidateCustom(code, uint64(step+d), string(secret), totpOpts)
		if err != nil || !ok {
			continue
		}
		tag, err := q.Exec(ctx, `UPDATE user_totp SET last_step = $2 WHERE user_id = $1 AND last_step < $2`, userID, step+d)
		if err != nil {
			return false, err
		}
		return tag.RowsAffected() == 1, nil // 0: this code (or a later one) was used already
	}
	return false, nil
}

// recoveryEncoding writes codes a person can read aloud and type: no 0/O or 1/I confusion.
var recoveryEncoding = base32.NewEncoding("ABCDEFGHJKLMNPQRSTUVWXYZ23456789").WithPadding(base32.NoPadding)

func newRecoveryCodes(ctx context.Context, q pg.Querier, userID uuid.UUID) ([]string, error) {
	if _, err := q.Exec(ctx, `DELETE FROM user_recovery_codes WHERE user_id = $1`, userID); err != nil {
		return nil, err
	}
	codes := make([]string, RecoveryCodes)
	hashes := make([][]byte, RecoveryCodes)
	for i := range codes {
		b := make([]byte, 10) // 80 bits
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		c := recoveryEncoding.EncodeToString(b) // 16 characters
		codes[i] = c[:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:]
		hashes[i] = hashSecret(normalizeRecovery(codes[i]))
	}
	_, err := q.Exec(ctx, `INSERT INTO user_recovery_codes (user_id, code_hash) SELECT $1, unnest($2::bytea[])`, userID, hashes)
	return codes, err
}

func normalizeRecovery(code string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(code)))
}

// useRecoveryCode spends one recovery code, reporting whether it was unused.
func useRecoveryCode(ctx context.Context, q pg.Querier, userID uuid.UUID, code string) (bool, error) {
	tag, err := q.Exec(ctx, `UPDATE user_recovery_codes SET used_at = now()
		WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL`, userID, hashSecret(normalizeRecovery(code)))
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}
