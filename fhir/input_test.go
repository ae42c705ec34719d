package fhir_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/callroom/callroom/fhir"
)

func sign(body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// post sends a notification to callroom and returns the status and the
// OperationOutcome's first issue code.
func post(t *testing.T, method, url string, body []byte, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/fhir+json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Code string `json:"code"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(data, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("%s %s: %d answered %q, want an OperationOutcome", method, url, resp.StatusCode, data)
	}
	return resp.StatusCode, oo.Issue[0].Code
}

// Bad notifications are refused with an OperationOutcome and leave nothing
// behind; a bad signature or secret is audited; a duplicate is recorded once.
func TestBadNotifications(t *testing.T) {
	t.Parallel()
	e := start(t,
		fhir.Subscription{Name: "mp", Flavor: fhir.Medplum, Criteria: "Encounter", Secret: secret},
		fhir.Subscription{Name: "rh", Flavor: fhir.RestHookPayload, Criteria: "Encounter", Secret: secret},
		fhir.Subscription{Name: "bp", Flavor: fhir.Backport, Criteria: "Encounter", Topic: "http://callroom.example/t", Secret: secret})
	mp, rh, bp := e.in.URL+"/fhir/hooks/mp", e.in.URL+"/fhir/hooks/rh", e.in.URL+"/fhir/hooks/bp"
	enc, _ := json.Marshal(encounter("Patient/p1", "in-progress", "IMP"))
	enc = bytes.Replace(enc, []byte(`{`), []byte(`{"id":"e1",`), 1)
	big := append([]byte(`{"resourceType":"Encounter","id":"e1","status":"planned","text":{"div":"`), bytes.Repeat([]byte("x"), 5<<20)...)
	big = append(big, `"}}`...)
	signed := func(b []byte) []string { return []string{"X-Signature", sign(b)} }
	cases := []struct {
		name, method, url string
		body              []byte
		header            []string
		status            int
		code              string
	}{
		{"bad signature", "POST", mp, enc, []string{"X-Signature", sign([]byte("other"))}, 401, "security"},
		{"no signature", "POST", mp, enc, nil, 401, "security"},
		{"wrong secret", "PUT", rh + "/Encounter/e1", enc, []string{"X-Callroom-Secret", "wrong-secret-0123456789"}, 401, "security"},
		{"malformed JSON", "POST", mp, []byte(`{"resourceType":`), signed([]byte(`{"resourceType":`)), 400, "structure"},
		{"unknown resourceType", "POST", mp, []byte(`{"resourceType":"Spaceship","id":"1"}`), signed([]byte(`{"resourceType":"Spaceship","id":"1"}`)), 422, "not-supported"},
		{"another type than subscribed", "POST", mp, []byte(`{"resourceType":"Patient","id":"1"}`), signed([]byte(`{"resourceType":"Patient","id":"1"}`)), 422, "not-supported"},
		{"encounter without status", "POST", mp, []byte(`{"resourceType":"Encounter","id":"1","class":{"code":"IMP"}}`), signed([]byte(`{"resourceType":"Encounter","id":"1","class":{"code":"IMP"}}`)), 422, "required"},
		{"URL and body disagree", "PUT", rh + "/Encounter/other", enc, []string{"X-Callroom-Secret", secret}, 422, "invalid"},
		{"bundle of the wrong type", "POST", bp, []byte(`{"resourceType":"Bundle","type":"searchset"}`), []string{"X-Callroom-Secret", secret}, 422, "invalid"},
		{"bundle without status", "POST", bp, []byte(`{"resourceType":"Bundle","type":"history","entry":[{"resource":{"resourceType":"Encounter","id":"1","status":"planned"}}]}`), []string{"X-Callroom-Secret", secret}, 422, "invalid"},
		{"over 5 MiB", "POST", mp, big, signed(big), 413, "too-long"},
		{"unknown subscription", "POST", e.in.URL + "/fhir/hooks/nope", enc, signed(enc), 404, "not-found"},
	}
	for _, c := range cases {
		status, code := post(t, c.method, c.url, c.body, c.header...)
		if status != c.status || code != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, code, c.status, c.code)
		}
	}
	ctx := context.Background()
	var n, denied int
	e.in.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM fhir_notifications`).Scan(&n)                                                          //nolint:errcheck
	e.in.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'fhir.notification' AND outcome = 'denied'`).Scan(&denied) //nolint:errcheck
	if n != 0 || denied != 3 {
		t.Fatalf("%d notifications recorded, %d refusals audited; want 0 and 3", n, denied)
	}
	if strings.Contains(e.in.LogText(), "Patient/p1") {
		t.Error("a patient reference was logged")
	}

	// The same notification twice: one record, one job.
	for i := 0; i < 2; i++ {
		if status, _ := post(t, "POST", mp, enc, signed(enc)...); status != 200 {
			t.Fatalf("valid notification answered %d", status)
		}
	}
	var jobs int
	e.in.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM fhir_notifications`).Scan(&n)                       //nolint:errcheck
	e.in.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'fhir.process'`).Scan(&jobs) //nolint:errcheck
	if n != 1 || jobs != 1 {
		t.Fatalf("a duplicate made %d notifications and %d jobs, want 1 and 1", n, jobs)
	}
}
