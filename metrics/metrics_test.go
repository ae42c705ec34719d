package metrics_test

import (
	"bufio"
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/apitest"
)

var (
	scrape = apitest.Scrape
	sample = apitest.Sample
)

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// TestMetricsScrape runs a whole instance, pages through it with a patient
// reference, acknowledges, holds an event stream open, and scrapes /metrics:
// every family is there with the right labels, and no id, patient reference
// or page text appears anywhere in the exposition.
func TestMetricsScrape(t *testing.T) {
	t.Parallel()
	for _, separate := range []bool{false, true} {
		t.Run(map[bool]string{false: "same address", true: "separate address"}[separate], func(t *testing.T) {
			t.Parallel()
			in := apitest.Start(t, apitest.Options{SeparateMetrics: separate})
			admin := in.User("Avery Admin", "admin")
			nurse := in.User("Nina Nurse", "nurse")
			doc := in.User("Dr A", "physician")
			pol := admin.Must(201, "POST", "/api/v1/escalation-policies", map[string]any{"name": "Cardio", "steps": []any{
				map[string]any{"delay_seconds": 60, "targets": []any{map[string]any{"user_id": doc.User.ID}}},
			}})
			svc := admin.Must(201, "POST", "/api/v1/services", map[string]any{"name": "Cardiology", "escalation_policy_id": pol["id"]})

			// An open event stream for the doctor.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", in.URL+"/api/v1/events", nil)
			req.Header.Set("Authorization", "Bearer "+doc.Token)
			stream, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Body.Close()
			events := bufio.NewReader(stream.Body)

			page := nurse.Must(201, "POST", "/api/v1/pages", map[string]any{"service_id": svc["id"], "priority": "stat",
				"summary": "Zorblax chest pain", "patient_ref": "Patient/mrn-7734511"})
			id := page["id"].(string)
			// The in-app notification arrives on the stream.
			for {
				line, err := events.ReadString('\n')
				if err != nil {
					t.Fatalf("stream: %v", err)
				}
				if strings.HasPrefix(line, "event: page.notify") {
					break
				}
			}
			doc.Must(200, "POST", "/api/v1/pages/"+id+"/acknowledge", nil)
			if r := nurse.Do("GET", "/api/v1/pages/00000000-0000-0000-0000-000000000001", nil); r.Status != 404 {
				t.Fatalf("missing page: %d", r.Status)
			}

			// A made-up method must not become a label value.
			odd, _ := http.NewRequest("XYZZY", in.URL+"/api/v1/pages", nil)
			if resp, err := http.DefaultClient.Do(odd); err == nil {
				resp.Body.Close()
			}

			text := scrape(t, in.MetricsURL)
			if strings.Contains(text, "XYZZY") {
				t.Error("a client's method became a label value")
			}
			checks := []struct {
				name   string
				labels []string
			}{
				{"callroom_http_requests_total", []string{`route="/api/v1/pages/{id}"`, `method="GET"`, `status="404"`}},
				{"callroom_http_requests_total", []string{`route="/api/v1/pages"`, `method="POST"`, `status="201"`}},
				{"callroom_http_request_duration_seconds_count", []string{`route="/api/v1/pages"`, `method="POST"`}},
				{"callroom_http_requests_total", []string{`method="other"`}},
				{"callroom_pages_created_total", []string{`service="Cardiology"`, `priority="stat"`}},
				{"callroom_page_time_to_acknowledge_seconds_count", []string{`priority="stat"`}},
				{"callroom_escalation_lateness_seconds_count", nil},
				{"callroom_notifications_total", []string{`channel="in_app"`, `status="sent"`}},
				{"callroom_sse_connections", nil},
				{"callroom_database_up", nil},
				{"go_goroutines", nil},
			}
			for _, c := range checks {
				v, ok := sample(text, c.name, c.labels...)
				if !ok {
					t.Errorf("no %s with %v in:\n%s", c.name, c.labels, grep(text, "callroom_"))
					continue
				}
				if v == "0" {
					t.Errorf("%s%v = 0", c.name, c.labels)
				}
			}
			if v, _ := sample(text, "callroom_sse_connections"); v != "1" {
				t.Errorf("sse connections %s, want 1", v)
			}
			if v, _ := sample(text, "callroom_database_up"); v != "1" {
				t.Errorf("database up %s, want 1", v)
			}
			for _, secret := range []string{"mrn-7734511", "Zorblax", id, doc.User.ID.String(), nurse.User.ID.String()} {
				if strings.Contains(text, secret) {
					t.Errorf("the exposition holds %q", secret)
				}
			}
			if m := uuidRE.FindString(text); m != "" {
				t.Errorf("the exposition holds an id: %s", m)
			}
			// /metrics is on exactly one of the two addresses.
			r := in.Anonymous().Do("GET", "/metrics", nil)
			if separate && r.Status != 404 {
				t.Errorf("/metrics on the API address too: %d", r.Status)
			}
			cancel()
			deadline := time.Now().Add(10 * time.Second)
			for {
				if v, _ := sample(scrape(t, in.MetricsURL), "callroom_sse_connections"); v == "0" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the stream gauge did not go back to 0")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func grep(text, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, prefix) {
			b.WriteString(line)
		}
	}
	return b.String()
}
