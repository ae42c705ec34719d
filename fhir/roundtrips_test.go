package fhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/internal/benchutil"
	"github.com/callroom/callroom/internal/fhirtest"
)

// TestNotificationRoundTrips holds the statements an admission costs
// callroom: accepting the EHR's notification, then opening the patient's
// thread with the attending in it. Each round trip to PostgreSQL costs both
// processes a write, a read and a wake-up, which on two cores was most of
// what processing a burst cost (docs/PERFORMANCE.md).
func TestNotificationRoundTrips(t *testing.T) {
	ctx := context.Background()
	ehr := fhirtest.Start(t)
	in := benchutil.Start(t, benchutil.Options{TraceSQL: true, FHIR: &fhir.Config{BaseURL: ehr.URL, Timeout: 5 * time.Second,
		Subscriptions: []fhir.Subscription{{Name: "enc", Flavor: fhir.Medplum, Criteria: "Encounter", Secret: secret}}}})
	attending := in.User("Dr Attending", "physician")
	npi := randomNPI()
	if _, err := in.DB.Pool.Exec(ctx, `UPDATE users SET npi = $1 WHERE id = $2`, npi, attending.User.ID); err != nil {
		t.Fatal(err)
	}
	prac := ehr.Create(map[string]any{"resourceType": "Practitioner", "identifier": []any{map[string]any{"system": fhir.NPISystem, "value": npi}}})
	pracRef := "Practitioner/" + prac["id"].(string)
	client := benchutil.NewHTTPClient()
	admit := func(i int) {
		t.Helper()
		enc := encounter(fmt.Sprintf("Patient/rt-%d", i), "in-progress", "IMP", pracRef)
		enc["id"] = fmt.Sprintf("rt-%d", i)
		body, _ := json.Marshal(enc)
		req, _ := http.NewRequest("POST", in.URL+"/fhir/hooks/enc", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("X-Signature", sign(body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("notification %d: %d", i, resp.StatusCode)
		}
	}
	// Processed, with the attending in the thread, one by one.
	processed := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var done, members int
			if err := in.DB.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM fhir_notifications WHERE processed_at IS NOT NULL),
				(SELECT count(*) FROM thread_members WHERE user_id = $1 AND left_at IS NULL)`, attending.User.ID).Scan(&done, &members); err != nil {
				t.Fatal(err)
			}
			if done == n && members == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d notifications processed, attending in %d threads", done, n, members)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	admit(0) // statements prepared on the connections
	processed(1)
	const admissions = 40
	in.SQL.Reset()
	for i := 1; i <= admissions; i++ {
		admit(i)
		processed(i + 1)
	}
	// River's own statements (its pollers, fetching and completing jobs) are
	// its named queries, left out but for its inserts and their wake-up
	// notifications, which ours cause. The test's polling is left out too.
	ours := func(sql string) bool {
		switch {
		case strings.HasPrefix(sql, "-- name: JobInsertFastMany"), strings.HasPrefix(sql, "-- name: PGNotifyMany"):
			return true
		case strings.HasPrefix(sql, "-- name: "), strings.HasPrefix(sql, "SELECT (SELECT count(*) FROM fhir_notifications"):
			return false
		}
		return true
	}
	calls := in.SQL.CallsWhere(ours)
	t.Logf("%d admissions: %d round trips, %.1f each\n%s", admissions, calls, float64(calls)/admissions, in.SQL.Top(25))
	// Each admission, alone in its batch: accepting it (1: the
	// notification, its job and River's wake-up in one statement);
	// matching its practitioner (1); claiming it (1); its batch's
	// transaction (7: begin, locking it, the patient's read job and its
	// wake-up, the outcome, the events, commit) and, in it, opening its
	// thread (4: the source, the patient's threads, the thread and its
	// members, their records); 14. The instance's periodic work (the audit
	// chain's seal, retention) may add a few; one more per admission is 40
	// more.
	if want := 14*admissions + admissions/2; calls > want {
		t.Errorf("%d round trips for %d admissions: %.1f each, want 14", calls, admissions, float64(calls)/admissions)
	}
}
