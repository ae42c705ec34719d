package httpapi_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/apitest"
)

// TestPHINeverLogged runs a whole page-and-message scenario about two
// patients with Synthea-generated names and identifiers, including refused
// and malformed requests that carry them, then searches everything the
// instance logged, and every error answer, for any of them (HIPAA
// 164.312(b) audit without disclosure; the house rule: PHI never in logs).
func TestPHINeverLogged(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	// Synthea's names carry digits, so a hit cannot be a coincidence.
	phi := []string{"Aaron697", "Brekke496", "Jacinta40", "Ortiz186", "MRN-4481516", "synthea-7f3c9d21",
		"999-41-7731", "potassium 6.1", "left flank wound"}
	aaron := "Patient/synthea-7f3c9d21"
	jacinta := "http://hospital.smarthealthit.org|MRN-4481516"

	nina := in.User("Nina Nurse RN", "nurse")
	ana := in.User("Dr Ana Cruz", "physician")
	dan := in.User("Dan Covering RN", "nurse")
	aud := in.User("Avi Auditor", "auditor")

	var answers []string // error answers, which must not echo PHI either
	expect := func(c *apitest.Client, want int, method, path string, body any) map[string]any {
		t.Helper()
		r := c.Do(method, path, body)
		if r.Status != want {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, r.Status, want, r.Body)
		}
		if r.Status >= 400 {
			answers = append(answers, string(r.Body))
		}
		return r.JSON
	}

	// A thread per patient, named as wards do, with messages.
	th := expect(ana, 201, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "name": "Aaron697 Brekke496 bed 4",
		"patient_ref": aaron, "member_ids": []string{nina.User.ID.String()}})
	base := "/api/v1/threads/" + th["id"].(string)
	m := expect(nina, 201, "POST", base+"/messages", map[string]any{"text": "Aaron697 Brekke496 potassium 6.1, SSN 999-41-7731", "priority": "urgent"})
	expect(ana, 200, "GET", base+"/messages", nil)
	expect(nina, 200, "PATCH", base+"/messages/"+m["id"].(string), map[string]any{"text": "Aaron697 Brekke496 potassium 6.1 repeat"})
	expect(ana, 200, "POST", base+"/read", map[string]any{"message_id": m["id"]})
	th2 := expect(nina, 201, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "name": "Jacinta40 Ortiz186",
		"patient_ref": jacinta, "member_ids": []string{ana.User.ID.String()}})
	expect(ana, 201, "POST", "/api/v1/threads/"+th2["id"].(string)+"/messages", map[string]any{"text": "Jacinta40 Ortiz186 left flank wound"})

	// A page about the patient, acknowledged.
	page := expect(nina, 201, "POST", "/api/v1/pages", map[string]any{"user_id": ana.User.ID, "priority": "stat",
		"summary": "Aaron697 Brekke496 potassium 6.1", "patient_ref": aaron})
	expect(ana, 200, "GET", "/api/v1/pages/"+page["id"].(string), nil)
	expect(ana, 200, "POST", "/api/v1/pages/"+page["id"].(string)+"/acknowledge", nil)

	// The chart view, break the glass, the audit trail: identifiers in URLs and bodies.
	expect(ana, 200, "GET", "/api/v1/patients/"+url.PathEscape(jacinta)+"/threads", nil)
	expect(dan, 201, "POST", "/api/v1/emergency-access", map[string]any{"patient_ref": aaron,
		"reason": "Aaron697 Brekke496 coding on 4 West"})
	expect(dan, 200, "GET", base+"/messages", nil)
	expect(aud, 200, "GET", "/api/v1/audit?"+url.Values{"patient": {jacinta}}.Encode(), nil)

	// Refused and malformed requests carrying PHI.
	expect(dan, 403, "GET", "/api/v1/threads/"+th2["id"].(string), nil)
	expect(dan, 403, "POST", base+"/messages", map[string]any{"text": "Aaron697 Brekke496 potassium 6.1"})
	expect(nina, 422, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "name": "x", "patient_ref": "Aaron697 Brekke496"})
	expect(nina, 422, "POST", "/api/v1/emergency-access", map[string]any{"patient_ref": "MRN-4481516 Jacinta40", "reason": "Jacinta40"})
	expect(nina, 400, "POST", "/api/v1/pages", `{"summary": "Jacinta40 Ortiz186", "patient_ref": 999417731}`)
	// An unknown field or parameter is named back to the caller who sent
	// it (that is how they learn what to fix); it must still not be logged.
	if r := nina.Do("POST", "/api/v1/threads", `{"kind": "patient", "Aaron697": "Brekke496"}`); r.Status != 400 || strings.Contains(string(r.Body), "Brekke496") {
		t.Errorf("unknown field: %d %s", r.Status, r.Body)
	}
	if r := aud.Do("GET", "/api/v1/audit?"+url.Values{"Jacinta40": {"Ortiz186"}}.Encode(), nil); r.Status != 400 || strings.Contains(string(r.Body), "Ortiz186") {
		t.Errorf("unknown parameter: %d %s", r.Status, r.Body)
	}
	expect(nina, 400, "GET", "/api/v1/threads/Aaron697-Brekke496", nil)
	expect(nina, 404, "GET", "/api/v1/patients/"+url.PathEscape(aaron)+"/nowhere", nil)

	time.Sleep(200 * time.Millisecond) // let escalation and delivery jobs log what they log
	logs := in.LogText()
	if !strings.Contains(logs, `"route":"/api/v1/threads/{id}/messages"`) {
		t.Fatal("the log does not have the request lines this test expects; is logging on?")
	}
	for _, s := range phi {
		if strings.Contains(logs, s) {
			i := strings.Index(logs, s)
			t.Errorf("the log contains %q: …%s…", s, logs[max(0, i-200):min(len(logs), i+100)])
		}
		for _, a := range answers {
			if strings.Contains(a, s) {
				t.Errorf("an error answer echoes %q: %s", s, a)
			}
		}
	}
}
