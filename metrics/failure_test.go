package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/server"
)

// TestMetricsFailures: an email notification through a relay that is down
// fails its River job (counted per kind), is retried once, and ends failed
// (counted per channel and status).
func TestMetricsFailures(t *testing.T) {
	t.Parallel()
	closed := apitest.FreeAddr(t) // a relay that is down
	in := apitest.Start(t, apitest.Options{SMTPRelay: closed, Setup: func(s *server.Server) {
		s.Pages.DeliverAttempts = 2
		s.Pages.DeliverBackoff = []time.Duration{100 * time.Millisecond}
	}})
	admin, nurse, doc := in.User("Avery Admin", "admin"), in.User("Nina Nurse", "nurse"), in.User("Dr A", "physician")
	base := "/api/v1/users/" + doc.User.ID.String()
	email := doc.Must(201, "POST", base+"/contact-methods", map[string]any{"kind": "email", "address": "dr.a@hospital.test"})
	doc.Must(201, "POST", base+"/notification-rules", map[string]any{"contact_method_id": email["id"], "delay_seconds": 0})
	pol := admin.Must(201, "POST", "/api/v1/escalation-policies", map[string]any{"name": "Cardio", "steps": []any{
		map[string]any{"delay_seconds": 600, "targets": []any{map[string]any{"user_id": doc.User.ID}}},
	}})
	svc := admin.Must(201, "POST", "/api/v1/services", map[string]any{"name": "Cardiology", "escalation_policy_id": pol["id"]})
	nurse.Must(201, "POST", "/api/v1/pages", map[string]any{"service_id": svc["id"], "priority": "urgent", "summary": "Zorblax"})

	deadline := time.Now().Add(30 * time.Second)
	for {
		text := scrape(t, in.MetricsURL)
		failed, _ := sample(text, "callroom_notifications_total", `channel="email"`, `status="failed"`)
		jobs, _ := sample(text, "callroom_river_job_failures_total", `kind="escalation.deliver"`)
		if failed == "1" && jobs == "1" {
			if strings.Contains(text, "hospital.test") {
				t.Error("the exposition holds an address")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("email failed %q, deliver job failures %q:\n%s", failed, jobs, grep(text, "callroom_"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
