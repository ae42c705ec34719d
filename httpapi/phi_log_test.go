package httpapi_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/callroom/callroom/internal/apitest"
)

// TestNoPHIInLogs runs a page-and-message scenario about a patient with a
// Synthea-style name, identifier and results, including requests that fail,
// then reads everything the instance logged: none of it may appear
// (HIPAA 164.312(e); PHI stays out of logs).
func TestNoPHIInLogs(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	nurse := in.User("Nina Nurse", "nurse")
	doc := in.User("Dr Ana Cruz", "physician")
	const (
		given, family = "Mariela193", "Gutiérrez434"
		mrn           = "MRN-99231884"
		patientID     = "5f1e2d9a-synthea-ref"
	)
	phi := []string{given, family, "Gutie", mrn, patientID, "potassium 6.9"}
	patient := "Patient/" + patientID

	p := nurse.Must(201, "POST", "/api/v1/pages", map[string]any{"user_id": doc.User.ID, "priority": "stat",
		"summary": "Bed 12 " + given + " " + family + " potassium 6.9", "body": mrn + ": repeat potassium 6.9, on telemetry",
		"patient_ref": patient})
	pageID := p["id"].(string)
	doc.Must(200, "GET", "/api/v1/pages/"+pageID, nil)
	doc.Must(200, "POST", "/api/v1/pages/"+pageID+"/acknowledge", nil)
	th := nurse.Do("POST", "/api/v1/threads", map[string]any{"kind": "patient", "patient_ref": patient,
		"member_ids": []any{doc.User.ID}})
	if th.Status != 200 && th.Status != 201 {
		t.Fatalf("patient thread: %d %s", th.Status, th.Body)
	}
	thread := th.JSON["id"].(string)
	nurse.Must(201, "POST", "/api/v1/threads/"+thread+"/messages", map[string]any{"text": given + " " + family + " (" + mrn + ") potassium 6.9 again"})
	doc.Must(200, "GET", "/api/v1/threads/"+thread+"/messages", nil)
	doc.Must(200, "GET", "/api/v1/patients/"+url.PathEscape(patient)+"/threads", nil)

	// Failures: bad input carrying PHI, an unknown route with PHI in the
	// path and query, a body that is not JSON.
	if r := nurse.Do("POST", "/api/v1/pages", map[string]any{"user_id": doc.User.ID, "priority": "stat",
		"summary": given + " " + family, "patient_ref": "Patient/" + given + " " + family}); r.Status != 422 {
		t.Errorf("bad patient_ref: %d", r.Status)
	}
	if r := nurse.Do("GET", "/api/v1/nowhere/"+url.PathEscape(mrn)+"?name="+url.QueryEscape(family), nil); r.Status != 404 {
		t.Errorf("unknown route: %d", r.Status)
	}
	if r := nurse.Do("POST", "/api/v1/threads/"+thread+"/messages", `{"text": "`+given+` `); r.Status != 400 {
		t.Errorf("truncated JSON: %d", r.Status)
	}
	if r := nurse.Do("POST", "/api/v1/threads/"+thread+"/messages", map[string]any{"text": given, "bogus_" + family: 1}); r.Status != 400 {
		t.Errorf("unknown field: %d", r.Status)
	}

	logs := in.LogText()
	if !strings.Contains(logs, `"route"`) {
		t.Fatalf("nothing was logged; the test would prove nothing: %q", logs)
	}
	for _, s := range phi {
		if strings.Contains(logs, s) {
			i := strings.Index(logs, s)
			t.Errorf("the log holds %q: …%s…", s, logs[max(0, i-200):min(len(logs), i+100)])
		}
	}
}
