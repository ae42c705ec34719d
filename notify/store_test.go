package notify_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pgtest"
	"github.com/callroom/callroom/notify"
)

func strptr(s string) *string { return &s }

// newUser adds a user directly through the auth store.
func newUser(t *testing.T, db *pgtest.DB, name string) uuid.UUID {
	t.Helper()
	u, err := auth.NewStore(db.Pool).CreateUser(context.Background(), audit.System, auth.NewUser{
		Email: "u-" + uuid.NewString()[:8] + "@example.org", Name: name, Roles: []string{"physician"}})
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

func mustMethod(t *testing.T, s *notify.Store, userID uuid.UUID, in notify.NewContactMethod) notify.ContactMethod {
	t.Helper()
	cm, _, err := s.CreateContactMethod(context.Background(), audit.System, userID, in)
	if err != nil {
		t.Fatalf("create %s contact method: %v", in.Kind, err)
	}
	return cm
}

func mustRule(t *testing.T, s *notify.Store, userID, methodID uuid.UUID, delay int) notify.NotificationRule {
	t.Helper()
	nr, err := s.CreateNotificationRule(context.Background(), audit.System, userID,
		notify.NewNotificationRule{ContactMethodID: methodID, DelaySeconds: delay})
	if err != nil {
		t.Fatalf("create rule at %d s: %v", delay, err)
	}
	return nr
}

func count(t *testing.T, db *pgtest.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantField(t *testing.T, name string, err error, field string) {
	t.Helper()
	fe, ok := callroom.AsFieldError(err)
	if !ok || fe.Field != field {
		t.Errorf("%s: got %v, want a field error on %q", name, err, field)
	}
}

func wantConflict(t *testing.T, name string, err error, field string) {
	t.Helper()
	var ce *callroom.ConflictError
	if !errors.As(err, &ce) || ce.Field != field {
		t.Errorf("%s: got %v, want a conflict on %q", name, err, field)
	}
}

func TestCreateContactMethodValidation(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := notify.NewStore(db.Pool)
	ctx := context.Background()
	user := newUser(t, db, "Dr Ana Cruz")

	for _, tc := range []struct {
		name  string
		in    notify.NewContactMethod
		field string
	}{
		{"no kind", notify.NewContactMethod{Address: "a@example.org"}, "kind"},
		{"unknown kind", notify.NewContactMethod{Kind: "sms", Address: "+15555550100"}, "kind"},
		{"in-app with address", notify.NewContactMethod{Kind: "in_app", Address: "a@example.org"}, "address"},
		{"in-app with secret", notify.NewContactMethod{Kind: "in_app", Secret: strptr("0123456789abcdef")}, "secret"},
		{"email without address", notify.NewContactMethod{Kind: "email"}, "address"},
		{"email not an address", notify.NewContactMethod{Kind: "email", Address: "not-an-email"}, "address"},
		{"email two addresses", notify.NewContactMethod{Kind: "email", Address: "a@example.org, b@example.org"}, "address"},
		{"email display name", notify.NewContactMethod{Kind: "email", Address: "Ana <a@example.org>"}, "address"},
		{"email header injection", notify.NewContactMethod{Kind: "email", Address: "a@example.org\r\nBcc: x@example.org"}, "address"},
		{"email too long", notify.NewContactMethod{Kind: "email", Address: strings.Repeat("a", 250) + "@example.org"}, "address"},
		{"email with secret", notify.NewContactMethod{Kind: "email", Address: "a@example.org", Secret: strptr("0123456789abcdef")}, "secret"},
		{"webhook without address", notify.NewContactMethod{Kind: "webhook"}, "address"},
		{"webhook relative", notify.NewContactMethod{Kind: "webhook", Address: "/hooks/page"}, "address"},
		{"webhook other scheme", notify.NewContactMethod{Kind: "webhook", Address: "ftp://gw.example.org/hook"}, "address"},
		{"webhook cleartext", notify.NewContactMethod{Kind: "webhook", Address: "http://gw.example.org/hook"}, "address"},
		{"webhook cleartext lookalike", notify.NewContactMethod{Kind: "webhook", Address: "http://localhost.example.org/hook"}, "address"},
		{"webhook cleartext private", notify.NewContactMethod{Kind: "webhook", Address: "http://10.0.0.5/hook"}, "address"},
		{"webhook space", notify.NewContactMethod{Kind: "webhook", Address: "https://gw.example.org/a b"}, "address"},
		{"webhook short secret", notify.NewContactMethod{Kind: "webhook", Address: "https://gw.example.org/hook", Secret: strptr("too-short")}, "secret"},
		{"webhook empty secret", notify.NewContactMethod{Kind: "webhook", Address: "https://gw.example.org/hook", Secret: strptr("")}, "secret"},
		{"label too long", notify.NewContactMethod{Kind: "in_app", Label: strings.Repeat("x", 101)}, "label"},
		{"label control", notify.NewContactMethod{Kind: "in_app", Label: "pager\n2"}, "label"},
	} {
		_, secret, err := s.CreateContactMethod(ctx, audit.System, user, tc.in)
		wantField(t, tc.name, err, tc.field)
		if secret != "" {
			t.Errorf("%s: a secret was returned with an error", tc.name)
		}
		if fe, ok := callroom.AsFieldError(err); ok && strings.Contains(fe.Detail, "example.org") {
			t.Errorf("%s: the error echoes the address: %q", tc.name, fe.Detail)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM contact_methods`); n != 0 {
		t.Errorf("%d contact methods written by rejected input", n)
	}
	if n := count(t, db, `SELECT count(*) FROM audit_events WHERE action LIKE 'contact_method.%'`); n != 0 {
		t.Errorf("%d audit events written for rejected input", n)
	}

	// Exactly 100 characters (not bytes) is fine.
	if _, _, err := s.CreateContactMethod(ctx, audit.System, user,
		notify.NewContactMethod{Kind: "in_app", Label: strings.Repeat("é", 100)}); err != nil {
		t.Errorf("100-character label: %v", err)
	}
	_, _, err := s.CreateContactMethod(ctx, audit.System, uuid.New(), notify.NewContactMethod{Kind: "email", Address: "a@example.org"})
	if !errors.Is(err, callroom.ErrNotFound) {
		t.Errorf("unknown user: got %v, want not found", err)
	}
}

func TestContactMethods(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := notify.NewStore(db.Pool)
	ctx := context.Background()
	ana, ben := newUser(t, db, "Dr Ana Cruz"), newUser(t, db, "Dr Ben Okafor")
	by := audit.Actor{UserID: ana, ClientAddr: "10.1.2.3"}

	email, secret, err := s.CreateContactMethod(ctx, by, ana, notify.NewContactMethod{
		Kind: "email", Label: "  Work  ", Address: " Ana.Cruz@Example.ORG "})
	if err != nil {
		t.Fatal(err)
	}
	if email.Address != "ana.cruz@example.org" || email.Label != "Work" || email.UserID != ana || secret != "" {
		t.Errorf("email method = %+v, secret %q", email, secret)
	}

	// A webhook without a secret gets 32 random bytes, shown once.
	hook, secret, err := s.CreateContactMethod(ctx, by, ana, notify.NewContactMethod{
		Kind: "webhook", Label: "Pager", Address: "https://gw.example.org/hooks/callroom"})
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := hex.DecodeString(secret); err != nil || len(raw) != 32 {
		t.Errorf("generated secret %q is not 32 hex-encoded bytes", secret)
	}
	got, err := notify.WebhookSecret(ctx, db.Pool, hook.ID)
	if err != nil || string(got) != secret {
		t.Errorf("WebhookSecret = %q, %v; want the generated secret", got, err)
	}
	// A given secret is stored and not echoed.
	given := "a-32-byte-secret-shared-with-gw!"
	hook2, secret, err := s.CreateContactMethod(ctx, by, ana, notify.NewContactMethod{
		Kind: "webhook", Address: "http://127.0.0.1:9000/hook", Secret: &given})
	if err != nil || secret != "" {
		t.Fatalf("webhook with secret: %v, secret %q", err, secret)
	}
	if got, err := notify.WebhookSecret(ctx, db.Pool, hook2.ID); err != nil || string(got) != given {
		t.Errorf("WebhookSecret = %q, %v; want the given secret", got, err)
	}
	if _, err := notify.WebhookSecret(ctx, db.Pool, email.ID); !errors.Is(err, callroom.ErrNotFound) {
		t.Errorf("WebhookSecret of an email method: %v, want not found", err)
	}
	// Cleartext is allowed to loopback hosts only, as the sender allows.
	for _, addr := range []string{"http://localhost:8080/hook", "http://[::1]:8080/hook", "http://127.8.9.10/hook"} {
		if _, _, err := s.CreateContactMethod(ctx, by, ben, notify.NewContactMethod{Kind: "webhook", Address: addr}); err != nil {
			t.Errorf("loopback webhook %s: %v", addr, err)
		}
	}

	inApp := mustMethod(t, s, ana, notify.NewContactMethod{Kind: "in_app"})
	_, _, err = s.CreateContactMethod(ctx, by, ana, notify.NewContactMethod{Kind: "in_app", Label: "again"})
	wantConflict(t, "second in-app", err, "kind")
	mustMethod(t, s, ben, notify.NewContactMethod{Kind: "in_app"}) // one each, not one overall

	list, err := s.ContactMethods(ctx, ana)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for _, cm := range list {
		ids = append(ids, cm.ID)
	}
	if want := []uuid.UUID{email.ID, hook.ID, hook2.ID, inApp.ID}; !equalIDs(ids, want) {
		t.Errorf("ContactMethods = %v, want %v (oldest first, only Ana's)", ids, want)
	}
	b, _ := json.Marshal(list)
	if strings.Contains(string(b), "secret") || strings.Contains(string(b), given) {
		t.Errorf("contact methods JSON carries the secret: %s", b)
	}
	for _, key := range []string{`"id"`, `"user_id"`, `"kind"`, `"label"`, `"address"`, `"created_at"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("contact methods JSON lacks %s: %s", key, b)
		}
	}
	if none, err := s.ContactMethods(ctx, uuid.New()); err != nil || none == nil || len(none) != 0 {
		t.Errorf("unknown user's methods = %#v, %v; want an empty list", none, err)
	}

	// Deleting: only one's own, rules go with the method.
	mustRule(t, s, ana, hook.ID, 0)
	mustRule(t, s, ana, hook.ID, 60)
	if err := s.DeleteContactMethod(ctx, by, ben, hook.ID); !errors.Is(err, callroom.ErrNotFound) {
		t.Errorf("delete through another user: %v, want not found", err)
	}
	if err := s.DeleteContactMethod(ctx, by, ana, hook.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteContactMethod(ctx, by, ana, hook.ID); !errors.Is(err, callroom.ErrNotFound) {
		t.Errorf("second delete: %v, want not found", err)
	}
	if n := count(t, db, `SELECT count(*) FROM notification_rules WHERE contact_method_id = $1`, hook.ID); n != 0 {
		t.Errorf("%d rules survive their contact method", n)
	}

	// The trail names the kind, never the address.
	events, err := audit.List(ctx, db.Pool, audit.Filter{ObjectType: "contact_method", ObjectID: email.ID.String()})
	if err != nil || len(events) != 1 {
		t.Fatalf("audit for the email method: %v, %v", events, err)
	}
	if e := events[0]; e.Action != "contact_method.create" || e.ActorID == nil || *e.ActorID != ana ||
		e.ClientAddr != "10.1.2.3" || len(e.Details) != 1 || e.Details["kind"] != "email" {
		t.Errorf("create audit = %+v", e)
	}
	events, _ = audit.List(ctx, db.Pool, audit.Filter{ObjectType: "contact_method", ObjectID: hook.ID.String()})
	if len(events) != 2 || events[1].Action != "contact_method.delete" || events[1].Details["kind"] != "webhook" {
		t.Errorf("audit for the deleted webhook = %+v", events)
	}
	if n := count(t, db, `SELECT count(*) FROM audit_events WHERE details::text ILIKE '%example.org%' OR details::text LIKE '%127.0.0.1%'`); n != 0 {
		t.Errorf("%d audit events carry an address", n)
	}
}

func equalIDs(a, b []uuid.UUID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNotificationRules(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := notify.NewStore(db.Pool)
	ctx := context.Background()
	ana, ben := newUser(t, db, "Dr Ana Cruz"), newUser(t, db, "Dr Ben Okafor")
	email := mustMethod(t, s, ana, notify.NewContactMethod{Kind: "email", Address: "ana@example.org"})
	bens := mustMethod(t, s, ben, notify.NewContactMethod{Kind: "email", Address: "ben@example.org"})

	for _, tc := range []struct {
		name  string
		in    notify.NewNotificationRule
		field string
	}{
		{"no method", notify.NewNotificationRule{DelaySeconds: 0}, "contact_method_id"},
		{"unknown method", notify.NewNotificationRule{ContactMethodID: uuid.New()}, "contact_method_id"},
		{"another user's method", notify.NewNotificationRule{ContactMethodID: bens.ID}, "contact_method_id"},
		{"negative delay", notify.NewNotificationRule{ContactMethodID: email.ID, DelaySeconds: -1}, "delay_seconds"},
		{"delay over an hour", notify.NewNotificationRule{ContactMethodID: email.ID, DelaySeconds: 3601}, "delay_seconds"},
	} {
		_, err := s.CreateNotificationRule(ctx, audit.System, ana, tc.in)
		wantField(t, tc.name, err, tc.field)
	}
	if n := count(t, db, `SELECT count(*) FROM notification_rules`); n != 0 {
		t.Errorf("%d rules written by rejected input", n)
	}
	if n := count(t, db, `SELECT count(*) FROM audit_events WHERE action LIKE 'notification_rule.%'`); n != 0 {
		t.Errorf("%d audit events written for rejected input", n)
	}

	later := mustRule(t, s, ana, email.ID, 3600)
	first := mustRule(t, s, ana, email.ID, 0)
	if first.UserID != ana || first.ContactMethodID != email.ID || first.DelaySeconds != 0 {
		t.Errorf("rule = %+v", first)
	}
	_, err := s.CreateNotificationRule(ctx, audit.System, ana, notify.NewNotificationRule{ContactMethodID: email.ID, DelaySeconds: 0})
	wantConflict(t, "duplicate rule", err, "delay_seconds")
	mustRule(t, s, ben, bens.ID, 0) // the same delay on another method is fine

	rules, err := s.NotificationRules(ctx, ana)
	if err != nil || len(rules) != 2 || rules[0].ID != first.ID || rules[1].ID != later.ID {
		t.Errorf("NotificationRules = %+v, %v; want Ana's two, by delay", rules, err)
	}
	if none, err := s.NotificationRules(ctx, uuid.New()); err != nil || none == nil || len(none) != 0 {
		t.Errorf("unknown user's rules = %#v, %v; want an empty list", none, err)
	}

	if err := s.DeleteNotificationRule(ctx, audit.System, ben, first.ID); !errors.Is(err, callroom.ErrNotFound) {
		t.Errorf("delete through another user: %v, want not found", err)
	}
	if err := s.DeleteNotificationRule(ctx, audit.System, ana, first.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNotificationRule(ctx, audit.System, ana, first.ID); !errors.Is(err, callroom.ErrNotFound) {
		t.Errorf("second delete: %v, want not found", err)
	}
	events, _ := audit.List(ctx, db.Pool, audit.Filter{ObjectType: "notification_rule", ObjectID: first.ID.String()})
	if len(events) != 2 || events[0].Action != "notification_rule.create" || events[1].Action != "notification_rule.delete" {
		t.Errorf("audit for the rule = %+v", events)
	}
}
