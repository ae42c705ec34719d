package httpapi_test

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/apitest"
)

// TestPatientNames: a thread opened under the MRN and one opened under the
// FHIR id are the same patient's once the identifier is linked, for the
// chart view, emergency access and the patient's access report; until then,
// and after the EHR moves the identifier to another patient, they are not.
func TestPatientNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	in := apitest.Start(t, apitest.Options{})
	ana := in.User("Dr Ana Cruz", "physician")
	ben := in.User("Ben Ruiz RN", "nurse")
	dan := in.User("Dan Outsider RN", "nurse")
	aud := in.User("Avi Auditor", "auditor")
	admin := in.User("Ada Admin", "admin")

	const fhirID, mrn = "Patient/p1", "urn:oid:1.2.3|MRN7"
	chart := func(c *apitest.Client, ref string) []string {
		t.Helper()
		var ids []string
		for _, th := range inboxList(t, c.Must(200, "GET", "/api/v1/patients/"+url.PathEscape(ref)+"/threads", nil), "threads") {
			ids = append(ids, th["id"].(string))
		}
		slices.Sort(ids)
		return ids
	}
	byID := ana.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "patient_ref": fhirID, "member_ids": []any{ben.User.ID}})["id"].(string)
	byMRN := ana.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "patient_ref": mrn, "member_ids": []any{ben.User.ID}})["id"].(string)
	both := []string{byID, byMRN}
	slices.Sort(both)

	if got := chart(ben, fhirID); !slices.Equal(got, []string{byID}) {
		t.Fatalf("before linking, the chart of %s shows %v", fhirID, got)
	}
	if got := chart(ben, mrn); !slices.Equal(got, []string{byMRN}) {
		t.Fatalf("before linking, the chart of the MRN shows %v", got)
	}

	base := "/api/v1/patients/" + url.PathEscape(fhirID) + "/identifiers"
	for _, tc := range []struct {
		name, path string
		body       any
		field      string
	}{
		{"an identifier as the patient", "/api/v1/patients/" + url.PathEscape(mrn) + "/identifiers", map[string]any{"identifiers": []any{"urn:oid:1.2.3|X"}}, "ref"},
		{"no separator", base, map[string]any{"identifiers": []any{"MRN7"}}, "identifiers[0]"},
		{"a space", base, map[string]any{"identifiers": []any{mrn, "urn:x|a b"}}, "identifiers[1]"},
		{"none", base, map[string]any{"identifiers": []any{}}, "identifiers"},
	} {
		if r := admin.Do("POST", tc.path, tc.body); r.Status != 422 || r.Field() != tc.field {
			t.Errorf("%s: %d %s, want 422 naming %s", tc.name, r.Status, r.Body, tc.field)
		}
	}
	if got := chart(ben, fhirID); len(got) != 1 {
		t.Fatalf("a refused link linked something: %v", got)
	}
	if r := ben.Do("POST", base, map[string]any{"identifiers": []any{mrn}}); r.Status != 403 {
		t.Errorf("a nurse linking: %d", r.Status)
	}

	got := admin.Must(200, "POST", base, map[string]any{"identifiers": []any{mrn, mrn}})
	if got["patient_ref"] != fhirID || len(got["identifiers"].([]any)) != 1 || got["identifiers"].([]any)[0] != mrn {
		t.Fatalf("link answered %v", got)
	}
	if again := admin.Must(200, "GET", "/api/v1/patients/"+url.PathEscape(mrn)+"/identifiers", nil); again["patient_ref"] != fhirID {
		t.Errorf("the MRN's names: %v", again)
	}
	for _, ref := range []string{fhirID, mrn} {
		if got := chart(ben, ref); !slices.Equal(got, both) {
			t.Errorf("after linking, the chart of %s shows %v, want both threads", ref, got)
		}
	}

	// Emergency access granted under the FHIR id opens the thread kept
	// under the MRN.
	if r := dan.Do("GET", "/api/v1/threads/"+byMRN+"/messages", nil); r.Status != 403 {
		t.Fatalf("an outsider without emergency access: %d", r.Status)
	}
	dan.Must(201, "POST", "/api/v1/emergency-access", map[string]any{"patient_ref": fhirID, "reason": "rapid response, patient unresponsive"})
	if r := dan.Do("GET", "/api/v1/threads/"+byMRN+"/messages", nil); r.Status != 200 {
		t.Errorf("emergency access under the FHIR id, reading the MRN's thread: %d %s", r.Status, r.Body)
	}

	// The patient's access report asked by FHIR id shows reads made under the MRN.
	report := aud.Must(200, "GET", "/api/v1/audit?patient="+url.QueryEscape(fhirID)+"&_count=1000", nil)
	if b, _ := json.Marshal(report["entry"]); !strings.Contains(string(b), "MRN7") {
		t.Error("the access report of the FHIR id does not show the reads under the MRN")
	}
	if evs, _ := audit.List(ctx, in.DB.Pool, audit.Filter{Action: "patient.link", PatientRef: fhirID}); len(evs) != 1 {
		t.Errorf("%d link events, want 1 (the duplicate and refused links record none)", len(evs))
	}

	// The EHR moves the MRN to another patient: the charts part again.
	admin.Must(200, "POST", "/api/v1/patients/"+url.PathEscape("Patient/p2")+"/identifiers", map[string]any{"identifiers": []any{mrn}})
	if got := chart(ben, fhirID); !slices.Equal(got, []string{byID}) {
		t.Errorf("after the move, the chart of %s shows %v", fhirID, got)
	}
	if got := chart(ben, "Patient/p2"); !slices.Equal(got, []string{byMRN}) {
		t.Errorf("after the move, the chart of Patient/p2 shows %v", got)
	}
}
