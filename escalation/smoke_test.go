package escalation_test

import (
	"testing"
	"time"

	"github.com/callroom/callroom/internal/apitest"
)

// TestTwoStepEscalationSmoke: A is paged at once, B after the step delay,
// and acknowledging stops everything.
func TestTwoStepEscalationSmoke(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	admin := in.User("Avery Admin", "admin")
	nurse := in.User("Nina Nurse", "nurse")
	a, b := in.User("Dr A", "physician"), in.User("Dr B", "physician")
	pol := admin.Must(201, "POST", "/api/v1/escalation-policies", map[string]any{"name": "Cardio", "steps": []any{
		map[string]any{"delay_seconds": 1, "targets": []any{map[string]any{"user_id": a.User.ID}}},
		map[string]any{"delay_seconds": 60, "targets": []any{map[string]any{"user_id": b.User.ID}}},
	}})
	svc := admin.Must(201, "POST", "/api/v1/services", map[string]any{"name": "Cardiology", "escalation_policy_id": pol["id"]})
	page := nurse.Must(201, "POST", "/api/v1/pages", map[string]any{"service_id": svc["id"], "priority": "stat", "summary": "chest pain bed 4"})
	id := page["id"].(string)
	waitFor(t, func() bool {
		d := nurse.Must(200, "GET", "/api/v1/pages/"+id, nil)
		return notifiedUsers(d)[b.User.ID.String()]
	})
	d := nurse.Must(200, "GET", "/api/v1/pages/"+id, nil)
	if !notifiedUsers(d)[a.User.ID.String()] {
		t.Fatalf("A was not notified: %v", d["notifications"])
	}
	if r := nurse.Do("POST", "/api/v1/pages/"+id+"/acknowledge", nil); r.Status != 403 {
		t.Errorf("the sender acknowledging: %d", r.Status)
	}
	ack := b.Must(200, "POST", "/api/v1/pages/"+id+"/acknowledge", nil)
	if ack["status"] != "acknowledged" || ack["acknowledged_by"] != b.User.ID.String() {
		t.Fatalf("ack: %v", ack)
	}
}

func notifiedUsers(d map[string]any) map[string]bool {
	out := map[string]bool{}
	ns, _ := d["notifications"].([]any)
	for _, n := range ns {
		out[n.(map[string]any)["user_id"].(string)] = true
	}
	return out
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 15 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
