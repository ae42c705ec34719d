package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/events"
	"github.com/callroom/callroom/inbox"
	"github.com/callroom/callroom/internal/apitest"
)

// inboxRaw sends a non-JSON request (an upload, a download) as c.
func inboxRaw(t *testing.T, c *apitest.Client, method, path, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, c.Base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func inboxList(t *testing.T, m map[string]any, key string) []map[string]any {
	t.Helper()
	raw, _ := m[key].([]any)
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i] = x.(map[string]any)
	}
	return out
}

func TestThreadsAPI(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	ctx := context.Background()
	ana := in.User("Dr Ana Cruz", "physician")
	ben := in.User("Ben Ruiz RN", "nurse")
	dan := in.User("Dan Outsider RN", "nurse")
	aud := in.User("Avi Auditor", "auditor")
	admin := in.User("Ada Admin", "admin")
	sched := in.User("Sam Scheduler", "scheduler")

	// A direct thread is one per pair: the second ask answers 200 with it.
	direct := ana.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "direct", "member_ids": []any{ben.User.ID}})
	again := ben.Must(200, "POST", "/api/v1/threads", map[string]any{"kind": "direct", "member_ids": []any{ana.User.ID}})
	if again["id"] != direct["id"] {
		t.Errorf("second direct thread %v, want %v", again["id"], direct["id"])
	}
	if r := sched.Do("POST", "/api/v1/threads", map[string]any{"kind": "direct", "member_ids": []any{ben.User.ID}}); r.Status != 403 {
		t.Errorf("a scheduler starting a thread: %d %s", r.Status, r.Body)
	}

	pt := ana.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "patient_ref": "Patient/123", "member_ids": []any{ben.User.ID}})
	base := "/api/v1/threads/" + pt["id"].(string)

	// Bad input is answered with the field, and writes nothing.
	for _, tc := range []struct {
		path   string
		body   any
		status int
		field  string
	}{
		{base + "/messages", map[string]any{"text": ""}, 422, "text"},
		{base + "/messages", map[string]any{"text": strings.Repeat("x", inbox.MaxTextLength+1)}, 422, "text"},
		{base + "/messages", map[string]any{"text": "x", "priority": "soon"}, 422, "priority"},
		{base + "/messages", `{"text": "x", "colour": "red"}`, 400, "colour"},
		{base + "/messages", map[string]any{"text": "x", "reply_to": uuid.New()}, 422, "reply_to"},
		{"/api/v1/threads", map[string]any{"kind": "patient", "patient_ref": "123"}, 422, "patient_ref"},
		{"/api/v1/threads", map[string]any{"kind": "group"}, 422, "name"},
		{base + "/read", map[string]any{}, 422, "message_id"},
	} {
		if r := ana.Do("POST", tc.path, tc.body); r.Status != tc.status || r.Field() != tc.field {
			t.Errorf("POST %s %v: %d %s, want %d on %s", tc.path, tc.body, r.Status, r.Body, tc.status, tc.field)
		}
	}
	var n int
	in.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&n) //nolint:errcheck
	if n != 0 {
		t.Fatalf("rejected input wrote %d messages", n)
	}

	// Posting: the text is sealed at rest and never logged.
	const secret = "Jane Doe K+ 6.8, repeat draw?"
	m := ana.Must(201, "POST", base+"/messages", map[string]any{"text": secret, "priority": "stat"})
	mid := m["id"].(string)
	var body []byte
	var keyID uuid.UUID
	if err := in.DB.Pool.QueryRow(ctx, `SELECT body, key_id FROM message_versions WHERE message_id = $1`, mid).Scan(&body, &keyID); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte(secret)) || bytes.Contains(body, []byte("Jane Doe")) {
		t.Fatal("SELECT body FROM message_versions shows the plaintext")
	}
	if keyID != in.Server.Keys.ActiveKeyID() {
		t.Errorf("sealed under %v, want the keyring's active key %v", keyID, in.Server.Keys.ActiveKeyID())
	}
	msgs := inboxList(t, ben.Must(200, "GET", base+"/messages?limit=10", nil), "messages")
	if len(msgs) != 1 || msgs[0]["text"] != secret || msgs[0]["priority"] != "stat" {
		t.Fatalf("ben reads %v", msgs)
	}

	// Outsiders are refused, and the refusal names the patient in the trail.
	for _, path := range []string{base, base + "/messages", base + "/messages/" + mid, base + "/attachments"} {
		if r := dan.Do("GET", path, nil); r.Status != 403 {
			t.Errorf("outsider GET %s: %d %s", path, r.Status, r.Body)
		}
	}
	if r := dan.Do("POST", base+"/messages", map[string]any{"text": "hi"}); r.Status != 403 {
		t.Errorf("outsider posting: %d", r.Status)
	}
	refused, err := audit.List(ctx, in.DB.Pool, audit.Filter{ActorID: &dan.User.ID, PatientRef: "Patient/123"})
	if err != nil || len(refused) != 5 {
		t.Errorf("%d audited refusals naming the patient (%v), want 5", len(refused), err)
	}
	for _, ev := range refused {
		if ev.Outcome != audit.Denied {
			t.Errorf("refusal %s recorded as %s", ev.Action, ev.Outcome)
		}
	}

	// Edits keep versions; only auditors and administrators read them.
	edited := ana.Must(200, "PATCH", base+"/messages/"+mid, map[string]any{"text": "K+ 6.8, repeat drawn"})
	if edited["version"] != float64(2) || edited["text"] != "K+ 6.8, repeat drawn" {
		t.Errorf("edited %v", edited)
	}
	if r := ben.Do("PATCH", base+"/messages/"+mid, map[string]any{"text": "mine now"}); r.Status != 403 {
		t.Errorf("editing another's message: %d", r.Status)
	}
	for _, who := range []*apitest.Client{aud, admin} {
		h := who.Must(200, "GET", base+"/messages/"+mid+"/versions", nil)
		if vs := inboxList(t, h, "versions"); len(vs) != 2 || vs[0]["text"] != secret {
			t.Errorf("%s reads versions %v", who.User.Name, vs)
		}
	}
	if r := ben.Do("GET", base+"/messages/"+mid+"/versions", nil); r.Status != 403 {
		t.Errorf("a member reading versions: %d", r.Status)
	}

	// Receipts and acknowledgements.
	th := ben.Must(200, "POST", base+"/read", map[string]any{"message_id": mid})
	if rb, _ := th["read_by"].(map[string]any); th["unread"] != float64(0) || rb["count"] != float64(1) || rb["of"] != float64(1) {
		t.Errorf("after reading: %v", th)
	}
	huddle := ana.Must(201, "POST", base+"/messages", map[string]any{"text": "Huddle at 15:00", "ack_required": true})
	acked := ben.Must(200, "POST", base+"/messages/"+huddle["id"].(string)+"/acknowledge", nil)
	if ab, _ := acked["acknowledged_by"].(map[string]any); ab["count"] != float64(1) {
		t.Errorf("acknowledged %v", acked)
	}
	if r := ana.Do("POST", base+"/messages/"+mid+"/acknowledge", nil); r.Status != 409 {
		t.Errorf("acknowledging a message that does not ask: %d", r.Status)
	}

	// Recall: author or admin; members no longer see the text.
	if r := ben.Do("POST", base+"/messages/"+mid+"/recall", nil); r.Status != 403 {
		t.Errorf("recall by another member: %d", r.Status)
	}
	ana.Must(200, "POST", base+"/messages/"+mid+"/recall", nil)
	if got := ben.Must(200, "GET", base+"/messages/"+mid, nil); got["recalled"] != true || got["text"] != nil {
		t.Errorf("recalled message as ben sees it: %v", got)
	}
	if h := aud.Must(200, "GET", base+"/messages/"+mid+"/versions", nil); len(inboxList(t, h, "versions")) != 2 {
		t.Error("recall lost versions")
	}

	// Attachments: the type is judged from the bytes; size and type limits.
	png := append([]byte("\x89PNG\r\n\x1a\n"), []byte("pixels of a wound")...)
	resp, b := inboxRaw(t, ana, "POST", base+"/attachments?filename="+url.QueryEscape("wound bed 12.png"), "image/jpeg", png)
	if resp.StatusCode != 201 || !strings.Contains(string(b), `"content_type":"image/png"`) {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	aid := strings.Split(strings.Split(string(b), `"id":"`)[1], `"`)[0]
	if resp, b := inboxRaw(t, ana, "POST", base+"/attachments?filename=x.png", "image/png", []byte("not a picture at all")); resp.StatusCode != 422 {
		t.Errorf("a text file named .png: %d %s", resp.StatusCode, b)
	}
	if resp, _ := inboxRaw(t, ana, "POST", base+"/attachments", "image/png", append(bytes.Clone(png), make([]byte, inbox.MaxAttachmentBytes)...)); resp.StatusCode != 413 {
		t.Errorf("over 20 MiB: %d", resp.StatusCode)
	}
	ana.Must(201, "POST", base+"/messages", map[string]any{"text": "photo attached", "attachment_ids": []any{aid}})
	resp, b = inboxRaw(t, ben, "GET", base+"/attachments/"+aid, "", nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, png) || resp.Header.Get("Content-Type") != "image/png" ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") || !strings.Contains(resp.Header.Get("Content-Disposition"), "wound bed 12.png") {
		t.Errorf("download: %d %v %q", resp.StatusCode, resp.Header, b)
	}
	if got := inboxList(t, ben.Must(200, "GET", base+"/attachments", nil), "attachments"); len(got) != 1 {
		t.Errorf("listed attachments %v", got)
	}
	if resp, _ := inboxRaw(t, dan, "GET", base+"/attachments/"+aid, "", nil); resp.StatusCode != 403 {
		t.Errorf("outsider download: %d", resp.StatusCode)
	}

	// The chart view, by FHIR reference or identifier, escaped in the path.
	if got := inboxList(t, ben.Must(200, "GET", "/api/v1/patients/Patient%2F123/threads", nil), "threads"); len(got) != 1 || got[0]["id"] != pt["id"] {
		t.Errorf("chart view: %v", got)
	}
	if got := inboxList(t, ben.Must(200, "GET", "/api/v1/patients/"+url.PathEscape("urn:oid:1.2.3|MRN42")+"/threads", nil), "threads"); len(got) != 0 {
		t.Errorf("chart view of another patient: %v", got)
	}
	if r := ben.Do("GET", "/api/v1/patients/123/threads", nil); r.Status != 422 || r.Field() != "ref" {
		t.Errorf("a bare id: %d %s", r.Status, r.Body)
	}
	if evs, _ := audit.List(ctx, in.DB.Pool, audit.Filter{ActorID: &ben.User.ID, Action: "thread.list", PatientRef: "Patient/123"}); len(evs) != 1 {
		t.Errorf("chart view audited %d times, want 1", len(evs))
	}

	// Membership.
	if th := ana.Must(200, "POST", base+"/members", map[string]any{"user_ids": []any{dan.User.ID}}); len(th["members"].([]any)) != 3 {
		t.Errorf("after adding dan: %v", th["members"])
	}
	dan.Must(200, "GET", base, nil)
	if r := ana.Do("POST", base+"/members", map[string]any{"user_ids": []any{sched.User.ID}}); r.Status != 422 || r.Field() != "user_ids" {
		t.Errorf("adding a scheduler: %d %s", r.Status, r.Body)
	}
	ana.Must(204, "DELETE", base+"/members/"+dan.User.ID.String(), nil)
	if r := dan.Do("GET", base+"/messages", nil); r.Status != 403 {
		t.Errorf("a removed member reading: %d", r.Status)
	}
	if got := inboxList(t, ana.Must(200, "GET", "/api/v1/threads?kind=direct", nil), "threads"); len(got) != 1 {
		t.Errorf("ana's direct threads: %v", got)
	}

	// Administration: legal hold and retention.
	if r := ana.Do("POST", base+"/legal-hold", map[string]any{"legal_hold": true}); r.Status != 403 {
		t.Errorf("a physician placing a hold: %d", r.Status)
	}
	if th := admin.Must(200, "POST", base+"/legal-hold", map[string]any{"legal_hold": true}); th["legal_hold"] != true {
		t.Errorf("hold: %v", th)
	}
	if p := admin.Must(200, "PUT", "/api/v1/retention-policies/direct", map[string]any{"days": 30}); p["days"] != float64(30) {
		t.Errorf("policy: %v", p)
	}
	if r := ana.Do("PUT", "/api/v1/retention-policies/direct", map[string]any{"days": 1}); r.Status != 403 {
		t.Errorf("a physician setting retention: %d", r.Status)
	}
	if r := admin.Do("PUT", "/api/v1/retention-policies/forever", map[string]any{"days": 1}); r.Status != 422 || r.Field() != "kind" {
		t.Errorf("unknown kind: %d %s", r.Status, r.Body)
	}

	// Events tell members what changed, by id only; nothing is logged in clear.
	evs, err := events.Since(ctx, in.DB.Pool, ben.User.ID, 0, events.MaxBatch)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	for _, ev := range evs {
		types[ev.Type]++
		if bytes.Contains(ev.Data, []byte("Jane")) || bytes.Contains(ev.Data, []byte("wound")) {
			t.Errorf("event %s carries text: %s", ev.Type, ev.Data)
		}
	}
	for _, typ := range []string{"message.created", "message.updated", "receipt.updated", "thread.updated"} {
		if types[typ] == 0 {
			t.Errorf("ben heard no %s: %v", typ, types)
		}
	}
	for _, leak := range []string{"Jane Doe", "repeat draw", "wound bed 12"} {
		if strings.Contains(in.LogText(), leak) {
			t.Errorf("the log contains %q", leak)
		}
	}
}

