package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/benchutil"
)

// Sending a page costs the server three round trips to PostgreSQL
// (docs/PERFORMANCE.md, issue 3), five when its first step pages whoever is
// on call on a schedule: the caller's token; BEGIN with the service's
// policy and the contact methods of the people its first step names; (the
// schedule; the contact methods of who is on call;) then the page, its
// audit row, timeline, next-step job, notifications, delivery jobs due
// later, events, read-back and COMMIT together. Each round trip costs both
// processes a wake-up, which on two cores costs as much as the statements:
// a change that adds one should be a decision, not an accident.
func TestSendingAPageRoundTrips(t *testing.T) {
	ctx := context.Background()
	in := benchutil.Start(t, benchutil.Options{TraceSQL: true})
	nurse := in.User("Nurse", "nurse")
	doctor := in.User("Dr Ana", "physician")
	svc := in.Service("Cardiology", 10*time.Minute, doctor.User.ID)
	// An email 60 s after the step, unless acknowledged: its delivery job
	// is written with the page, due later.
	status, body, err := doctor.Do(ctx, "POST", "/api/v1/users/"+doctor.User.ID.String()+"/contact-methods",
		map[string]any{"kind": "email", "address": "ana@example.org"})
	if err != nil || status != 201 {
		t.Fatalf("contact method: %d %s %v", status, body, err)
	}
	var method struct{ ID string }
	if err := json.Unmarshal(body, &method); err != nil {
		t.Fatal(err)
	}
	if status, body, err := doctor.Do(ctx, "POST", "/api/v1/users/"+doctor.User.ID.String()+"/notification-rules",
		map[string]any{"contact_method_id": method.ID, "delay_seconds": 60}); err != nil || status != 201 {
		t.Fatalf("rule: %d %s %v", status, body, err)
	}
	// The same physician on call on a schedule: its read (rotations, rules,
	// overrides and who is deactivated) is one round trip more.
	admin := in.User("Ada Admin", "admin")
	var sched struct{ ID string }
	must := func(path string, body any, into any) {
		t.Helper()
		status, b, err := admin.Do(ctx, "POST", path, body)
		if err != nil || status != 201 {
			t.Fatalf("POST %s: %d %s %v", path, status, b, err)
		}
		if into != nil {
			if err := json.Unmarshal(b, into); err != nil {
				t.Fatal(err)
			}
		}
	}
	must("/api/v1/schedules", map[string]any{"name": "Cardiology call", "time_zone": "America/Chicago"}, &sched)
	must("/api/v1/schedules/"+sched.ID+"/rotations", map[string]any{"name": "Attendings", "participants": []any{doctor.User.ID},
		"shift_length": 1, "shift_unit": "weeks", "start": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, nil)
	var policy, onCall struct{ ID string }
	must("/api/v1/escalation-policies", map[string]any{"name": "Cardiology call", "steps": []any{map[string]any{
		"delay_seconds": 600, "targets": []any{map[string]any{"schedule_id": sched.ID}}}}}, &policy)
	must("/api/v1/services", map[string]any{"name": "Cardiology on call", "escalation_policy_id": policy.ID}, &onCall)

	send := func(service string) {
		t.Helper()
		status, body, err := nurse.Do(ctx, "POST", "/api/v1/pages",
			fmt.Appendf(nil, `{"service_id":%q,"priority":"urgent","summary":"round trips"}`, service))
		if err != nil || status != 201 {
			t.Fatalf("page: %d %s %v", status, body, err)
		}
	}
	send(svc.String()) // statements prepared on the connection
	send(onCall.ID)
	const pages = 60
	in.SQL.Reset()
	for range pages {
		send(onCall.ID)
	}
	// River's pollers run meanwhile (the escalation queue every 50 ms);
	// their statements are River's named queries, not the pages'.
	ours := func(sql string) bool { return !strings.HasPrefix(sql, "-- name: ") }
	calls := in.SQL.CallsWhere(ours)
	t.Logf("%d pages to a schedule: %d round trips", pages, calls)
	if calls > 5*pages+pages/2 {
		t.Errorf("paging a schedule: %d round trips for %d pages: %.1f a page, want 5", calls, pages, float64(calls)/pages)
	}
	in.SQL.Reset()
	for range pages {
		send(svc.String())
	}
	calls = in.SQL.CallsWhere(ours)
	t.Logf("%d pages: %d round trips\n%s", pages, calls, in.SQL.Top(8))
	// The instance's periodic work (the audit chain's seal, a token's last
	// use recorded once a minute, a retention sweep: up to ~20 statements)
	// may add some; one round trip more per page is 60 more.
	if calls > 3*pages+pages/2 {
		t.Errorf("%d round trips for %d pages: %.1f a page, want 3", calls, pages, float64(calls)/pages)
	}

	// What the single write round trip wrote: for each page its in-app
	// notification sent, its email queued with a delivery job due in a
	// minute, and its next step's job due in ten.
	var sent, queued, deliveries, steps int
	if err := in.DB.Pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM notifications WHERE channel = 'in_app' AND status = 'sent'),
			(SELECT count(*) FROM notifications WHERE channel = 'email' AND status = 'queued'),
			(SELECT count(*) FROM river_job WHERE kind = 'escalation.deliver' AND state = 'available'
				AND scheduled_at BETWEEN now() + interval '30 seconds' AND now() + interval '61 seconds'),
			(SELECT count(*) FROM river_job WHERE kind = 'escalation.step' AND state = 'available'
				AND scheduled_at > now() + interval '9 minutes')`).Scan(&sent, &queued, &deliveries, &steps); err != nil {
		t.Fatal(err)
	}
	if want := 2*pages + 2; sent != want || queued != want || deliveries != want || steps != want {
		t.Errorf("in-app sent %d, emails queued %d, delivery jobs %d, step jobs %d; want %d each", sent, queued, deliveries, steps, want)
	}
}
