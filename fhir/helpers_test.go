package fhir_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/fhirtest"
)

const secret = "test-secret-0123456789abcdef"

type env struct {
	t   *testing.T
	in  *apitest.Instance
	ehr *fhirtest.Engine
}

// start runs a FHIR engine and a callroom connected to it with subs, and
// registers each subscription on the engine as `callroom fhir subscribe`
// would.
func start(t *testing.T, subs ...fhir.Subscription) *env {
	t.Helper()
	ehr := fhirtest.Start(t)
	in := apitest.Start(t, apitest.Options{FHIR: &fhir.Config{BaseURL: ehr.URL, Subscriptions: subs, Timeout: 5 * time.Second,
		Tick: 200 * time.Millisecond}})
	e := &env{t: t, in: in, ehr: ehr}
	for _, s := range subs {
		if s.Flavor == fhir.Poll {
			continue
		}
		r, err := fhir.SubscriptionResource(s, in.URL)
		if err != nil {
			t.Fatal(err)
		}
		ehr.Create(r)
	}
	return e
}

func randomNPI() string { return fmt.Sprintf("%010d", rand.Int64N(9_000_000_000)+1_000_000_000) }

// clinician makes a callroom user and a Practitioner for them: matched by
// NPI (byNPI) or by email.
func (e *env) clinician(name, role string, byNPI bool) (*apitest.Client, string) {
	e.t.Helper()
	c := e.in.User(name, role)
	p := map[string]any{"resourceType": "Practitioner", "name": []any{map[string]any{"text": name}}}
	if byNPI {
		npi := randomNPI()
		if _, err := e.in.DB.Pool.Exec(context.Background(), `UPDATE users SET npi = $1 WHERE id = $2`, npi, c.User.ID); err != nil {
			e.t.Fatal(err)
		}
		p["identifier"] = []any{map[string]any{"system": fhir.NPISystem, "value": npi}}
	} else {
		p["telecom"] = []any{map[string]any{"system": "email", "value": c.User.Email}}
	}
	got := e.ehr.Create(p)
	return c, "Practitioner/" + got["id"].(string)
}

func (e *env) patient() string {
	got := e.ehr.Create(map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": "Test", "given": []any{"Pat"}}}})
	return "Patient/" + got["id"].(string)
}

func encounter(patient, status, class string, practitioners ...string) map[string]any {
	var parts []any
	for _, p := range practitioners {
		parts = append(parts, map[string]any{"individual": map[string]any{"reference": p}})
	}
	e := map[string]any{
		"resourceType": "Encounter", "status": status,
		"class":   map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class},
		"subject": map[string]any{"reference": patient},
	}
	if len(parts) > 0 {
		e["participant"] = parts
	}
	return e
}

// mrnSystem is the identifier system of the tests' MRNs.
const mrnSystem = "urn:oid:2.16.840.1.113883.3.1"

// withMRN gives enc's subject the patient's MRN beside its reference, as
// some EHRs send it.
func withMRN(enc map[string]any, mrn string) {
	enc["subject"].(map[string]any)["identifier"] = map[string]any{"system": mrnSystem, "value": mrn}
}

// threadOf returns the patient thread of encounterRef (uuid.Nil if none),
// whether it is archived and its current members.
func (e *env) threadOf(patient, encounterRef string) (uuid.UUID, bool, []uuid.UUID) {
	e.t.Helper()
	ctx := context.Background()
	var id uuid.UUID
	var archived bool
	err := e.in.DB.Pool.QueryRow(ctx, `SELECT id, archived_at IS NOT NULL FROM threads WHERE patient_ref = $1 AND encounter_ref IS NOT DISTINCT FROM nullif($2, '')`,
		patient, encounterRef).Scan(&id, &archived)
	if err != nil {
		return uuid.Nil, false, nil
	}
	rows, err := e.in.DB.Pool.Query(ctx, `SELECT user_id FROM thread_members WHERE thread_id = $1 AND left_at IS NULL ORDER BY user_id`, id)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var members []uuid.UUID
	for rows.Next() {
		var u uuid.UUID
		rows.Scan(&u) //nolint:errcheck
		members = append(members, u)
	}
	return id, archived, members
}

// eventually polls cond for up to 60 s (generous: the machine is shared;
// a passing run takes well under a second per wait).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sameMembers(got []uuid.UUID, want ...uuid.UUID) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			return false
		}
	}
	return true
}
