package auth_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pgtest"
	"github.com/callroom/callroom/keys"
)

const testMasterKey = "test:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// newStore returns a store on a fresh database whose TOTP secrets are sealed
// by a real keyring.
func newStore(t *testing.T) (*auth.Store, *pgtest.DB) {
	t.Helper()
	db := pgtest.New(t)
	mk, err := keys.LoadMasterKeys("", testMasterKey)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keys.NewKeyring(context.Background(), db.Pool, mk)
	if err != nil {
		t.Fatal(err)
	}
	s := auth.NewStore(db.Pool)
	s.Sealer = kr
	return s, db
}

func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func auditCount(t *testing.T, db *pgtest.DB, action, objectID string) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = $1 AND object_id = $2`,
		action, objectID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTOTPEnrolmentAndSignIn(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	u, err := s.CreateUser(ctx, audit.System, auth.NewUser{Email: "mfa@example.org", Name: "M", Roles: []string{"nurse"}, Password: ptr("longenough")})
	if err != nil {
		t.Fatal(err)
	}
	p := auth.Principal{User: u}
	en, err := s.StartTOTP(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(en.QRCodePNG) < 100 || string(en.QRCodePNG[1:4]) != "PNG" || en.URL == "" {
		t.Fatalf("enrolment without a QR code: %d bytes, url %q", len(en.QRCodePNG), en.URL)
	}
	// The secret is sealed at rest.
	var sealed []byte
	db.Pool.QueryRow(ctx, `SELECT secret_sealed FROM user_totp WHERE user_id = $1`, u.ID).Scan(&sealed)
	if len(sealed) == 0 || bytes.Contains(sealed, []byte(en.Secret)) {
		t.Fatal("the TOTP secret is stored in the clear")
	}
	// Before confirmation, a password alone still signs in.
	if _, _, err := s.Login(ctx, "mfa@example.org", "longenough", "", ""); err != nil {
		t.Fatalf("login before confirmation: %v", err)
	}
	now := time.Now()
	if _, err := s.ConfirmTOTP(ctx, p, "000000x"); err == nil {
		t.Fatal("a malformed code confirmed the enrolment")
	}
	codes, err := s.ConfirmTOTP(ctx, p, codeAt(t, en.Secret, now))
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != auth.RecoveryCodes {
		t.Fatalf("%d recovery codes", len(codes))
	}
	if _, err := s.StartTOTP(ctx, p); err == nil {
		t.Fatal("a second enrolment replaced a confirmed authenticator")
	}

	creds := auth.Credentials{Email: "mfa@example.org", Password: "longenough"}
	if _, _, err := s.SignIn(ctx, creds); !errors.Is(err, auth.ErrMFARequired) {
		t.Fatalf("password alone: %v, want ErrMFARequired", err)
	}
	bad := creds
	bad.TOTPCode = "123456"
	if codeAt(t, en.Secret, now) == "123456" || codeAt(t, en.Secret, now.Add(30*time.Second)) == "123456" {
		bad.TOTPCode = "654321"
	}
	if _, _, err := s.SignIn(ctx, bad); !errors.Is(err, auth.ErrLoginFailed) {
		t.Fatalf("wrong code: %v", err)
	}
	// The code of the step confirmed is spent; the next step's is good once.
	replay := creds
	replay.TOTPCode = codeAt(t, en.Secret, now)
	if _, _, err := s.SignIn(ctx, replay); !errors.Is(err, auth.ErrLoginFailed) {
		t.Fatalf("replayed confirmation code: %v", err)
	}
	good := creds
	good.TOTPCode = codeAt(t, en.Secret, now.Add(30*time.Second))
	sess, _, err := s.SignIn(ctx, good)
	if err != nil {
		t.Fatalf("right code: %v", err)
	}
	if sess.Method != "password+totp" {
		t.Errorf("method %q", sess.Method)
	}
	if _, _, err := s.SignIn(ctx, good); !errors.Is(err, auth.ErrLoginFailed) {
		t.Fatalf("the same code twice: %v", err)
	}
	// A recovery code works once, in any spelling.
	rc := creds
	rc.RecoveryCode = " " + strings.ToLower(codes[3]) + " "
	if sess, _, err = s.SignIn(ctx, rc); err != nil || sess.Method != "password+recovery" {
		t.Fatalf("recovery code: %v %q", err, sess.Method)
	}
	if _, _, err := s.SignIn(ctx, rc); !errors.Is(err, auth.ErrLoginFailed) {
		t.Fatalf("recovery code reused: %v", err)
	}
	st, err := s.MFA(ctx, u.ID)
	if err != nil || !st.TOTPEnabled || st.RecoveryCodes != auth.RecoveryCodes-1 {
		t.Fatalf("status %+v %v", st, err)
	}
	// Disabling needs proof of possession.
	if err := s.DisableTOTP(ctx, p.Actor(), u.ID, "", "", false); err == nil {
		t.Fatal("disabled without a code")
	}
	if err := s.DisableTOTP(ctx, p.Actor(), u.ID, "", codes[5], false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SignIn(ctx, creds); err != nil {
		t.Fatalf("password after disabling: %v", err)
	}
	for _, a := range []string{"mfa.totp.start", "mfa.totp.enable", "mfa.totp.disable"} {
		if auditCount(t, db, a, u.ID.String()) == 0 {
			t.Errorf("no %s audit event", a)
		}
	}
}

func TestLoginLockout(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	u, err := s.CreateUser(ctx, audit.System, auth.NewUser{Email: "lock@example.org", Name: "L", Password: ptr("longenough")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateSettings(ctx, audit.System, auth.SecuritySettingsChange{LockoutThreshold: ptr(3), LockoutMinutes: ptr(5)}); err != nil {
		t.Fatal(err)
	}
	// Two failures, then a success, reset the count.
	for range 2 {
		if _, _, err := s.Login(ctx, "lock@example.org", "wrong-password", "", ""); !errors.Is(err, auth.ErrLoginFailed) {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Login(ctx, "lock@example.org", "longenough", "", ""); err != nil {
		t.Fatalf("after 2 failures: %v", err)
	}
	for range 3 {
		s.Login(ctx, "lock@example.org", "wrong-password", "", "") //nolint:errcheck
	}
	if n := auditCount(t, db, "auth.lockout", u.ID.String()); n != 1 {
		t.Fatalf("%d auth.lockout events, want 1", n)
	}
	// Locked: the right password gets the same answer as an unknown email.
	_, _, errLocked := s.Login(ctx, "lock@example.org", "longenough", "", "")
	_, _, errUnknown := s.Login(ctx, "nobody@example.org", "longenough", "", "")
	if !errors.Is(errLocked, auth.ErrLoginFailed) || errLocked.Error() != errUnknown.Error() {
		t.Fatalf("locked: %v; unknown: %v", errLocked, errUnknown)
	}
	var until time.Time
	db.Pool.QueryRow(ctx, `SELECT locked_until FROM login_lockouts WHERE user_id = $1`, u.ID).Scan(&until)
	if d := time.Until(until); d < 4*time.Minute || d > 6*time.Minute {
		t.Errorf("locked for %v, want 5m", d)
	}
	if err := s.Unlock(ctx, audit.System, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Login(ctx, "lock@example.org", "longenough", "", ""); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	// Failures further apart than the lockout period do not add up.
	for range 2 {
		s.Login(ctx, "lock@example.org", "wrong-password", "", "") //nolint:errcheck
	}
	db.Pool.Exec(ctx, `UPDATE login_lockouts SET last_failure_at = now() - interval '6 minutes' WHERE user_id = $1`, u.ID)
	s.Login(ctx, "lock@example.org", "wrong-password", "", "") //nolint:errcheck
	if _, _, err := s.Login(ctx, "lock@example.org", "longenough", "", ""); err != nil {
		t.Fatalf("stale failures locked the account: %v", err)
	}
	// An expired lock lets the user in again.
	for range 3 {
		s.Login(ctx, "lock@example.org", "wrong-password", "", "") //nolint:errcheck
	}
	db.Pool.Exec(ctx, `UPDATE login_lockouts SET locked_until = now() - interval '1 second' WHERE user_id = $1`, u.ID)
	if _, _, err := s.Login(ctx, "lock@example.org", "longenough", "", ""); err != nil {
		t.Fatalf("after the lock expired: %v", err)
	}
}

func TestMFARequiredForRoles(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	doc, _ := s.CreateUser(ctx, audit.System, auth.NewUser{Email: "doc@example.org", Name: "D", Roles: []string{"physician"}, Password: ptr("longenough")})
	nurse, _ := s.CreateUser(ctx, audit.System, auth.NewUser{Email: "rn@example.org", Name: "N", Roles: []string{"nurse"}, Password: ptr("longenough")})
	if _, err := s.UpdateSettings(ctx, audit.System, auth.SecuritySettingsChange{MFARequiredRoles: ptr([]string{"surgeon"})}); err == nil {
		t.Fatal("an unknown role was accepted")
	}
	if _, err := s.UpdateSettings(ctx, audit.System, auth.SecuritySettingsChange{MFARequiredRoles: ptr([]string{"physician"})}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		email string
		want  bool
	}{{doc.Email, true}, {nurse.Email, false}} {
		_, secret, err := s.Login(ctx, tc.email, "longenough", "", "")
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.Authenticate(ctx, secret, "")
		if err != nil {
			t.Fatal(err)
		}
		if p.MFAEnrollmentRequired != tc.want {
			t.Errorf("%s: enrolment required %v, want %v", tc.email, p.MFAEnrollmentRequired, tc.want)
		}
	}
	// Enrolling lifts the restriction on the same session.
	_, secret, _ := s.Login(ctx, doc.Email, "longenough", "", "")
	p, _ := s.Authenticate(ctx, secret, "")
	en, err := s.StartTOTP(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConfirmTOTP(ctx, p, codeAt(t, en.Secret, time.Now())); err != nil {
		t.Fatal(err)
	}
	if p, _ = s.Authenticate(ctx, secret, ""); p.MFAEnrollmentRequired {
		t.Error("still restricted after enrolling")
	}
	err = s.DisableTOTP(ctx, p.Actor(), doc.ID, codeAt(t, en.Secret, time.Now().Add(30*time.Second)), "", false)
	if _, ok := err.(*callroom.ConflictError); !ok {
		t.Errorf("a required second factor was switched off by its user: %v", err)
	}
	st, _ := s.Settings(ctx)
	if len(st.MFARequiredRoles) != 1 || st.MFARequiredRoles[0] != auth.Physician {
		t.Errorf("settings %+v", st)
	}
}
