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

// Sending a page costs the server four round trips to PostgreSQL
// (docs/PERFORMANCE.md, issue 3): the caller's token; BEGIN with the
// service's policy; the recipients' contact methods; then the page, its
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
	send := func() {
		t.Helper()
		status, body, err := nurse.Do(ctx, "POST", "/api/v1/pages",
			fmt.Appendf(nil, `{"service_id":%q,"priority":"urgent","summary":"round trips"}`, svc))
		if err != nil || status != 201 {
			t.Fatalf("page: %d %s %v", status, body, err)
		}
	}
	send() // statements prepared on the connection
	const pages = 20
	in.SQL.Reset()
	for range pages {
		send()
	}
	// River's pollers run meanwhile (the escalation queue every 50 ms);
	// their statements are River's named queries, not the pages'.
	calls := in.SQL.CallsWhere(func(sql string) bool { return !strings.HasPrefix(sql, "-- name: ") })
	t.Logf("%d pages: %d round trips\n%s", pages, calls, in.SQL.Top(8))
	// The instance's periodic work (the audit chain's seal, a token's last
	// use recorded once a minute) may add a few; one round trip more per
	// page is 20 more.
	if calls > 4*pages+pages/2 {
		t.Errorf("%d round trips for %d pages: %.1f a page, want 4", calls, pages, float64(calls)/pages)
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
	if want := pages + 1; sent != want || queued != want || deliveries != want || steps != want {
		t.Errorf("in-app sent %d, emails queued %d, delivery jobs %d, step jobs %d; want %d each", sent, queued, deliveries, steps, want)
	}
}
