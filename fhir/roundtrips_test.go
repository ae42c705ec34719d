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
	"github.com/callroom/callroom/worker"
)

// ward is an instance whose statements are counted, connected to an
// EHR in which the attending is a Practitioner, and a way to send it the
// EHR's notifications.
type ward struct {
	in        *benchutil.Instance
	attending *benchutil.Client
	pracRef   string
	client    *http.Client
}

func startWard(t *testing.T) *ward {
	t.Helper()
	ehr := fhirtest.Start(t)
	in := benchutil.Start(t, benchutil.Options{TraceSQL: true, FHIR: &fhir.Config{BaseURL: ehr.URL, Timeout: 5 * time.Second,
		Subscriptions: []fhir.Subscription{{Name: "enc", Flavor: fhir.Medplum, Criteria: "Encounter", Secret: secret}}}})
	attending := in.User("Dr Attending", "physician")
	npi := randomNPI()
	if _, err := in.DB.Pool.Exec(context.Background(), `UPDATE users SET npi = $1 WHERE id = $2`, npi, attending.User.ID); err != nil {
		t.Fatal(err)
	}
	prac := ehr.Create(map[string]any{"resourceType": "Practitioner", "identifier": []any{map[string]any{"system": fhir.NPISystem, "value": npi}}})
	return &ward{in: in, attending: attending, pracRef: "Practitioner/" + prac["id"].(string), client: benchutil.NewHTTPClient()}
}

// admit notifies the instance, Medplum-style, of inpatient Encounter id of
// Patient/<patient>, in progress.
func (a *ward) admit(t *testing.T, patient, id string) {
	t.Helper()
	a.send(t, a.admission(patient, id))
}

// admission is inpatient Encounter id of Patient/<patient>, in progress,
// with the attending.
func (a *ward) admission(patient, id string) map[string]any {
	enc := encounter("Patient/"+patient, "in-progress", "IMP", a.pracRef)
	enc["id"] = id
	return enc
}

// send notifies the instance, Medplum-style, of enc.
func (a *ward) send(t *testing.T, enc map[string]any) {
	t.Helper()
	id := enc["id"]
	body, _ := json.Marshal(enc)
	req, _ := http.NewRequest("POST", a.in.URL+"/fhir/hooks/enc", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("X-Signature", sign(body))
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("notification of %s: %d", id, resp.StatusCode)
	}
}

// TestNotificationRoundTrips holds the statements an admission costs
// callroom: accepting the EHR's notification, then opening the patient's
// thread with the attending in it. Each round trip to PostgreSQL costs both
// processes a write, a read and a wake-up, which on two cores was most of
// what processing a burst cost (docs/PERFORMANCE.md).
func TestNotificationRoundTrips(t *testing.T) {
	ctx := context.Background()
	a := startWard(t)
	in, attending := a.in, a.attending
	admit := func(i int) { a.admit(t, fmt.Sprintf("rt-%d", i), fmt.Sprintf("rt-%d", i)) }
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
	const admissions = 80
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
	// chain's seal, retention, a sweep: up to ~20 statements in a run) may
	// add some; one more per admission is 80 more.
	if want := 14*admissions + admissions/2; calls > want {
		t.Errorf("%d round trips for %d admissions: %.1f each, want 14", calls, admissions, float64(calls)/admissions)
	}
}

// TestBurstRoundTrips: admissions that arrive together are applied together
// (pg.Lockstep): a batch of them takes a few round trips in all, where one
// by one each took four. Their threads and members are the same either
// way. Subjects that carry the patient's MRN beside the reference, as some
// EHRs send them, stay in lockstep too, each MRN linked and audited once.
func TestBurstRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name           string
		together, mrns bool
	}{{"together", true, false}, {"one by one", false, false}, {"together with MRNs", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			a := startWard(t)
			in := a.in
			if !tc.together {
				in.Server.FHIR.ApplyOneByOne()
			}
			const admissions = 30
			admit := func(patient, id string) {
				enc := a.admission(patient, id)
				if tc.mrns {
					withMRN(enc, "MRN-"+patient)
				}
				a.send(t, enc)
			}
			pauseFHIR(t, in.Server.River)
			for i := range admissions {
				admit(fmt.Sprintf("burst-%d", i), fmt.Sprintf("burst-%d", i))
			}
			// The first patient comes in twice (a second encounter): in the
			// same batch, the second goes in a wave after the first.
			admit("burst-0", "burst-0b")
			in.SQL.Reset()
			if err := in.Server.River.QueueResume(ctx, worker.QueueFHIR, nil); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				var waiting int
				if err := in.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM fhir_notifications WHERE processed_at IS NULL`).Scan(&waiting); err != nil {
					t.Fatal(err)
				}
				if waiting == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d notifications still waiting", waiting)
				}
				time.Sleep(10 * time.Millisecond)
			}
			// One by one, each notification locks its patient in a round
			// trip of its own; together, a batch's wave does so in one.
			patientLocks := in.SQL.CallsWhere(func(sql string) bool {
				return strings.HasPrefix(sql, "batch: SELECT pg_advisory_xact_lock(hashtextextended('inbox.patient:'")
			})
			t.Logf("%d notifications: %d round trips locking their patients\n%s", admissions+1, patientLocks, in.SQL.Top(20))
			if tc.together && patientLocks > admissions/2 {
				t.Errorf("%d round trips locking patients for %d notifications applied together: not in lockstep", patientLocks, admissions+1)
			}
			if !tc.together && patientLocks != admissions+1 {
				t.Errorf("%d round trips locking patients for %d notifications one by one", patientLocks, admissions+1)
			}
			var threads, members, links int
			if err := in.DB.Pool.QueryRow(ctx, `SELECT count(*), count(m.user_id),
					(SELECT count(DISTINCT args->>'patient') FROM river_job WHERE kind = 'fhir.link_patient')
				FROM threads t LEFT JOIN thread_members m ON m.thread_id = t.id AND m.user_id = $1 AND m.left_at IS NULL
				WHERE t.patient_ref LIKE 'Patient/burst-%'`, a.attending.User.ID).Scan(&threads, &members, &links); err != nil {
				t.Fatal(err)
			}
			if threads != admissions+1 || members != admissions+1 || links != admissions {
				t.Errorf("%d threads, the attending in %d, %d patients with a read of their identifiers queued; want %d, %d, %d", threads, members, links, admissions+1, admissions+1, admissions)
			}
			if !tc.mrns {
				return
			}
			// The second encounter's MRN is already linked: no change, no
			// second audit event.
			var linked, audited int
			if err := in.DB.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM patient_identifiers WHERE identifier = $1 || '|MRN-' || substr(patient_ref, 9) AND patient_ref LIKE 'Patient/burst-%'),
				(SELECT count(*) FROM audit_events WHERE action = 'patient.link' AND object_id LIKE 'Patient/burst-%')`, mrnSystem).Scan(&linked, &audited); err != nil {
				t.Fatal(err)
			}
			if linked != admissions || audited != admissions {
				t.Errorf("%d MRNs linked to their patients, %d link audit events; want %d of each", linked, audited, admissions)
			}
		})
	}
}
