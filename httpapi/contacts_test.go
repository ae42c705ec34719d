package httpapi_test

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/apitest"
)

func TestContactMethodsAPI(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	ana := in.User("Dr Ana Cruz", "physician")
	nina := in.User("Nina Nurse", "nurse")
	admin := in.User("Ada Admin", "admin")
	methods := "/api/v1/users/" + ana.User.ID.String() + "/contact-methods"
	rules := "/api/v1/users/" + ana.User.ID.String() + "/notification-rules"

	// A person manages their own.
	email := ana.Must(201, "POST", methods, map[string]any{"kind": "email", "label": "Work", "address": "Ana.Cruz@Example.org"})
	if email["address"] != "ana.cruz@example.org" || email["kind"] != "email" || email["user_id"] != ana.User.ID.String() {
		t.Errorf("created %v", email)
	}
	if _, ok := email["secret"]; ok {
		t.Errorf("an email method came back with a secret: %v", email)
	}
	hook := ana.Must(201, "POST", methods, map[string]any{"kind": "webhook", "label": "Pager", "address": "https://gw.example.org/hook"})
	secret, _ := hook["secret"].(string)
	if b, err := hex.DecodeString(secret); err != nil || len(b) != 32 {
		t.Errorf("generated webhook secret %q, want 64 hex digits", secret)
	}
	given := ana.Must(201, "POST", methods, map[string]any{"kind": "webhook", "address": "https://gw2.example.org/hook",
		"secret": "a-32-byte-secret-shared-with-gw!"})
	if _, ok := given["secret"]; ok {
		t.Errorf("a caller-chosen secret was echoed: %v", given)
	}
	ana.Must(201, "POST", methods, map[string]any{"kind": "in_app"})
	if r := ana.Do("POST", methods, map[string]any{"kind": "in_app"}); r.Status != 409 || r.Field() != "kind" {
		t.Errorf("second in-app: %d %s", r.Status, r.Body)
	}
	for _, tc := range []struct {
		body  any
		field string
	}{
		{map[string]any{"kind": "pigeon"}, "kind"},
		{map[string]any{"kind": "email", "address": "nope"}, "address"},
		{map[string]any{"kind": "webhook", "address": "http://gw.example.org/hook"}, "address"},
		{map[string]any{"kind": "webhook", "address": "https://gw.example.org/hook", "secret": "short"}, "secret"},
		{map[string]any{"kind": "email", "address": "a@example.org", "label": strings.Repeat("x", 101)}, "label"},
	} {
		if r := ana.Do("POST", methods, tc.body); r.Status != 422 || r.Field() != tc.field {
			t.Errorf("%v: %d %s, want 422 on %s", tc.body, r.Status, r.Body, tc.field)
		}
	}
	if r := ana.Do("POST", methods, `{"kind": "email", "address": "a@example.org", "priority": 1}`); r.Status != 400 || r.Field() != "priority" {
		t.Errorf("unknown field: %d %s", r.Status, r.Body)
	}

	list := ana.Must(200, "GET", methods, nil)["contact_methods"].([]any)
	if len(list) != 4 {
		t.Fatalf("listed %d methods, want 4: %v", len(list), list)
	}
	for _, m := range list {
		if _, ok := m.(map[string]any)["secret"]; ok {
			t.Errorf("a listed method carries its secret: %v", m)
		}
	}

	emailID := email["id"].(string)
	rule := ana.Must(201, "POST", rules, map[string]any{"contact_method_id": emailID, "delay_seconds": 30})
	if rule["delay_seconds"] != float64(30) || rule["contact_method_id"] != emailID {
		t.Errorf("rule %v", rule)
	}
	if r := ana.Do("POST", rules, map[string]any{"contact_method_id": emailID, "delay_seconds": 30}); r.Status != 409 {
		t.Errorf("duplicate rule: %d %s", r.Status, r.Body)
	}
	if r := ana.Do("POST", rules, map[string]any{"contact_method_id": emailID, "delay_seconds": 3601}); r.Status != 422 || r.Field() != "delay_seconds" {
		t.Errorf("delay too long: %d %s", r.Status, r.Body)
	}
	ana.Must(201, "POST", rules, map[string]any{"contact_method_id": hook["id"], "delay_seconds": 0})
	if got := ana.Must(200, "GET", rules, nil)["notification_rules"].([]any); len(got) != 2 {
		t.Errorf("listed %d rules, want 2", len(got))
	}

	// Another nurse may not see or change Ana's, and the refusals are audited.
	for _, req := range []struct{ method, path string }{
		{"GET", methods}, {"POST", methods}, {"DELETE", methods + "/" + emailID},
		{"GET", rules}, {"POST", rules}, {"DELETE", rules + "/" + rule["id"].(string)},
	} {
		var body any
		if req.method == "POST" {
			body = map[string]any{"kind": "in_app"}
			if strings.HasSuffix(req.path, "rules") {
				body = map[string]any{"contact_method_id": emailID, "delay_seconds": 60}
			}
		}
		if r := nina.Do(req.method, req.path, body); r.Status != 403 {
			t.Errorf("nurse %s %s: %d %s, want 403", req.method, req.path, r.Status, r.Body)
		}
	}
	nid := nina.User.ID
	denied, err := audit.List(context.Background(), in.DB.Pool, audit.Filter{ActorID: &nid, Action: "access.denied"})
	if err != nil || len(denied) != 6 {
		t.Errorf("audited refusals for the nurse = %d (%v), want 6", len(denied), err)
	}

	// Nina cannot reach Ana's method through her own path either: 404, as if
	// it did not exist.
	ninaMethods := "/api/v1/users/" + nina.User.ID.String() + "/contact-methods"
	ninaRules := "/api/v1/users/" + nina.User.ID.String() + "/notification-rules"
	if r := nina.Do("DELETE", ninaMethods+"/"+emailID, nil); r.Status != 404 {
		t.Errorf("deleting another user's method through one's own path: %d %s, want 404", r.Status, r.Body)
	}
	if r := nina.Do("DELETE", ninaRules+"/"+rule["id"].(string), nil); r.Status != 404 {
		t.Errorf("deleting another user's rule through one's own path: %d %s, want 404", r.Status, r.Body)
	}
	if r := nina.Do("POST", ninaRules, map[string]any{"contact_method_id": emailID}); r.Status != 422 || r.Field() != "contact_method_id" {
		t.Errorf("a rule on another user's method: %d %s, want 422 on contact_method_id", r.Status, r.Body)
	}
	if got := nina.Must(200, "GET", ninaMethods, nil)["contact_methods"].([]any); len(got) != 0 {
		t.Errorf("Nina lists %d methods, want none", len(got))
	}

	// An administrator manages anyone's.
	if got := admin.Must(200, "GET", methods, nil)["contact_methods"].([]any); len(got) != 4 {
		t.Errorf("admin lists %d of Ana's methods, want 4", len(got))
	}
	pager := admin.Must(201, "POST", ninaMethods, map[string]any{"kind": "email", "address": "nina@example.org"})
	admin.Must(201, "POST", ninaRules, map[string]any{"contact_method_id": pager["id"], "delay_seconds": 60})
	admin.Must(204, "DELETE", rules+"/"+rule["id"].(string), nil)
	admin.Must(204, "DELETE", methods+"/"+hook["id"].(string), nil) // takes its rule along
	if got := ana.Must(200, "GET", rules, nil)["notification_rules"].([]any); len(got) != 0 {
		t.Errorf("rules left after deleting them and their method: %v", got)
	}
	nobody := "/api/v1/users/" + uuid.NewString() + "/contact-methods"
	if r := admin.Do("GET", nobody, nil); r.Status != 404 {
		t.Errorf("admin listing an unknown user's methods: %d, want 404", r.Status)
	}
	if r := admin.Do("POST", nobody, map[string]any{"kind": "in_app"}); r.Status != 404 {
		t.Errorf("admin adding a method for an unknown user: %d, want 404", r.Status)
	}
	if r := ana.Do("DELETE", methods+"/not-a-uuid", nil); r.Status != 400 || r.Field() != "cid" {
		t.Errorf("bad cid: %d %s", r.Status, r.Body)
	}

	// Ana deletes her own.
	ana.Must(204, "DELETE", methods+"/"+emailID, nil)
	if r := ana.Do("DELETE", methods+"/"+emailID, nil); r.Status != 404 {
		t.Errorf("second delete: %d, want 404", r.Status)
	}

	// Addresses are contact information: not in the logs, not in the trail.
	for _, addr := range []string{"ana.cruz@example.org", "gw.example.org", "nina@example.org", secret} {
		if strings.Contains(in.LogText(), addr) {
			t.Errorf("the log contains %q", addr)
		}
	}
	var n int
	in.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE details::text ILIKE '%example.org%'`).Scan(&n) //nolint:errcheck
	if n != 0 {
		t.Errorf("%d audit events carry an address", n)
	}
}
