package fhir_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/fhir"
)

func careTeam(patient string, members map[string]map[string]any) map[string]any {
	var parts []any
	for ref, period := range members {
		p := map[string]any{"member": map[string]any{"reference": ref}}
		if period != nil {
			p["period"] = period
		}
		parts = append(parts, p)
	}
	c := map[string]any{"resourceType": "CareTeam", "status": "active", "subject": map[string]any{"reference": patient}}
	if len(parts) > 0 {
		c["participant"] = parts
	}
	return c
}

// R4 rest-hook without payload: each empty POST makes callroom search what
// changed since its last read; a CareTeam keeps membership in step, periods
// respected.
func TestEmptyRestHookCareTeam(t *testing.T) {
	t.Parallel()
	e := start(t, fhir.Subscription{Name: "teams", Flavor: fhir.RestHookEmpty, Criteria: "CareTeam", Secret: secret})
	drA, prA := e.clinician("Dr A", "physician", true)
	nurseB, prB := e.clinician("Nurse B", "nurse", false)
	_, prC := e.clinician("Dr C", "physician", true)
	pat := e.patient()
	past := map[string]any{"start": "2020-01-01", "end": "2020-02-01"}
	team := e.ehr.Create(careTeam(pat, map[string]map[string]any{prA: nil, prB: {"start": "2021-01-01"}, prC: past}))
	eventually(t, "A and B (not C, whose period ended) in the patient's thread", func() bool {
		id, _, members := e.threadOf(pat, "")
		return id != uuid.Nil && sameMembers(members, drA.User.ID, nurseB.User.ID)
	})
	team["participant"] = team["participant"].([]any)[:0]
	for _, p := range careTeam(pat, map[string]map[string]any{prB: nil})["participant"].([]any) {
		team["participant"] = append(team["participant"].([]any), p)
	}
	e.ehr.Update(team)
	eventually(t, "A removed", func() bool {
		_, _, members := e.threadOf(pat, "")
		return sameMembers(members, nurseB.User.ID)
	})
	var lastRead *time.Time
	if err := e.in.DB.Pool.QueryRow(context.Background(), `SELECT last_read_at FROM fhir_subscription_state WHERE subscription = 'teams'`).Scan(&lastRead); err != nil || lastRead == nil {
		t.Fatalf("last read not recorded: %v", err)
	}
}

// Backport IG: the handshake is answered, id-only notifications are read
// back from the EHR, and a gap in event numbers (a lost notification) is
// recovered by searching.
func TestBackportGapRecovered(t *testing.T) {
	t.Parallel()
	sub := fhir.Subscription{Name: "admissions", Flavor: fhir.Backport, Criteria: "Encounter?status=in-progress",
		Topic: "http://callroom.example/SubscriptionTopic/encounter-start", Secret: secret}
	e := start(t, sub)
	drA, prA := e.clinician("Dr A", "physician", true)
	pat1, pat2, pat3 := e.patient(), e.patient(), e.patient()

	enc1 := e.ehr.Create(encounter(pat1, "in-progress", "IMP", prA))
	eventually(t, "patient 1's thread", func() bool {
		id, _, m := e.threadOf(pat1, "Encounter/"+enc1["id"].(string))
		return id != uuid.Nil && sameMembers(m, drA.User.ID)
	})
	subs := e.ehr.Sent()
	handshake := false
	for _, s := range subs {
		handshake = handshake || (s.Note == "handshake" && s.Status == 200)
	}
	if !handshake {
		t.Fatalf("the handshake was not answered 200: %+v", subs)
	}
	var subID string
	for _, s := range subs {
		subID = s.Subscription
	}
	e.ehr.Control("drop", map[string]any{"subscription": subID, "count": 1})
	enc2 := e.ehr.Create(encounter(pat2, "in-progress", "IMP", prA)) // event 2: lost
	enc3 := e.ehr.Create(encounter(pat3, "in-progress", "IMP", prA)) // event 3: a gap
	eventually(t, "patient 2's thread (recovered) and patient 3's", func() bool {
		id2, _, _ := e.threadOf(pat2, "Encounter/"+enc2["id"].(string))
		id3, _, _ := e.threadOf(pat3, "Encounter/"+enc3["id"].(string))
		return id2 != uuid.Nil && id3 != uuid.Nil
	})
	var outcome string
	eventually(t, "event 3 processed", func() bool {
		e.in.DB.Pool.QueryRow(context.Background(), `SELECT outcome FROM fhir_notifications
			WHERE subscription = 'admissions' AND event_number = 3 AND processed_at IS NOT NULL`).Scan(&outcome) //nolint:errcheck
		return outcome != ""
	})
	if !strings.Contains(outcome, "gap in event numbers") {
		t.Fatalf("event 3's outcome = %q, want the gap noted", outcome)
	}
	e.ehr.Control("heartbeat", map[string]any{"subscription": subID})
	var beat *time.Time
	e.in.DB.Pool.QueryRow(context.Background(), `SELECT last_heartbeat_at FROM fhir_subscription_state WHERE subscription = 'admissions'`).Scan(&beat) //nolint:errcheck
	if beat == nil {
		t.Fatal("heartbeat not noted")
	}
}

// Polling, for EHRs without subscriptions: changes are read with
// _lastUpdated every interval.
func TestPolling(t *testing.T) {
	t.Parallel()
	e := start(t, fhir.Subscription{Name: "poll", Flavor: fhir.Poll, Criteria: "Encounter", Interval: time.Second})
	drA, prA := e.clinician("Dr A", "physician", true)
	pat := e.patient()
	enc := e.ehr.Create(encounter(pat, "arrived", "EMER", prA))
	encRef := "Encounter/" + enc["id"].(string)
	eventually(t, "the ED arrival's thread", func() bool {
		id, _, m := e.threadOf(pat, encRef)
		return id != uuid.Nil && sameMembers(m, drA.User.ID)
	})
	enc["status"] = "cancelled"
	e.ehr.Update(enc)
	eventually(t, "the thread archived", func() bool { _, archived, _ := e.threadOf(pat, encRef); return archived })
}

// Medplum notifies deletions (X-Medplum-Interaction: delete, the last
// version as body): a deleted CareTeam keeps nobody in the thread. The
// deletion is not mistaken for a duplicate of the last update.
func TestMedplumDeletedCareTeam(t *testing.T) {
	t.Parallel()
	e := start(t, fhir.Subscription{Name: "teams", Flavor: fhir.Medplum, Criteria: "CareTeam", Secret: secret})
	drA, prA := e.clinician("Dr A", "physician", true)
	pat := e.patient()
	team := e.ehr.Create(careTeam(pat, map[string]map[string]any{prA: nil}))
	eventually(t, "Dr A in the thread", func() bool {
		_, _, m := e.threadOf(pat, "")
		return sameMembers(m, drA.User.ID)
	})
	if status, out := e.ehr.Do("DELETE", "CareTeam/"+team["id"].(string), nil); status != 200 {
		t.Fatalf("delete: %d %v", status, out)
	}
	eventually(t, "Dr A removed", func() bool {
		_, _, m := e.threadOf(pat, "")
		return len(m) == 0
	})
}