// TestPageIsFiledInThePatientsThread needs the page → thread hook: the
// escalation package files a page about a patient with inbox.Store.PostPage
// in the page's transaction, and lets members of that thread acknowledge the
// page (inbox.PageThreadMember).
func TestPageIsFiledInThePatientsThread(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	nina := in.User("Nina RN", "nurse")
	ana := in.User("Dr Ana Cruz", "physician")
	cat := in.User("Cat RN", "nurse")
	team := ana.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "patient_ref": "Patient/123",
		"member_ids": []any{cat.User.ID}})
	base := "/api/v1/threads/" + team["id"].(string)
	page := nina.Must(201, "POST", "/api/v1/pages", map[string]any{"user_id": ana.User.ID, "priority": "stat",
		"summary": "chest pain bed 4", "patient_ref": "Patient/123"})

	var filed map[string]any
	for _, m := range inboxList(t, cat.Must(200, "GET", base+"/messages", nil), "messages") {
		if m["page_id"] == page["id"] {
			filed = m
		}
	}
	if filed == nil {
		t.Fatal("the page was not filed in the patient's thread: escalation must call inbox.Store.PostPage in the page's transaction")
	}
	if filed["system"] != true || filed["text"] != "chest pain bed 4" || filed["priority"] != "stat" {
		t.Errorf("filed as %v", filed)
	}
	th := cat.Must(200, "GET", base, nil)
	if len(th["members"].([]any)) != 3 {
		t.Errorf("the page's sender and recipient did not join: %v", th["members"])
	}
	// Cat was not paged, but she is on the patient's thread: she takes it from there.
	ack := cat.Must(200, "POST", "/api/v1/pages/"+page["id"].(string)+"/acknowledge", nil)
	if ack["status"] != "acknowledged" || ack["acknowledged_by"] != cat.User.ID.String() {
		t.Errorf("acknowledged from the thread: %v", ack)
	}
}
