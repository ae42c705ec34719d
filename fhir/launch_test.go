package fhir_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/fhirtest"
)

// SMART on FHIR EHR launch against the engine's authorization server: the
// clinician opens callroom from the chart, is signed in and lands in the
// patient's thread; a second use of the answer, a foreign iss and a
// clinician callroom does not know are refused.
func TestEHRLaunch(t *testing.T) {
	t.Parallel()
	ehr := fhirtest.Start(t)
	in := apitest.Start(t, apitest.Options{FHIR: &fhir.Config{BaseURL: ehr.URL, Launch: &fhir.Launch{ClientID: "callroom-app"}}})
	e := &env{t: t, in: in, ehr: ehr}
	drA, prA := e.clinician("Dr A", "physician", true)
	stranger := ehr.Create(map[string]any{"resourceType": "Practitioner", "active": true})
	// The patient has an MRN (nurses may have opened threads under it
	// before the FHIR id was known): the launch links it to the Patient.
	const mrn = "urn:oid:2.16.840.1.113883.3.1|MRN-4471"
	pat := "Patient/" + ehr.Create(map[string]any{"resourceType": "Patient",
		"identifier": []any{map[string]any{"system": "urn:oid:2.16.840.1.113883.3.1", "value": "MRN-4471"}}})["id"].(string)
	enc := ehr.Create(encounter(pat, "in-progress", "IMP"))
	ehr.Control("launch", map[string]any{"launch": "L1", "patient": strings.TrimPrefix(pat, "Patient/"), "encounter": enc["id"], "fhirUser": prA})
	ehr.Control("launch", map[string]any{"launch": "L2", "patient": strings.TrimPrefix(pat, "Patient/"), "fhirUser": "Practitioner/" + stranger["id"].(string)})

	// A browser: it keeps cookies (the launch's state rides in one).
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) *http.Response {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	launch := func(l string) (callback string) {
		t.Helper()
		r := get(in.URL + "/smart/launch?" + url.Values{"iss": {ehr.URL}, "launch": {l}}.Encode())
		if r.StatusCode != 302 || !strings.HasPrefix(r.Header.Get("Location"), ehr.URL+"/oauth2/authorize?") {
			t.Fatalf("launch: %d to %q", r.StatusCode, r.Header.Get("Location"))
		}
		r = get(r.Header.Get("Location"))
		if r.StatusCode != 302 || !strings.HasPrefix(r.Header.Get("Location"), in.URL+"/smart/callback?") {
			t.Fatalf("authorize: %d to %q", r.StatusCode, r.Header.Get("Location"))
		}
		return r.Header.Get("Location")
	}

	// The clinician lands in the patient's chart view, signed in, and is a
	// member of the encounter's thread.
	cb := launch("L1")
	r := get(cb)
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("callback: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	var cookie *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == "callroom_session" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly {
		t.Fatal("no session cookie")
	}
	id, _, members := e.threadOf(pat, "Encounter/"+enc["id"].(string))
	if !sameMembers(members, drA.User.ID) {
		t.Fatalf("thread %s members %v", id, members)
	}
	req, _ := http.NewRequest("GET", in.URL+"/api/v1/patients/"+url.PathEscape(mrn)+"/threads", nil)
	req.AddCookie(cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), id.String()) {
		t.Fatalf("the launched clinician's chart, asked by MRN: %d %s", resp.StatusCode, body)
	}

	var linked string
	in.DB.Pool.QueryRow(context.Background(), `SELECT patient_ref FROM patient_identifiers WHERE identifier = $1`, mrn).Scan(&linked) //nolint:errcheck
	if linked != pat {
		t.Errorf("after the launch, the MRN is linked to %q, want %s", linked, pat)
	}

	if r := get(cb); r.StatusCode != 400 {
		t.Errorf("the same answer twice: %d, want 400", r.StatusCode)
	}
	if r := get(in.URL + "/smart/launch?" + url.Values{"iss": {"https://evil.example/fhir"}, "launch": {"L1"}}.Encode()); r.StatusCode != 403 {
		t.Errorf("a foreign iss: %d, want 403", r.StatusCode)
	}
	if r := get(launch("L2")); r.StatusCode != 403 {
		t.Errorf("an unknown clinician: %d, want 403", r.StatusCode)
	}
	var denied int
	in.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = 'fhir.launch' AND outcome = 'denied'`).Scan(&denied) //nolint:errcheck
	if denied != 1 {
		t.Errorf("%d refused launches audited, want 1", denied)
	}
}
