package httpapi_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/apitest"
)

// TestBreakTheGlass: a nurse outside a patient's threads reads them only
// after stating a reason, only for that patient, only until the grant
// expires; the grant, each read under it and the review are audited, the
// auditors are told at once, and the grant waits for their review.
func TestBreakTheGlass(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	ctx := context.Background()
	ana := in.User("Dr Ana Cruz", "physician")
	ben := in.User("Ben Ruiz RN", "nurse")
	dan := in.User("Dan Covering RN", "nurse")
	sched := in.User("Sam Scheduler", "scheduler")
	aud := in.User("Avi Auditor", "auditor")
	admin := in.User("Ada Admin", "admin")

	th := ana.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "name": "Bed 4",
		"patient_ref": "Patient/p-glass", "member_ids": []string{ben.User.ID.String()}})
	id := th["id"].(string)
	resp, b := inboxRaw(t, ana, "POST", "/api/v1/threads/"+id+"/attachments?filename=ecg.png", "image/png", append([]byte("\x89PNG\r\n\x1a\n"), "peaked T waves"...))
	if resp.StatusCode != 201 {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	var att map[string]any
	json.Unmarshal(b, &att) //nolint:errcheck
	msg := ana.Must(201, "POST", "/api/v1/threads/"+id+"/messages", map[string]any{"text": "potassium 6.1, repeat stat", "attachment_ids": []any{att["id"]}})
	other := ana.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "name": "Bed 5",
		"patient_ref": "Patient/p-other", "member_ids": []string{ben.User.ID.String()}})

	if r := dan.Do("GET", "/api/v1/threads/"+id, nil); r.Status != 403 {
		t.Fatalf("before breaking the glass: %d, want 403", r.Status)
	}
	if got := inboxList(t, dan.Must(200, "GET", "/api/v1/patients/"+url.PathEscape("Patient/p-glass")+"/threads", nil), "threads"); len(got) != 0 {
		t.Fatalf("chart view before: %d threads", len(got))
	}

	for _, tc := range []struct {
		body  any
		want  int
		field string
	}{
		{map[string]any{"patient_ref": "Patient/p-glass", "reason": "urgent"}, 422, "reason"},
		{map[string]any{"patient_ref": "Patient/p-glass"}, 422, "reason"},
		{map[string]any{"patient_ref": "nobody", "reason": "rapid response call, bed 4"}, 422, "patient_ref"},
		{map[string]any{"patient_ref": "Patient/p-glass", "reason": "rapid response call, bed 4", "minutes": 241}, 422, "minutes"},
		{`{"patient_ref": "Patient/p-glass", "reason": "rapid response call", "why": 1}`, 400, "why"},
	} {
		if r := dan.Do("POST", "/api/v1/emergency-access", tc.body); r.Status != tc.want || r.Field() != tc.field {
			t.Errorf("%v: %d %q, want %d %q", tc.body, r.Status, r.Field(), tc.want, tc.field)
		}
	}
	for _, c := range []*apitest.Client{sched, aud} {
		if r := c.Do("POST", "/api/v1/emergency-access", map[string]any{"patient_ref": "Patient/p-glass", "reason": "just looking around"}); r.Status != 403 {
			t.Errorf("%s breaking the glass: %d, want 403", c.User.Name, r.Status)
		}
	}

	g := dan.Must(201, "POST", "/api/v1/emergency-access", map[string]any{"patient_ref": "Patient/p-glass", "reason": "rapid response call, bed 4"})
	grant := g["id"].(string)
	exp, _ := time.Parse(time.RFC3339Nano, g["expires_at"].(string))
	if d := time.Until(exp); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("expires in %s, want an hour", d)
	}

	dan.Must(200, "GET", "/api/v1/threads/"+id, nil)
	msgs := inboxList(t, dan.Must(200, "GET", "/api/v1/threads/"+id+"/messages", nil), "messages")
	if len(msgs) != 1 || msgs[0]["text"] != "potassium 6.1, repeat stat" {
		t.Errorf("messages under emergency access: %v", msgs)
	}
	if got := inboxList(t, dan.Must(200, "GET", "/api/v1/patients/"+url.PathEscape("Patient/p-glass")+"/threads", nil), "threads"); len(got) != 1 {
		t.Errorf("chart view under emergency access: %d threads, want 1", len(got))
	}
	if m := dan.Must(200, "GET", "/api/v1/threads/"+id+"/messages/"+msg["id"].(string), nil); m["text"] != "potassium 6.1, repeat stat" {
		t.Errorf("one message under emergency access: %v", m)
	}
	if got := inboxList(t, dan.Must(200, "GET", "/api/v1/threads/"+id+"/attachments", nil), "attachments"); len(got) != 1 {
		t.Errorf("attachments under emergency access: %v", got)
	}
	if resp, b := inboxRaw(t, dan, "GET", "/api/v1/threads/"+id+"/attachments/"+att["id"].(string), "", nil); resp.StatusCode != 200 || !strings.Contains(string(b), "peaked T waves") {
		t.Errorf("download under emergency access: %d", resp.StatusCode)
	}
	// Only that patient, and only reading.
	if r := dan.Do("GET", "/api/v1/threads/"+other["id"].(string), nil); r.Status != 403 {
		t.Errorf("another patient's thread: %d, want 403", r.Status)
	}
	if r := dan.Do("POST", "/api/v1/threads/"+id+"/messages", map[string]any{"text": "on my way"}); r.Status != 403 {
		t.Errorf("posting under emergency access: %d, want 403", r.Status)
	}

	// The auditors were told (ids only), and the trail has the reason and every use.
	var told int
	err := in.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM user_events WHERE user_id = $1 AND type = 'emergency.access_granted'
		AND data->>'emergency_access_id' = $2 AND NOT data ? 'patient_ref'`, aud.User.ID, grant).Scan(&told)
	if err != nil || told != 1 {
		t.Errorf("auditor events: %d %v, want 1", told, err)
	}
	q := url.Values{"patient": {"Patient/p-glass"}, "subtype": {"emergency_access.grant"}}
	evs := auditEntries(t, aud.Must(200, "GET", "/api/v1/audit?"+q.Encode(), nil))
	if len(evs) != 3 || evs[0]["outcome"] != "4" || evs[1]["outcome"] != "4" {
		t.Errorf("%d grant events, want the scheduler's and auditor's refused ones first", len(evs))
	}
	evs = evs[len(evs)-1:]
	if evs[0]["outcome"] != "0" || !strings.Contains(string(mustJSON(t, evs[0])), "rapid response call, bed 4") ||
		!strings.Contains(string(mustJSON(t, evs[0])), `"ETREAT"`) {
		t.Errorf("grant events %v", evs)
	}
	q = url.Values{"agent": {dan.User.ID.String()}, "subtype": {"emergency_access.use"}}
	if evs := auditEntries(t, aud.Must(200, "GET", "/api/v1/audit?"+q.Encode(), nil)); len(evs) != 6 {
		t.Errorf("%d emergency_access.use events, want 6 (thread, messages, chart view, message, attachments, download)", len(evs))
	}

	// The review queue: auditors and administrators, not the user, once.
	if r := dan.Do("GET", "/api/v1/emergency-access", nil); r.Status != 403 {
		t.Errorf("nurse reading the review queue: %d", r.Status)
	}
	queue := inboxList(t, aud.Must(200, "GET", "/api/v1/emergency-access?unreviewed=true", nil), "emergency_access")
	if len(queue) != 1 || queue[0]["id"] != grant || queue[0]["reason"] != "rapid response call, bed 4" {
		t.Fatalf("review queue %v", queue)
	}
	if r := dan.Do("POST", "/api/v1/emergency-access/"+grant+"/review", map[string]any{}); r.Status != 403 {
		t.Errorf("reviewing one's own grant: %d", r.Status)
	}
	rv := admin.Must(200, "POST", "/api/v1/emergency-access/"+grant+"/review", map[string]any{"note": "confirmed with charge nurse"})
	if rv["reviewed_by"] != admin.User.ID.String() {
		t.Errorf("review %v", rv)
	}
	if r := aud.Do("POST", "/api/v1/emergency-access/"+grant+"/review", map[string]any{}); r.Status != 409 {
		t.Errorf("second review: %d, want 409", r.Status)
	}
	if queue := inboxList(t, aud.Must(200, "GET", "/api/v1/emergency-access?unreviewed=true", nil), "emergency_access"); len(queue) != 0 {
		t.Errorf("reviewed grant still queued")
	}

	// Expired: the glass closes again.
	if _, err := in.DB.Pool.Exec(ctx, `UPDATE emergency_access SET granted_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' WHERE id = $1`, grant); err != nil {
		t.Fatal(err)
	}
	if r := dan.Do("GET", "/api/v1/threads/"+id+"/messages", nil); r.Status != 403 {
		t.Errorf("after expiry: %d, want 403", r.Status)
	}
	if got := inboxList(t, dan.Must(200, "GET", "/api/v1/patients/"+url.PathEscape("Patient/p-glass")+"/threads", nil), "threads"); len(got) != 0 {
		t.Errorf("chart view after expiry: %d threads", len(got))
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
