package escalation_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/internal/apitest"
)

// written counts the rows that creating a page or a policy writes.
func (h *harness) written() map[string]int {
	h.t.Helper()
	out := map[string]int{}
	for _, table := range []string{"pages", "page_events", "notifications", "escalation_policies", "escalation_steps",
		"escalation_step_targets", "services"} {
		out[table] = h.count(`SELECT count(*) FROM ` + table)
	}
	// River's own periodic jobs (session sweep, event purge) come and go.
	out["river_job"] = h.count(`SELECT count(*) FROM river_job WHERE kind LIKE 'escalation.%'`)
	return out
}

// Bad input is answered 422 with a problem naming the field, and nothing
// is written: no page, no policy, no job.
func TestBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.user("Dr A")
	svc := h.service("Cardiology", 0, nil, step{60, []any{userT(a)}})
	page := func(edit func(map[string]any)) map[string]any {
		b := map[string]any{"service_id": svc, "priority": "urgent", "summary": "chest pain Zorblax"}
		edit(b)
		return b
	}
	policy := func(edit func(map[string]any)) map[string]any {
		b := map[string]any{"name": "Neurology", "steps": []any{map[string]any{"delay_seconds": 60, "targets": []any{userT(a)}}}}
		edit(b)
		return b
	}
	steps := func(s ...map[string]any) []any {
		var out []any
		for _, x := range s {
			out = append(out, x)
		}
		return out
	}
	nobody := uuid.NewString()
	for _, tc := range []struct {
		name, path string
		body       map[string]any
		field      string
	}{
		{"unknown service", "/api/v1/pages", page(func(b map[string]any) { b["service_id"] = nobody }), "service_id"},
		{"unknown user", "/api/v1/pages", page(func(b map[string]any) { delete(b, "service_id"); b["user_id"] = nobody }), "user_id"},
		{"service and user", "/api/v1/pages", page(func(b map[string]any) { b["user_id"] = a.User.ID }), "service_id"},
		{"neither service nor user", "/api/v1/pages", page(func(b map[string]any) { delete(b, "service_id") }), "service_id"},
		{"priority critical", "/api/v1/pages", page(func(b map[string]any) { b["priority"] = "critical" }), "priority"},
		{"priority in capitals", "/api/v1/pages", page(func(b map[string]any) { b["priority"] = "STAT" }), "priority"},
		{"priority missing", "/api/v1/pages", page(func(b map[string]any) { delete(b, "priority") }), "priority"},
		{"summary empty", "/api/v1/pages", page(func(b map[string]any) { b["summary"] = "" }), "summary"},
		{"summary blank", "/api/v1/pages", page(func(b map[string]any) { b["summary"] = " \t " }), "summary"},
		{"summary 201 characters", "/api/v1/pages", page(func(b map[string]any) { b["summary"] = strings.Repeat("é", 201) }), "summary"},
		{"body 10001 characters", "/api/v1/pages", page(func(b map[string]any) { b["body"] = strings.Repeat("x", 10001) }), "body"},
		{"patient_ref without type", "/api/v1/pages", page(func(b map[string]any) { b["patient_ref"] = "12345" }), "patient_ref"},
		{"patient_ref of another type", "/api/v1/pages", page(func(b map[string]any) { b["patient_ref"] = "Encounter/12345" }), "patient_ref"},
		{"patient_ref with a space", "/api/v1/pages", page(func(b map[string]any) { b["patient_ref"] = "Patient/12 345" }), "patient_ref"},
		{"encounter_ref bad", "/api/v1/pages", page(func(b map[string]any) { b["encounter_ref"] = "Encounter/" }), "encounter_ref"},
		{"policy without steps", "/api/v1/escalation-policies", policy(func(b map[string]any) { delete(b, "steps") }), "steps"},
		{"policy with empty steps", "/api/v1/escalation-policies", policy(func(b map[string]any) { b["steps"] = []any{} }), "steps"},
		{"negative delay", "/api/v1/escalation-policies", policy(func(b map[string]any) {
			b["steps"] = steps(map[string]any{"delay_seconds": 60, "targets": []any{userT(a)}}, map[string]any{"delay_seconds": -1, "targets": []any{userT(a)}})
		}), "steps.1.delay_seconds"},
		{"delay over a day", "/api/v1/escalation-policies", policy(func(b map[string]any) {
			b["steps"] = steps(map[string]any{"delay_seconds": 86401, "targets": []any{userT(a)}})
		}), "steps.0.delay_seconds"},
		{"step without targets", "/api/v1/escalation-policies", policy(func(b map[string]any) {
			b["steps"] = steps(map[string]any{"delay_seconds": 60, "targets": []any{}})
		}), "steps.0.targets"},
		{"unknown target user", "/api/v1/escalation-policies", policy(func(b map[string]any) {
			b["steps"] = steps(map[string]any{"delay_seconds": 60, "targets": []any{map[string]any{"user_id": nobody}}})
		}), "steps.0.targets.0.user_id"},
		{"unknown target schedule", "/api/v1/escalation-policies", policy(func(b map[string]any) {
			b["steps"] = steps(map[string]any{"delay_seconds": 60, "targets": []any{schedT(nobody)}})
		}), "steps.0.targets.0.schedule_id"},
		{"repeat 11", "/api/v1/escalation-policies", policy(func(b map[string]any) { b["repeat"] = 11 }), "repeat"},
		{"policy without a name", "/api/v1/escalation-policies", policy(func(b map[string]any) { b["name"] = " " }), "name"},
		{"unknown fallback", "/api/v1/escalation-policies", policy(func(b map[string]any) { b["fallback"] = map[string]any{"user_id": nobody} }), "fallback.user_id"},
	} {
		caller := h.nurse
		if strings.Contains(tc.path, "polic") {
			caller = h.admin
		}
		before := h.written()
		r := caller.Do("POST", tc.path, tc.body)
		if r.Status != 422 || r.Field() != tc.field || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s field %q, want 422 problem+json naming %q: %s", tc.name, r.Status, r.Header.Get("Content-Type"), r.Field(), tc.field, r.Body)
		}
		if after := h.written(); !mapsEqual(before, after) {
			t.Errorf("%s: rows written: before %v, after %v", tc.name, before, after)
		}
	}

	// The limits are inclusive: 200 characters (400 bytes) of summary and
	// 10,000 of body are a page.
	p := h.nurse.Must(201, "POST", "/api/v1/pages", page(func(b map[string]any) {
		b["summary"] = strings.Repeat("é", 200)
		b["body"] = strings.Repeat("x", 10000)
		b["patient_ref"] = "Patient/mrn-4471.a"
	}))
	h.expect(uuid.MustParse(p["id"].(string)), sent("Dr A", "in_app", 0, 0))
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Who may do what to a page, and the in-app channel end to end.
func TestPagePermissions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, stranger := h.user("Dr A"), h.user("Dr Stranger")
	svc := h.service("Cardiology", 0, nil, step{3600, []any{userT(a)}}, step{3600, []any{userT(a)}})

	// A nurse cannot make services or policies; the refusal writes nothing.
	before := h.written()
	if r := h.nurse.Do("POST", "/api/v1/escalation-policies", map[string]any{"name": "Mine",
		"steps": []any{map[string]any{"delay_seconds": 60, "targets": []any{userT(a)}}}}); r.Status != 403 {
		t.Errorf("nurse creating a policy: %d %s", r.Status, r.Body)
	}
	var pol string
	h.in.DB.Pool.QueryRow(context.Background(), `SELECT id::text FROM escalation_policies`).Scan(&pol) //nolint:errcheck
	if r := h.nurse.Do("POST", "/api/v1/services", map[string]any{"name": "Mine", "escalation_policy_id": pol}); r.Status != 403 {
		t.Errorf("nurse creating a service: %d %s", r.Status, r.Body)
	}
	if after := h.written(); !mapsEqual(before, after) {
		t.Errorf("refusals wrote rows: before %v, after %v", before, after)
	}

	p := h.page(svc, "urgent", "chest pain Zorblax")
	h.expect(p, sent("Dr A", "in_app", 0, 0))
	// Someone the page never reached may not act on it.
	for _, verb := range []string{"acknowledge", "resolve", "escalate", "cancel"} {
		if r := action(stranger, p, verb, nil); r.Status != 403 {
			t.Errorf("a physician never notified: %s answered %d %s", verb, r.Status, r.Body)
		}
	}
	// Only the sender may cancel; cancelling cancels the pending step.
	if r := action(a, p, "cancel", nil); r.Status != 403 {
		t.Errorf("the recipient cancelling: %d", r.Status)
	}
	if r := action(h.nurse, p, "cancel", nil); r.Status != 200 || r.JSON["status"] != "cancelled" {
		t.Fatalf("the sender cancelling: %d %s", r.Status, r.Body)
	}
	if r := action(a, p, "acknowledge", nil); r.Status != 409 {
		t.Errorf("acknowledging a cancelled page: %d", r.Status)
	}
	h.settle()
	if n := h.count(`SELECT count(*) FROM river_job WHERE kind = 'escalation.step' AND state = 'cancelled'`); n != 1 {
		t.Errorf("%d cancelled step jobs, want 1", n)
	}
}

