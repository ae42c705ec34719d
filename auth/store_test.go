package auth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pgtest"
)

func ptr[T any](v T) *T { return &v }

func TestCreateUserValidation(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := auth.NewStore(db.Pool)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		in    auth.NewUser
		field string
	}{
		{"no email", auth.NewUser{Name: "A", Roles: []string{"nurse"}}, "email"},
		{"bad email", auth.NewUser{Email: "not-an-email", Name: "A"}, "email"},
		{"no name", auth.NewUser{Email: "a@example.org"}, "name"},
		{"bad role", auth.NewUser{Email: "a@example.org", Name: "A", Roles: []string{"surgeon"}}, "roles"},
		{"bad zone", auth.NewUser{Email: "a@example.org", Name: "A", TimeZone: "Mars/Olympus"}, "time_zone"},
		{"bad npi", auth.NewUser{Email: "a@example.org", Name: "A", NPI: ptr("1234567890")}, "npi"},
		{"short password", auth.NewUser{Email: "a@example.org", Name: "A", Password: ptr("short")}, "password"},
	} {
		_, err := s.CreateUser(ctx, audit.System, tc.in)
		fe, ok := callroom.AsFieldError(err)
		if !ok || fe.Field != tc.field {
			t.Errorf("%s: got %v, want a field error on %q", tc.name, err, tc.field)
		}
	}
	var n int
	db.Pool.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n)
	if n != 0 {
		t.Errorf("%d users written by rejected input", n)
	}
}

func TestUserLifecycle(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := auth.NewStore(db.Pool)
	ctx := context.Background()
	u, err := s.CreateUser(ctx, audit.System, auth.NewUser{Email: "Ana.Cruz@Example.org", Name: "Dr Ana Cruz",
		Roles: []string{"physician", "nurse"}, NPI: ptr("1234567893"), TimeZone: "America/Chicago", Password: ptr("longenough")})
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "ana.cruz@example.org" || len(u.Roles) != 2 || u.Roles[0] != auth.Nurse || !u.Active {
		t.Fatalf("created %+v", u)
	}
	_, err = s.CreateUser(ctx, audit.System, auth.NewUser{Email: "ana.cruz@example.org", Name: "Other"})
	var ce *callroom.ConflictError
	if !errors.As(err, &ce) || ce.Field != "email" {
		t.Fatalf("duplicate email: %v", err)
	}

	_, secret, err := s.CreateToken(ctx, audit.System, u.ID, "pager", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(ctx, secret, "127.0.0.1")
	if err != nil || p.User.ID != u.ID {
		t.Fatalf("token does not authenticate: %v", err)
	}
	if _, err := s.Authenticate(ctx, secret+"x", ""); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("altered token: %v", err)
	}

	sess, cookie, err := s.Login(ctx, "ANA.CRUZ@example.org", "longenough", "127.0.0.1", "test")
	if err != nil || sess.UserID != u.ID {
		t.Fatalf("login: %v", err)
	}
	if _, err := s.Authenticate(ctx, cookie, ""); err != nil {
		t.Fatalf("session does not authenticate: %v", err)
	}

	// Deactivation revokes every credential at once.
	if _, err := s.UpdateUser(ctx, audit.System, u.ID, auth.UserChange{Active: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	for _, sec := range []string{secret, cookie} {
		if _, err := s.Authenticate(ctx, sec, ""); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("credential still works after deactivation: %v", err)
		}
	}
	var revoked int
	db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM api_tokens WHERE revoked_at IS NOT NULL) +
		(SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL)`).Scan(&revoked)
	if revoked != 2 {
		t.Errorf("revoked credentials = %d, want 2", revoked)
	}
	events, err := audit.List(ctx, db.Pool, audit.Filter{ObjectID: u.ID.String()})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
	}
	if len(actions) != 2 || actions[0] != "user.create" || actions[1] != "user.deactivate" {
		t.Errorf("audit for user = %v", actions)
	}
}

func TestLoginFailuresAreAuditedAndIndistinguishable(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := auth.NewStore(db.Pool)
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, audit.System, auth.NewUser{Email: "n@example.org", Name: "N", Password: ptr("rightpassword")}); err != nil {
		t.Fatal(err)
	}
	_, _, e1 := s.Login(ctx, "n@example.org", "wrongpassword", "10.0.0.9", "")
	_, _, e2 := s.Login(ctx, "nobody@example.org", "wrongpassword", "10.0.0.9", "")
	if !errors.Is(e1, auth.ErrLoginFailed) || !errors.Is(e2, auth.ErrLoginFailed) || e1.Error() != e2.Error() {
		t.Fatalf("failures differ: %v / %v", e1, e2)
	}
	events, _ := audit.List(ctx, db.Pool, audit.Filter{Action: "auth.login"})
	if len(events) != 2 || events[0].Outcome != audit.Failure || events[1].Details["reason"] != "unknown_email" {
		t.Fatalf("login audit = %+v", events)
	}
}

func TestIdleSessionEnds(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := auth.NewStore(db.Pool)
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, audit.System, auth.NewUser{Email: "n@example.org", Name: "N", Password: ptr("rightpassword")}); err != nil {
		t.Fatal(err)
	}
	_, cookie, err := s.Login(ctx, "n@example.org", "rightpassword", "", "")
	if err != nil {
		t.Fatal(err)
	}
	db.Pool.Exec(ctx, `UPDATE sessions SET last_seen_at = now() - interval '16 minutes'`)
	if _, err := s.Authenticate(ctx, cookie, ""); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("idle session still valid: %v", err)
	}
}
