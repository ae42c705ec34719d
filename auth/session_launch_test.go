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

// TestOpenSessionForLaunch: an EHR launch finds the user by NPI and opens a
// session that authenticates like a password one, audited with its method;
// a deactivated user gets the same refusal as a failed sign-in, audited.
func TestOpenSessionForLaunch(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := auth.NewStore(db.Pool)
	ctx := context.Background()
	u, err := s.CreateUser(ctx, audit.System, auth.NewUser{Email: "d@example.org", Name: "D", Roles: []string{"physician"}, NPI: ptr("1234567893")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByNPI(ctx, "1245319599"); !errors.Is(err, callroom.ErrNotFound) {
		t.Fatalf("unknown NPI: %v", err)
	}
	found, err := s.UserByNPI(ctx, "1234567893")
	if err != nil || found.ID != u.ID {
		t.Fatalf("UserByNPI = %v, %v", found.ID, err)
	}
	sess, secret, err := s.OpenSession(ctx, u.ID, "10.0.0.7", "test")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(ctx, secret, "10.0.0.7")
	if err != nil || p.User.ID != u.ID || p.SessionID != sess.ID {
		t.Fatalf("the launched session does not authenticate: %+v, %v", p, err)
	}
	if _, err := s.UpdateUser(ctx, audit.System, u.ID, auth.UserChange{Active: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.OpenSession(ctx, u.ID, "10.0.0.7", "test"); !errors.Is(err, auth.ErrLoginFailed) {
		t.Fatalf("deactivated user: %v, want ErrLoginFailed", err)
	}
	events, _ := audit.List(ctx, db.Pool, audit.Filter{Action: "auth.login"})
	if len(events) != 2 || events[0].Details["method"] != "smart" || events[0].Outcome == audit.Failure ||
		events[1].Outcome != audit.Failure || events[1].Details["method"] != "smart" {
		t.Fatalf("launch audit = %+v", events)
	}
}