// sseEvent is one server-sent event.
type sseEvent struct {
	ID, Type string
	Data     map[string]any
	Raw      string
}

// openStream opens c's event stream and returns its events as they come.
func openStream(t *testing.T, c *apitest.Client) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", c.Base+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	out := make(chan sseEvent, 100)
	sc := bufio.NewScanner(resp.Body)
	// The first message ("retry: ...") is written once the subscription is
	// in place: wait for it, so no event published afterwards is missed.
	for sc.Scan() && sc.Text() != "" {
	}
	go func() {
		defer close(out)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.Type != "" {
					out <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				e.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.Type = line[7:]
			case strings.HasPrefix(line, "data: "):
				e.Raw = line[6:]
				json.Unmarshal([]byte(e.Raw), &e.Data) //nolint:errcheck
			}
		}
	}()
	return out
}

// A physician with an open event stream gets page.notify with the page id
// and none of its text; the notification becomes delivered, and opening
// the page marks it read.
func TestInAppNotificationOverEventStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.user("Dr A")
	svc := h.service("Cardiology", 0, nil, step{3600, []any{userT(a)}})
	stream := openStream(t, a)
	p := h.page(svc, "stat", "chest pain Zorblax")

	timeout := time.After(waitCap)
	for got := false; !got; {
		select {
		case e, ok := <-stream:
			if !ok {
				t.Fatal("the stream ended")
			}
			for _, s := range phi {
				if strings.Contains(e.Raw, s) {
					t.Errorf("event %s carries %q: %s", e.Type, s, e.Raw)
				}
			}
			if e.Type == "page.notify" {
				got = true
				if e.Data["page_id"] != p.String() || e.Data["priority"] != "stat" || e.Data["notification_id"] == nil {
					t.Errorf("page.notify %s", e.Raw)
				}
			}
		case <-timeout:
			t.Fatal("no page.notify within the wait cap")
		}
	}
	h.expect(p, note{"Dr A", "in_app", 0, 0, "delivered"})

	a.Must(200, "GET", "/api/v1/pages/"+p.String(), nil)
	h.expect(p, note{"Dr A", "in_app", 0, 0, "read"})
	if n := h.count(`SELECT count(*) FROM page_events WHERE page_id = $1 AND kind IN ('delivered', 'read')`, p); n != 2 {
		t.Errorf("%d delivered/read timeline entries, want 2", n)
	}
}
