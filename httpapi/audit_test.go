package httpapi_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/apitest"
)

// auditEntries returns the AuditEvent resources of a searchset Bundle.
func auditEntries(t *testing.T, b map[string]any) []map[string]any {
	t.Helper()
	if b["resourceType"] != "Bundle" || b["type"] != "searchset" {
		t.Fatalf("not a searchset Bundle: %v", b)
	}
	var out []map[string]any
	for _, e := range inboxList(t, b, "entry") {
		res := e["resource"].(map[string]any)
		if res["resourceType"] != "AuditEvent" {
			t.Fatalf("entry is %v, want AuditEvent", res["resourceType"])
		}
		out = append(out, res)
	}
	return out
}

func subtypeOf(ev map[string]any) string {
	for _, c := range ev["subtype"].([]any) {
		if c := c.(map[string]any); c["system"] == "urn:callroom:audit-action" {
			return c["code"].(string)
		}
	}
	return ""
}

func TestAuditExportsFHIRAuditEvents(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	ana := in.User("Dr Ana Cruz", "physician")
	ben := in.User("Ben Ruiz RN", "nurse")
	aud := in.User("Avi Auditor", "auditor")
	start := time.Now().Add(-time.Second).UTC()

	th := ana.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "name": "Bed 12",
		"patient_ref": "Patient/p-audit-1", "member_ids": []string{ben.User.ID.String()}})
	id := th["id"].(string)
	ben.Must(200, "GET", "/api/v1/threads/"+id, nil)
	other := in.User("Olga Outsider RN", "nurse")
	if r := other.Do("GET", "/api/v1/threads/"+id, nil); r.Status != 403 {
		t.Fatalf("outsider: %d", r.Status)
	}

	// Nurses and physicians may not read the trail; the refusal is audited.
	if r := ben.Do("GET", "/api/v1/audit", nil); r.Status != 403 {
		t.Fatalf("nurse reading the audit trail: %d, want 403", r.Status)
	}

	q := url.Values{"patient": {"Patient/p-audit-1"}, "date": {"ge" + start.Format(time.RFC3339Nano)}}
	r := aud.Do("GET", "/api/v1/audit?"+q.Encode(), nil)
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/fhir+json") {
		t.Fatalf("search: %d %s %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	evs := auditEntries(t, r.JSON)
	var actions []string
	for _, ev := range evs {
		actions = append(actions, subtypeOf(ev))
	}
	if strings.Join(actions, ",") != "thread.create,thread.read,thread.read" {
		t.Fatalf("patient's events %v, want create, read, refused read", actions)
	}
	read, refused := evs[1], evs[2]
	if read["action"] != "R" || read["outcome"] != "0" || refused["outcome"] != "4" || refused["outcomeDesc"] == nil {
		t.Errorf("read %v / refused %v", read, refused)
	}
	if p := read["meta"].(map[string]any)["profile"].([]any)[0]; p != "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead" {
		t.Errorf("profile %v", p)
	}
	agent := read["agent"].([]any)[0].(map[string]any)
	who := agent["who"].(map[string]any)["identifier"].(map[string]any)
	if who["value"] != ben.User.ID.String() || agent["requestor"] != true {
		t.Errorf("agent %v, want Ben as requestor", agent)
	}
	ent := read["entity"].([]any)[0].(map[string]any)
	if ent["what"].(map[string]any)["reference"] != "Patient/p-audit-1" || ent["role"].(map[string]any)["code"] != "1" {
		t.Errorf("patient entity %v", ent)
	}

	// Filters: agent, subtype, action code; paging with _count and next.
	q = url.Values{"agent": {ben.User.ID.String()}, "action": {"R"}, "date": {"ge" + start.Format(time.RFC3339Nano)}}
	evs = auditEntries(t, aud.Must(200, "GET", "/api/v1/audit?"+q.Encode(), nil))
	if len(evs) != 1 || subtypeOf(evs[0]) != "thread.read" {
		t.Errorf("agent+action filter: %d events", len(evs))
	}
	q = url.Values{"subtype": {"access.denied"}, "agent": {ben.User.ID.String()}}
	if evs := auditEntries(t, aud.Must(200, "GET", "/api/v1/audit?"+q.Encode(), nil)); len(evs) != 1 {
		t.Errorf("the nurse's refused audit read: %d events, want 1", len(evs))
	}
	q = url.Values{"patient": {"Patient/p-audit-1"}, "_count": {"2"}}
	b := aud.Must(200, "GET", "/api/v1/audit?"+q.Encode(), nil)
	var next string
	for _, l := range inboxList(t, b, "link") {
		if l["relation"] == "next" {
			next = l["url"].(string)
		}
	}
	if len(auditEntries(t, b)) != 2 || !strings.HasPrefix(next, in.URL) {
		t.Fatalf("first page: next %q", next)
	}
	page2 := auditEntries(t, aud.Must(200, "GET", strings.TrimPrefix(next, in.URL), nil))
	if len(page2) < 1 || page2[0]["id"] == auditEntries(t, b)[1]["id"] {
		t.Errorf("second page %v", page2)
	}

	// Searching is itself audited with the patient asked about.
	q = url.Values{"subtype": {"audit.search"}, "patient": {"Patient/p-audit-1"}}
	if evs := auditEntries(t, aud.Must(200, "GET", "/api/v1/audit?"+q.Encode(), nil)); len(evs) < 3 {
		t.Errorf("audit searches about the patient: %d, want them audited", len(evs))
	}

	for _, tc := range []struct{ query, field string }{
		{"action=X", "action"},
		{"date=2026-01-01", "date"},
		{"_count=0", "_count"},
		{"agent=nobody", "agent"},
		{"user=x", "user"},
	} {
		if r := aud.Do("GET", "/api/v1/audit?"+tc.query, nil); (r.Status != 422 && r.Status != 400) || r.Field() != tc.field {
			t.Errorf("%s: %d field %q, want the field named", tc.query, r.Status, r.Field())
		}
	}
}
